#include "course/cli.hpp"

#include "course/gpu.hpp"

#include <cstdio>
#include <algorithm>
#include <cstdlib>

namespace course {

Cli::Cli(int argc, char** argv, std::string summary) : summary_(std::move(summary)) {
  program_ = argc > 0 ? argv[0] : "program";
  if (auto slash = program_.find_last_of('/'); slash != std::string::npos)
    program_ = program_.substr(slash + 1);
  for (int i = 1; i < argc; ++i) args_.emplace_back(argv[i]);
  used_.assign(args_.size(), false);
}

// Finds --name=value or --name value; marks what it consumed.
const std::string* Cli::find(const std::string& name, bool takes_value) {
  static thread_local std::string value;
  for (std::size_t i = 0; i < args_.size(); ++i) {
    if (takes_value && args_[i].rfind(name + "=", 0) == 0) {
      used_[i] = true;
      value = args_[i].substr(name.size() + 1);
      return &value;
    }
    if (args_[i] == name) {
      used_[i] = true;
      if (!takes_value) return &args_[i];
      if (i + 1 >= args_.size()) {
        error_ = name + " needs a value";
        return nullptr;
      }
      used_[i + 1] = true;
      value = args_[i + 1];
      return &value;
    }
  }
  return nullptr;
}

long long Cli::integer(const std::string& name, long long fallback, const std::string& help) {
  help_lines_.push_back(name + "=N  " + help + " (default " + std::to_string(fallback) + ")");
  const std::string* v = find(name, true);
  if (!v) return fallback;
  char* end = nullptr;
  const long long parsed = std::strtoll(v->c_str(), &end, 0);
  if (v->empty() || *end != '\0') error_ = name + " takes a whole number, not '" + *v + "'";
  return parsed;
}

double Cli::real(const std::string& name, double fallback, const std::string& help) {
  help_lines_.push_back(name + "=X  " + help + " (default " + std::to_string(fallback) + ")");
  const std::string* v = find(name, true);
  if (!v) return fallback;
  char* end = nullptr;
  const double parsed = std::strtod(v->c_str(), &end);
  if (v->empty() || *end != '\0') error_ = name + " takes a number, not '" + *v + "'";
  return parsed;
}

std::string Cli::text(const std::string& name, const std::string& fallback, const std::string& help) {
  help_lines_.push_back(name + "=S  " + help + " (default '" + fallback + "')");
  const std::string* v = find(name, true);
  return v ? *v : fallback;
}

bool Cli::flag(const std::string& name, const std::string& help) {
  help_lines_.push_back(name + "  " + help);
  return find(name, false) != nullptr;
}

std::vector<long long> Cli::integers(const std::string& name, const std::vector<long long>& fallback,
                                     const std::string& help) {
  std::string shown;
  for (long long v : fallback) shown += (shown.empty() ? "" : ",") + std::to_string(v);
  help_lines_.push_back(name + "=N,N,...  " + help + " (default " + shown + ")");
  const std::string* v = find(name, true);
  if (!v) return fallback;
  std::vector<long long> values;
  std::size_t start = 0;
  while (start <= v->size()) {
    const std::size_t comma = std::min(v->find(',', start), v->size());
    const std::string item = v->substr(start, comma - start);
    char* end = nullptr;
    values.push_back(std::strtoll(item.c_str(), &end, 0));
    if (item.empty() || *end != '\0') {
      error_ = name + " takes whole numbers separated by commas, not '" + *v + "'";
      return fallback;
    }
    start = comma + 1;
  }
  return values;
}

void Cli::usage() const {
  std::printf("%s\n\nusage: %s [options]\n\noptions:\n", summary_.c_str(), program_.c_str());
  for (const auto& line : help_lines_) std::printf("  %s\n", line.c_str());
  std::printf("  --help  this text\n\nexit codes: 0 ok (also: no GPU, GPU part skipped), "
              "1 wrong result or CUDA error, 2 bad usage, 3 GPU not supported\n");
}

void Cli::finish() {
  for (std::size_t i = 0; i < args_.size(); ++i)
    if (args_[i] == "--help" || args_[i] == "-h") {
      usage();
      std::exit(kExitOk);
    }
  for (std::size_t i = 0; i < args_.size() && error_.empty(); ++i)
    if (!used_[i]) error_ = "unknown option '" + args_[i] + "'";
  require(error_.empty(), error_ + " (see --help)");
}

void Cli::require(bool condition, const std::string& message) const {
  if (condition) return;
  std::fprintf(stderr, "%s: %s\n", program_.c_str(), message.c_str());
  std::exit(kExitBadUsage);
}

}  // namespace course
