#include "course/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

namespace course {

namespace {

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// The likely cause, read off where the wrong elements are.
std::string diagnose(const std::vector<double>& got, const std::vector<double>& ref,
                     const std::vector<std::size_t>& bad, Shape2D shape, std::size_t nan_count,
                     std::size_t inf_count, const std::string& hint) {
  const std::size_t n = got.size();
  std::size_t poison_count = 0;
  for (std::size_t i : bad) poison_count += is_poison(got[i]);
  if (poison_count == n)
    return "every element still holds the NaN poison written before the launch: the kernel "
           "wrote nothing (not launched, returned early, or wrote elsewhere)";
  if (nan_count == n)
    return "every element is a NaN the kernel computed (not the poison): inf - inf, 0 / 0 or "
           "0 * inf, e.g. exp overflowing, a sum of 0, or -inf - (-inf) on a fully masked part";
  std::size_t min_row = shape.rows, min_col = shape.cols;
  for (std::size_t i : bad) {
    min_row = std::min(min_row, i / shape.cols);
    min_col = std::min(min_col, i % shape.cols);
  }
  std::string cause;
  if (poison_count == bad.size())
    cause = "every wrong element still holds the NaN poison: never written. ";
  else if (nan_count == bad.size())
    cause = "every wrong element is a computed NaN (inf - inf, 0 / 0 or 0 * inf). ";
  else if (inf_count > 0)
    cause = "some elements are Inf: an overflow, or a division by a sum of 0. ";
  if (min_col > 0)
    return cause + "only columns >= " + std::to_string(min_col) +
           " are wrong: the tail of each row. Does the loop cover the whole row when it is "
           "longer than one block or tile, and does the last, partial tile have the right "
           "bounds guard?";
  if (min_row > 0)
    return cause + "only rows >= " + std::to_string(min_row) +
           " are wrong: are there enough blocks (or a grid-stride loop) for every row?";
  // Off by one common factor: a scale or normalisation missing or applied twice.
  if (nan_count == 0 && inf_count == 0 && bad.size() >= 2) {
    double first_ratio = 0;
    bool constant = true;
    for (std::size_t i : bad) {
      if (ref[i] == 0) { constant = false; break; }
      const double r = got[i] / ref[i];
      if (first_ratio == 0) first_ratio = r;
      if (std::fabs(r - first_ratio) > 1e-3 * std::fabs(first_ratio)) { constant = false; break; }
    }
    if (constant)
      return "every wrong element is off by the same factor (got / expected = " +
             number(first_ratio) + "): a scale or normalisation missing or applied twice";
  }
  std::string scattered = cause +
      "wrong elements without a pattern: often a race (a missing __syncthreads() between "
      "writing and reading shared memory) or reading memory nothing wrote; run the "
      "`sanitize` label to find it.";
  if (!hint.empty()) scattered += " Also check: " + hint;
  return scattered;
}

}  // namespace

bool is_poison(double v) { return std::isnan(v) && std::signbit(v); }

std::size_t count_written(const std::vector<double>& v, std::size_t from, std::size_t to) {
  return std::size_t(std::count_if(v.begin() + from, v.begin() + to, [](double x) { return !is_poison(x); }));
}

CompareReport compare(const std::vector<double>& got, const std::vector<double>& ref,
                      Tolerance tol, Shape2D shape, const std::string& what,
                      const std::string& hint) {
  CompareReport report;
  std::ostringstream msg;
  if (got.size() != ref.size() || got.size() != shape.rows * shape.cols) {
    msg << what << ": expected " << shape.rows << " x " << shape.cols << " = "
        << shape.rows * shape.cols << " elements, reference has " << ref.size()
        << ", kernel output has " << got.size();
    report.message = msg.str();
    return report;
  }
  std::vector<std::size_t> bad;
  std::size_t nan_count = 0, inf_count = 0, worst = 0;
  double worst_excess = -1;  // error / allowed
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = got[i], r = ref[i];
    const double allowed = tol.atol + tol.rtol * std::fabs(r);
    bool wrong = false;
    if (std::isnan(g)) {
      ++nan_count;
      wrong = !std::isnan(r);
    } else if (std::isinf(g) || std::isinf(r)) {
      inf_count += std::isinf(g) && g != r;
      wrong = g != r;  // infinities must match exactly, sign included
    } else {
      const double excess = std::fabs(g - r) / allowed;
      wrong = excess > 1.0;
      if (wrong && excess > worst_excess) worst_excess = excess, worst = i;
    }
    if (wrong) bad.push_back(i);
  }
  if (bad.empty()) {
    report.ok = true;
    return report;
  }
  auto at = [&](std::size_t i) {
    return "(row " + std::to_string(i / shape.cols) + ", col " + std::to_string(i % shape.cols) + ")";
  };
  const std::size_t first = bad.front();
  msg << what << ": " << bad.size() << " of " << got.size() << " elements wrong";
  if (nan_count || inf_count) msg << " (" << nan_count << " NaN, " << inf_count << " Inf)";
  msg << "\n  first wrong at " << at(first) << ": expected " << number(ref[first]) << ", got "
      << number(got[first]);
  if (worst_excess > 0)
    msg << "\n  largest error at " << at(worst) << ": expected " << number(ref[worst]) << ", got "
        << number(got[worst]) << " (" << number(worst_excess) << "x the tolerance)";
  msg << "\n  tolerance " << tol.name << ": |got - ref| <= " << tol.atol << " + " << tol.rtol
      << " * |ref|";
  msg << "\n  likely cause: " << diagnose(got, ref, bad, shape, nan_count, inf_count, hint);
  report.message = msg.str();
  return report;
}

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// 16-bit values widened with their NaN's sign kept (the host conversions may drop it):
// it is how compare() tells the poison from a computed NaN.
template <class T>
std::vector<double> widen_16(const std::vector<T>& v, float (*to_float)(T)) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint16_t bits;
    std::memcpy(&bits, &v[i], sizeof bits);
    const double d = to_float(v[i]);
    out[i] = std::isnan(d) ? std::copysign(std::numeric_limits<double>::quiet_NaN(), (bits & 0x8000) ? -1.0 : 1.0) : d;
  }
  return out;
}

std::vector<double> widen(const std::vector<__half>& v) {
  return widen_16<__half>(v, [](__half h) { return __half2float(h); });
}

std::vector<double> widen(const std::vector<__nv_bfloat16>& v) {
  return widen_16<__nv_bfloat16>(v, [](__nv_bfloat16 b) { return __bfloat162float(b); });
}

std::vector<std::size_t> sample_rows(std::size_t rows, std::size_t count) {
  std::vector<std::size_t> which;
  if (count >= rows) {
    for (std::size_t r = 0; r < rows; ++r) which.push_back(r);
  } else if (count < 2) {
    which.push_back(0);
  } else {
    for (std::size_t i = 0; i < count; ++i) which.push_back(i * (rows - 1) / (count - 1));
  }
  return which;
}

}  // namespace course
