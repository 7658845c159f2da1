// Chapter 01's suite: every kernel in dot_product.hpp against the float64 reference, on
// fresh random data, over lengths that straddle the warp (32), the block (256), the tile
// (32) and the grid, with outputs poisoned (NaN) before every launch.
//
// Run: ctest --preset exercises -L 01   (or build/exercises/bin/test_ch01 for doctest's output)
#include "dot_product.hpp"

#include "course/testing.hpp"

#include <cmath>
#include <string>
#include <vector>

namespace {

using course::DeviceBuffer;

// Tolerance of one fp32 dot product of length n, as a multiple of sum_i |a_i b_i|:
// whatever the order of the additions, each addition rounds by at most 2^-24 of a partial
// sum that is at most sum |a_i b_i|, and a tree of warp, block and grid sums keeps the
// chain of roundings short (~ log2 n + n / threads): 1e-5 is ~100x what it needs. It
// catches a dropped term on short vectors only (at n = 262145 it exceeds one term); the
// integer-data case below is the one that catches a single lost element at any length.
course::Tolerance dot_tolerance(double abs_sum) { return {1e-5 * abs_sum + 1e-30, 0.0, "fp32 dot: 1e-5 * sum|a_i b_i|"}; }

float run_dot(const std::vector<float>& a, const std::vector<float>& b) {
  DeviceBuffer<float> d_a(a), d_b(b), partials(ch01::kDotMaxBlocks), result(1);
  partials.poison();
  result.poison();
  ch01::dot(d_a.data(), d_b.data(), int(a.size()), partials.data(), result.data(), nullptr);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  return result.download()[0];
}

// Products in {-1, 0, 1}: every partial sum is an integer below 2^24, so any correct
// order of additions gives the exact sum, and one dropped or doubled element shows.
std::vector<float> small_integers(course::Rng& rng, int n) {
  std::vector<float> v(n);
  for (float& x : v) x = float(rng.uniform_int(-1, 1));
  return v;
}

const char* const kDotHint =
    "the grid-stride loop (every element, once), warp_reduce_sum's five shuffle steps, and "
    "the __syncthreads() between writing warp_sums and reading them";

}  // namespace

TEST_CASE("gpu: dot: random vectors, lengths around warp, block and grid sizes") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  // 262144 = kDotThreads * kDotMaxBlocks: beyond it every thread loops.
  for (int n : {1, 2, 31, 32, 33, 255, 256, 257, 1000, 8191, 262143, 262144, 262145, 3'000'017}) {
    const auto a = rng.normal(n), b = rng.normal(n);
    const double ref = course::reference::dot(a.data(), b.data(), n);
    const double got = run_dot(a, b);
    COURSE_CHECK_CLOSE(course::compare(std::vector<double>{got}, {ref},
                                       dot_tolerance(course::reference::dot_abs(a.data(), b.data(), n)),
                                       {1, 1}, "dot n=" + std::to_string(n), kDotHint));
  }
}

TEST_CASE("gpu: dot: integer data gives the exact sum, run after run") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (int n : {1, 33, 257, 4097, 262145, 5'000'011}) {
    const auto a = small_integers(rng, n), b = small_integers(rng, n);
    const double exact = course::reference::dot(a.data(), b.data(), n);
    const double first = run_dot(a, b);
    for (int run = 0; run < 3; ++run) {
      const double got = run == 0 ? first : run_dot(a, b);
      CHECK_MESSAGE(got == exact, "dot n=", n, " run ", run, ": expected exactly ", exact, ", got ",
                    got, "\n  likely cause: ",
                    std::isnan(got) ? "NaN: the kernel wrote nothing, or added unwritten memory"
                    : got != first  ? "the result changed between runs of the same input: a race "
                                      "(missing __syncthreads() in block_reduce_sum?)"
                                    : "elements skipped or counted twice: check the grid-stride "
                                      "loop's start, step and bound");
      if (got != exact) break;
    }
  }
}

TEST_CASE("gpu: dot: one huge term among small ones is not lost") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  const int n = 100'003;
  auto a = rng.normal(n), b = rng.normal(n);
  const int where = rng.uniform_int(0, n - 1);
  a[where] = 1e4f;
  b[where] = 1e4f;
  const double ref = course::reference::dot(a.data(), b.data(), n);
  COURSE_CHECK_CLOSE(course::compare(std::vector<double>{run_dot(a, b)}, {ref},
                                     dot_tolerance(course::reference::dot_abs(a.data(), b.data(), n)),
                                     {1, 1}, "dot with a[" + std::to_string(where) + "] = b[.] = 1e4",
                                     kDotHint));
}

namespace {

using QueryScoresFn = void (*)(const float*, const float*, int, int, float, float*, cudaStream_t);

void check_query_scores(QueryScoresFn fn, const char* name, course::Rng& rng) {
  const int dims[] = {1, 3, 31, 32, 33, 64, 100, 128, 256};
  const int lengths[] = {1, 7, 31, 32, 33, 1000, 4099, 70'001};
  for (int d : dims)
    for (int n_keys : lengths) {
      if (std::size_t(d) * n_keys > 5'000'000) continue;
      const auto q = rng.normal(d), K = rng.logits(std::size_t(n_keys) * d);
      const double scale = 1.0 / std::sqrt(double(d));
      DeviceBuffer<float> d_q(q), d_K(K), scores(n_keys);
      scores.poison();
      fn(d_q.data(), d_K.data(), n_keys, d, float(scale), scores.data(), nullptr);
      COURSE_CUDA_CHECK(cudaDeviceSynchronize());
      // Each score is a length-d dot product: its error is relative to sum_k |K_jk q_k|.
      double abs_max = 0;
      for (int j = 0; j < n_keys; ++j)
        abs_max = std::max(abs_max, course::reference::dot_abs(&K[std::size_t(j) * d], q.data(), d));
      const course::Tolerance tol{1e-5 * scale * abs_max, 1e-5, "fp32 length-d dot products"};
      COURSE_CHECK_CLOSE(course::compare(scores.download(),
                                         course::reference::query_scores(q, K, n_keys, d, scale), tol,
                                         {1, std::size_t(n_keys)},
                                         std::string(name) + " n_keys=" + std::to_string(n_keys) +
                                             " d=" + std::to_string(d),
                                         "lane l must cover k = l, l+32, ... up to d, and warps "
                                         "must stride over all keys"));
    }
}

}  // namespace

TEST_CASE("gpu: query_scores: one warp per key, any n_keys and d") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_query_scores(ch01::query_scores, "query_scores", rng);
}

TEST_CASE("gpu (given): query_scores_naive") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_query_scores(ch01::query_scores_naive, "query_scores_naive", rng);
}

namespace {

using ScoreMatrixFn = void (*)(const float*, const float*, int, int, int, float, float*, cudaStream_t);

void check_score_matrix(ScoreMatrixFn fn, const char* name, course::Rng& rng, int n_q, int n_k, int d) {
  const auto Q = rng.logits(std::size_t(n_q) * d), K = rng.logits(std::size_t(n_k) * d);
  const double scale = 1.0 / std::sqrt(double(d));
  DeviceBuffer<float> d_Q(Q), d_K(K), S(std::size_t(n_q) * n_k);
  S.poison();
  fn(d_Q.data(), d_K.data(), n_q, n_k, d, float(scale), S.data(), nullptr);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  double abs_max = 0;
  for (int i = 0; i < n_q; ++i)
    for (int j = 0; j < n_k; ++j)
      abs_max = std::max(abs_max, course::reference::dot_abs(&Q[std::size_t(i) * d],
                                                             &K[std::size_t(j) * d], d));
  const course::Tolerance tol{1e-5 * scale * abs_max, 1e-5, "fp32 length-d dot products"};
  COURSE_CHECK_CLOSE(course::compare(S.download(),
                                     course::reference::score_matrix(Q, K, n_q, n_k, d, scale), tol,
                                     {std::size_t(n_q), std::size_t(n_k)},
                                     std::string(name) + " n_q=" + std::to_string(n_q) +
                                         " n_k=" + std::to_string(n_k) + " d=" + std::to_string(d),
                                     "the two __syncthreads() per slice of d, and zero-filling "
                                     "tile elements outside Q, K or d"));
}

// (n_q, n_k, d): single elements, tile - 1 / tile / tile + 1 on every axis, d that is not
// a multiple of the tile (the last slice is partial), and a GPT-2-sized head.
constexpr int kShapes[][3] = {{1, 1, 1},     {1, 33, 64},    {31, 33, 64},  {32, 32, 32},
                              {33, 31, 33},  {33, 65, 64},   {100, 37, 100}, {64, 64, 31},
                              {257, 255, 128}, {5, 3000, 17}, {1024, 1024, 64}};

}  // namespace

TEST_CASE("gpu: score_matrix: shared-memory tiles, shapes around the tile size") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (const auto& s : kShapes) check_score_matrix(ch01::score_matrix, "score_matrix", rng, s[0], s[1], s[2]);
}

TEST_CASE("gpu (given): score_matrix_naive") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (const auto& s : kShapes)
    check_score_matrix(ch01::score_matrix_naive, "score_matrix_naive", rng, s[0], s[1], s[2]);
}

TEST_CASE("cpu (given): the launch functions reject impossible sizes before touching the GPU") {
  CHECK_THROWS_AS(ch01::dot(nullptr, nullptr, 0, nullptr, nullptr, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch01::query_scores(nullptr, nullptr, 0, 64, 1.0f, nullptr, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch01::score_matrix(nullptr, nullptr, 4, 4, 0, 1.0f, nullptr, nullptr), std::invalid_argument);
}
