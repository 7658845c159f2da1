// Chapter 02's suite: safe softmax against the float64 reference, for every stored type,
// on the named edge cases (huge and very negative logits, constant rows, one column, a
// dominant element, -inf entries) and on row lengths from 1 to past 256k, so a kernel
// that covers only the first block of a row fails.
//
// Run: ctest --preset exercises -L 02   (or build/exercises/bin/test_ch02)
#include "softmax.hpp"

#include "course/softmax_testing.hpp"
#include "course/testing.hpp"

#include <cmath>
#include <limits>

using course::testing::check_softmax;
using course::testing::softmax_edge_cases;
using course::testing::softmax_length_cases;

namespace {

template <class T>
void check_all(const std::vector<course::testing::SoftmaxCase>& cases, const char* kernel) {
  for (const auto& c : cases) COURSE_CHECK_CLOSE(check_softmax<T>(ch02::softmax_safe, c, kernel));
}

}  // namespace

TEST_CASE("gpu: softmax_safe: edge cases, fp32") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_all<float>(softmax_edge_cases(rng), "softmax_safe");
}

TEST_CASE("gpu: softmax_safe: edge cases, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  const auto cases = softmax_edge_cases(rng);
  check_all<__half>(cases, "softmax_safe");
  check_all<__nv_bfloat16>(cases, "softmax_safe");
}

TEST_CASE("gpu: softmax_safe: row lengths 1 to 262147, fp32") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_all<float>(softmax_length_cases(rng), "softmax_safe");
}

TEST_CASE("gpu: softmax_safe: row lengths 1 to 262147, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  const auto cases = softmax_length_cases(rng);
  check_all<__half>(cases, "softmax_safe");
  check_all<__nv_bfloat16>(cases, "softmax_safe");
}

TEST_CASE("gpu (given): softmax_naive: right on small logits, NaN once exp overflows") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  course::testing::SoftmaxCase small{"logits in [-5, 5]", 7, 1000, rng.uniform(7000, -5.0f, 5.0f)};
  COURSE_CHECK_CLOSE(check_softmax<float>(ch02::softmax_naive, small, "softmax_naive"));

  // The overflow the chapter is about: exp(89) is inf in float32, exp(12) is inf in half.
  auto run = [](auto zero, float logit) {
    using T = decltype(zero);
    std::vector<T> x(64, course::DType<T>::narrow(logit));
    course::DeviceBuffer<T> d_x(x), d_y(x.size());
    ch02::softmax_naive(d_x.data(), d_y.data(), 1, int(x.size()), nullptr);
    COURSE_CUDA_CHECK(cudaDeviceSynchronize());
    return course::widen(d_y.download())[0];
  };
  CHECK(std::isnan(run(float{}, 89.0f)));
  CHECK(std::isnan(run(__half{}, 12.0f)));
  CHECK(run(float{}, 80.0f) == doctest::Approx(1.0 / 64));  // 64 * exp(80) still fits
}

TEST_CASE("cpu (given): softmax_safe rejects empty shapes") {
  CHECK_THROWS_AS(ch02::softmax_safe(static_cast<const float*>(nullptr), nullptr, 0, 10, nullptr),
                  std::invalid_argument);
  CHECK_THROWS_AS(ch02::softmax_safe(static_cast<const float*>(nullptr), nullptr, 10, 0, nullptr),
                  std::invalid_argument);
}
