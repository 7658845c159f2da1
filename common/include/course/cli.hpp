// Command-line flags for the chapter executables: --name=value or --name value.
//
//   course::Cli cli(argc, argv, "Chapter 01: dot products");
//   const long n = cli.integer("--n", 1 << 24, "vector length");
//   cli.finish();   // --help: usage, exit 0; unknown flag or bad value: one line, exit 2
//   cli.require(n >= 1, "--n must be at least 1");   // exit 2 with that message
#pragma once

#include <string>
#include <vector>

namespace course {

class Cli {
 public:
  Cli(int argc, char** argv, std::string summary);

  long long integer(const std::string& name, long long fallback, const std::string& help);
  double real(const std::string& name, double fallback, const std::string& help);
  std::string text(const std::string& name, const std::string& fallback, const std::string& help);
  bool flag(const std::string& name, const std::string& help);  // present or not
  // A comma-separated list of whole numbers: --cols=1024,4096
  std::vector<long long> integers(const std::string& name, const std::vector<long long>& fallback,
                                  const std::string& help);

  // Call after every option is declared.
  void finish();
  // A check on the values: prints "<program>: <message>" and exits with 2 when false.
  void require(bool condition, const std::string& message) const;

 private:
  const std::string* find(const std::string& name, bool takes_value);
  void usage() const;

  std::string program_, summary_;
  std::vector<std::string> args_;
  std::vector<bool> used_;
  std::vector<std::string> help_lines_;
  std::string error_;
};

}  // namespace course
