// The comparison every GPU check goes through must never pass a wrong output.
#include "course/testing.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace {
const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();
}  // namespace

TEST_CASE("cpu: compare: equal values pass, a value outside atol + rtol * |ref| fails") {
  const course::Tolerance tol{1e-6, 1e-3, "test"};
  CHECK(course::compare(std::vector<double>{1.0, 2.0}, {1.0, 2.0}, tol, {1, 2}, "same").ok);
  CHECK(course::compare(std::vector<double>{1.0009, 2.0}, {1.0, 2.0}, tol, {1, 2}, "inside").ok);
  CHECK_FALSE(course::compare(std::vector<double>{1.0011, 2.0}, {1.0, 2.0}, tol, {1, 2}, "outside").ok);
}

TEST_CASE("cpu: compare: NaN and Inf never pass, whatever the tolerance") {
  const course::Tolerance huge{1e30, 1e30, "huge"};
  CHECK_FALSE(course::compare(std::vector<double>{kNaN}, {0.0}, huge, {1, 1}, "nan").ok);
  CHECK_FALSE(course::compare(std::vector<double>{kInf}, {1.0}, huge, {1, 1}, "inf").ok);
  CHECK_FALSE(course::compare(std::vector<double>{-kInf}, {kInf}, huge, {1, 1}, "-inf").ok);
  CHECK(course::compare(std::vector<double>{-kInf}, {-kInf}, huge, {1, 1}, "same inf").ok);
}

TEST_CASE("cpu: compare: a count mismatch fails") {
  CHECK_FALSE(course::compare(std::vector<double>{1.0}, {1.0, 2.0}, course::tolerance::fp32, {1, 2}, "short").ok);
}

TEST_CASE("cpu: compare: the report locates the first error and names the pattern") {
  const std::vector<double> ref(12, 1.0);
  std::vector<double> got = ref;
  got[7] = 5.0;  // (row 1, col 3) of a 3 x 4 matrix
  got[11] = 5.0;
  auto report = course::compare(got, ref, course::tolerance::fp32, {3, 4}, "tail");
  CHECK(report.message.find("(row 1, col 3)") != std::string::npos);
  CHECK(report.message.find("only columns >= 3") != std::string::npos);

  std::vector<double> unwritten(12, -kNaN);  // the poison's sign bit is set
  report = course::compare(unwritten, ref, course::tolerance::fp32, {3, 4}, "nothing");
  CHECK(report.message.find("wrote nothing") != std::string::npos);
  std::vector<double> computed(12, kNaN);  // what GPU arithmetic produces
  report = course::compare(computed, ref, course::tolerance::fp32, {3, 4}, "computed");
  CHECK(report.message.find("a NaN the kernel computed") != std::string::npos);

  std::vector<double> doubled(12, 2.0);
  report = course::compare(doubled, ref, course::tolerance::fp32, {3, 4}, "x2");
  CHECK(report.message.find("same factor") != std::string::npos);
}

TEST_CASE("cpu: poison: 0xFF bytes are NaN in every float type the course stores") {
  unsigned char bytes[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  float f;
  __half h;
  __nv_bfloat16 b;
  std::memcpy(&f, bytes, sizeof f);
  std::memcpy(&h, bytes, sizeof h);
  std::memcpy(&b, bytes, sizeof b);
  CHECK(std::isnan(f));
  CHECK(std::isnan(__half2float(h)));
  CHECK(std::isnan(__bfloat162float(b)));
  // compare() tells the poison from a computed NaN by its sign, kept through widen().
  CHECK(std::signbit(course::widen(std::vector<float>{f})[0]));
  CHECK(std::signbit(course::widen(std::vector<__half>{h})[0]));
  CHECK(std::signbit(course::widen(std::vector<__nv_bfloat16>{b})[0]));
}
