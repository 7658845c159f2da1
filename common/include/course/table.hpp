// A plain-text table for the chapter executables' results, with the formats every
// chapter uses: times in microseconds, GB/s, TFLOP/s and % of a measured ceiling.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace course {

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::FILE* out = stdout) const;  // columns padded to their widest cell

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

std::string fmt(double value, int decimals = 1);
std::string fmt_us(double ms);                      // "123.4 us"
std::string fmt_pct(double part, double whole);     // "87%"
double gb_per_s(double bytes, double ms);           // 1e9 bytes / s
double tflop_per_s(double flops, double ms);        // 1e12 flop / s

}  // namespace course
