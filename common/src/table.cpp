#include "course/table.hpp"

#include <algorithm>

namespace course {

void Table::print(std::FILE* out) const {
  std::vector<std::size_t> width(headers_.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (std::size_t c = 0; c < row.size() && c < width.size(); ++c)
      width[c] = std::max(width[c], row[c].size());
  };
  widen(headers_);
  for (const auto& row : rows_) widen(row);
  auto line = [&](const std::vector<std::string>& row) {
    for (std::size_t c = 0; c < width.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      // First column left-aligned (a name), the rest right-aligned (numbers).
      std::fprintf(out, c == 0 ? "%-*s" : "  %*s", int(width[c]), cell.c_str());
    }
    std::fprintf(out, "\n");
  };
  line(headers_);
  std::vector<std::string> rule;
  for (std::size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : rows_) line(row);
  std::fflush(out);
}

std::string fmt(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string fmt_us(double ms) { return fmt(ms * 1e3, 1) + " us"; }

std::string fmt_pct(double part, double whole) { return fmt(100.0 * part / whole, 0) + "%"; }

double gb_per_s(double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; }

double tflop_per_s(double flops, double ms) { return flops / (ms * 1e-3) / 1e12; }

}  // namespace course
