// Chapter 05's suite. probs_times_values (O = P V) against a float64 product on shapes
// around its 32 x 32 tile; then the whole forward pass, yours (attention) and the cuBLAS
// one (given), against the float64 attention reference: no mask, causal, padded batches
// with key lengths n_k, 1 and 0 (rows that see nothing), n_q != n_k both ways, n_q = 1.
//
// Every check: fresh random data, outputs poisoned with NaN before the launch, O and lse
// both compared (course/attention_testing.hpp).
//
// Run: ctest --preset exercises -L 05   (or build/exercises/bin/test_ch05)
#include "attention.hpp"

#include "course/attention_testing.hpp"
#include "course/ceilings.hpp"
#include "course/testing.hpp"

#include <stdexcept>
#include <string>
#include <vector>

using course::AttentionShape;
using course::testing::AttentionCase;

namespace {

// O = P V on random P (non-negative, rows summing to about 1, like probabilities) and V.
course::CompareReport check_product(course::Rng& rng, AttentionShape s) {
  const std::size_t heads = s.heads_total(), d = s.head_dim;
  std::vector<float> P = rng.uniform(heads * s.n_q * s.n_k, 0.0f, 2.0f / s.n_k);
  const std::vector<float> V = rng.normal(heads * s.n_k * d);
  std::vector<double> want(heads * s.n_q * d, 0.0);
  for (std::size_t h = 0; h < heads; ++h)
    for (int i = 0; i < s.n_q; ++i)
      for (int j = 0; j < s.n_k; ++j) {
        const double p = P[(h * s.n_q + i) * s.n_k + j];
        for (std::size_t c = 0; c < d; ++c) want[(h * s.n_q + i) * d + c] += p * V[(h * s.n_k + j) * d + c];
      }
  course::DeviceBuffer<float> dP(P), dV(V), dO(want.size());
  dO.poison();
  ch05::probs_times_values(dP.data(), dV.data(), dO.data(), s, nullptr);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  return course::compare(dO.download(), want, course::tolerance::attention_fp32, {heads * s.n_q, d},
                         "probs_times_values " + course::describe(s) + ", O [rows = batch*heads*n_q, d]",
                         "the loop over the keys must cover all n_k of them (the last tile is partial), "
                         "and each head must use its own P and V");
}

// The shapes of the attention checks: (batch, heads, n_q, n_k, d), each run without a
// mask, causal, padded, and causal + padded.
const AttentionShape kShapes[] = {
    {1, 1, 1, 1, 64},       // one query, one key
    {2, 3, 31, 31, 64},     // tile - 1
    {2, 2, 32, 32, 64},     // the tile
    {3, 2, 33, 33, 128},    // tile + 1, d = 128
    {3, 1, 1, 100, 64},     // decoding: one query over a cache (bottom-right causal: sees all)
    {3, 1, 40, 100, 64},    // fewer queries than keys
    {3, 1, 100, 40, 64},    // more queries than keys: causal leaves the first 60 seeing nothing
    {4, 2, 65, 130, 32},    // several heads, odd sizes, another d
    {2, 1, 300, 300, 64},   // rows longer than a 256-thread block, not a power of two
};

using Runner = course::testing::AttentionRunner;

void check_every_mask(const Runner& run, const char* kernel) {
  COURSE_SEEDED_RNG(rng);
  for (const AttentionShape& shape : kShapes)
    for (bool causal : {false, true})
      for (bool padded : {false, true}) {
        const AttentionCase c = course::testing::make_attention_case(rng, "attention", shape, causal, padded);
        const course::CompareReport report = course::testing::check_attention(run, c, kernel);
        CHECK_MESSAGE(report.ok, report.message);
        if (!report.ok) return;  // the first failure says the most
      }
}

// Runs `attention` or `attention_cublas` with a workspace of the right size.
Runner in_house() {
  return [](const float* Q, const float* K, const float* V, float* O, float* lse, const AttentionShape& s, float scale,
            course::AttentionMask mask, cudaStream_t stream) {
    const std::size_t scores = ch05::score_bytes(s) / sizeof(float);
    course::DeviceBuffer<float> S(scores), P(scores);
    S.poison();  // a step that reads what an earlier one did not write finds NaN
    P.poison();
    ch05::attention(Q, K, V, O, lse, s, scale, mask, {S.data(), P.data()}, stream);
    COURSE_CUDA_CHECK(cudaStreamSynchronize(stream));  // before the workspace is freed
  };
}

Runner with_cublas() {
  return [](const float* Q, const float* K, const float* V, float* O, float* lse, const AttentionShape& s, float scale,
            course::AttentionMask mask, cudaStream_t stream) {
    const std::size_t scores = ch05::score_bytes(s) / sizeof(float);
    course::DeviceBuffer<float> S(scores), P(scores);
    S.poison();
    P.poison();
    course::CublasHandle handle;
    ch05::attention_cublas(Q, K, V, O, lse, s, scale, mask, {S.data(), P.data()}, handle, stream);
    COURSE_CUDA_CHECK(cudaStreamSynchronize(stream));
  };
}

}  // namespace

TEST_CASE("gpu: probs_times_values: O = P V around the 32 x 32 tile, several heads, any d") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  // (batch, heads, n_q, n_k, d): n_q and n_k of 1, tile - 1, tile, tile + 1 and beyond; d
  // below, at and past the tile; several heads (each its own P and V).
  const AttentionShape shapes[] = {{1, 1, 1, 1, 1},    {1, 1, 31, 31, 31},  {1, 1, 32, 32, 32}, {1, 1, 33, 33, 33},
                                   {2, 3, 1, 200, 64}, {2, 3, 70, 1, 64},   {1, 2, 45, 77, 128}, {3, 1, 100, 1000, 64},
                                   {1, 1, 257, 65, 100}};
  for (const AttentionShape& s : shapes) {
    const course::CompareReport report = check_product(rng, s);
    CHECK_MESSAGE(report.ok, report.message);
  }
}

TEST_CASE("gpu: attention: every mask, n_q = n_k, n_q < n_k, n_q > n_k, rows that see nothing") {
  COURSE_SKIP_WITHOUT_GPU();
  check_every_mask(in_house(), "attention");
}

TEST_CASE("gpu: attention: 1000 x 1000 with every mask, 4096 x 4096 causal (long)") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (bool causal : {false, true})
    for (bool padded : {false, true}) {
      const AttentionCase c = course::testing::make_attention_case(rng, "long", {2, 1, 1000, 1000, 64}, causal, padded);
      COURSE_CHECK_CLOSE(course::testing::check_attention(in_house(), c, "attention"));
    }
  const AttentionCase c = course::testing::make_attention_case(rng, "long", {1, 1, 4096, 4096, 64}, true, false);
  COURSE_CHECK_CLOSE(course::testing::check_attention(in_house(), c, "attention"));
}

TEST_CASE("gpu (given): attention_cublas: every mask, n_q = n_k, n_q < n_k, n_q > n_k, rows that see nothing") {
  COURSE_SKIP_WITHOUT_GPU();
  check_every_mask(with_cublas(), "attention_cublas");
}

TEST_CASE("cpu (given): attention and attention_cublas reject impossible arguments") {
  float* const none = nullptr;
  const ch05::Workspace workspace{none, none};
  const course::AttentionMask mask{};
  const auto run = [&](AttentionShape s, float scale, ch05::Workspace w) {
    ch05::attention(none, none, none, none, none, s, scale, mask, w, nullptr);
  };
  const ch05::Workspace some{reinterpret_cast<float*>(256), reinterpret_cast<float*>(512)};  // never dereferenced
  CHECK_THROWS_AS(run({1, 1, 0, 4, 64}, 0.125f, some), std::invalid_argument);   // n_q = 0
  CHECK_THROWS_AS(run({1, 1, 4, 4, 0}, 0.125f, some), std::invalid_argument);    // d = 0
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, -1.0f, some), std::invalid_argument);    // negative scale
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, 0.125f, workspace), std::invalid_argument);  // no workspace
  CHECK_THROWS_AS(run({1 << 16, 1 << 10, 64, 64, 64}, 0.125f, some), std::invalid_argument);  // > 2^31 elements
}
