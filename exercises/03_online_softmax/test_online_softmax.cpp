// Chapter 03's suite. The merge operator's algebra on the CPU (identity, commutativity,
// associativity, any split of a row); the warp and block reductions of states on the GPU
// for any block and group size; and both softmax kernels on every case of chapter 02,
// plus row lengths around the one-read kernel's block and cluster boundaries.
//
// Run: ctest --preset exercises -L 03   (or build/exercises/bin/test_ch03)
#include "online_softmax.hpp"

#include "course/softmax_testing.hpp"
#include "course/testing.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

using ch03::MaxSum;
using course::testing::check_softmax;

namespace {

const float kInf = std::numeric_limits<float>::infinity();

// The state of values[begin, end) computed directly in double: the ground truth.
MaxSum direct_state(const std::vector<float>& values, std::size_t begin, std::size_t end) {
  double m = -kInf, l = 0;
  for (std::size_t i = begin; i < end; ++i) m = std::max<double>(m, values[i]);
  if (m == -kInf) return {-kInf, 0.0f};
  for (std::size_t i = begin; i < end; ++i) l += std::exp(double(values[i]) - m);
  return {float(m), float(l)};
}

// m must match exactly (a max is exact); l to float32 rounding of a few merges.
std::string differ(MaxSum got, MaxSum want, double rtol = 1e-5) {
  const bool m_ok = got.m == want.m;
  const bool l_ok = std::isfinite(got.l) && std::fabs(double(got.l) - want.l) <= rtol * std::fabs(double(want.l)) + 1e-30;
  if (m_ok && l_ok) return "";
  return "expected (m, l) = (" + std::to_string(want.m) + ", " + std::to_string(want.l) + "), got (" +
         std::to_string(got.m) + ", " + std::to_string(got.l) + ")" +
         (!m_ok ? ": m must be the larger max" : ": l must be both sums rescaled to the common max");
}

// The merge of states, computed directly in double (not with the merge under test):
// m = max m_i, l = sum l_i exp(m_i - m).
MaxSum direct_merge(const MaxSum* states, int count) {
  double m = -kInf, l = 0;
  for (int i = 0; i < count; ++i) m = std::max<double>(m, states[i].m);
  if (m == -kInf) return {-kInf, 0.0f};
  for (int i = 0; i < count; ++i) l += states[i].l * std::exp(double(states[i].m) - m);
  return {float(m), float(l)};
}

MaxSum random_state(course::Rng& rng) {
  const auto v = rng.uniform(2, 0.0f, 1.0f);
  return {20.0f * v[0] - 10.0f, 1.0f + 99.0f * v[1]};
}

}  // namespace

TEST_CASE("cpu: merge: the empty state (-inf, 0) is the identity, and empty + empty stays empty") {
  COURSE_SEEDED_RNG(rng);
  const MaxSum empty{-kInf, 0.0f};
  for (int i = 0; i < 100; ++i) {
    const MaxSum s = random_state(rng);
    const std::string right = differ(ch03::merge(s, empty), s), left = differ(ch03::merge(empty, s), s);
    CHECK_MESSAGE(right == "", "merge(s, empty): ", right);
    CHECK_MESSAGE(left == "", "merge(empty, s): ", left);
    if (!right.empty() || !left.empty()) break;
  }
  const MaxSum both = ch03::merge(empty, empty);
  CHECK_MESSAGE((both.m == -kInf && both.l == 0.0f),
                "merge(empty, empty) must be (-inf, 0), got (", both.m, ", ", both.l,
                "): exp(-inf - (-inf)) is NaN, so the all-empty case needs its own answer");
}

TEST_CASE("cpu: merge: commutative and associative, up to rounding") {
  COURSE_SEEDED_RNG(rng);
  for (int i = 0; i < 1000; ++i) {
    const MaxSum a = random_state(rng), b = random_state(rng), c = random_state(rng);
    const std::string commute = differ(ch03::merge(a, b), ch03::merge(b, a));
    CHECK_MESSAGE(commute == "", "merge(a, b) vs merge(b, a): ", commute);
    const std::string assoc = differ(ch03::merge(ch03::merge(a, b), c), ch03::merge(a, ch03::merge(b, c)));
    CHECK_MESSAGE(assoc == "", "(a + b) + c vs a + (b + c): ", assoc);
    if (!commute.empty() || !assoc.empty()) break;
  }
}

TEST_CASE("cpu: merge: any split of a row, merged, gives the row's (m, l)") {
  COURSE_SEEDED_RNG(rng);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = rng.uniform_int(1, 3000);
    auto row = rng.logits(n, 3.0f);
    if (trial % 4 == 1) std::fill(row.begin(), row.begin() + n / 2, -kInf);  // an all -inf part
    // Cut the row at random points; fold each part value by value; merge the parts.
    std::vector<int> cuts{0, n};
    for (int k = rng.uniform_int(0, 6); k > 0; --k) cuts.push_back(rng.uniform_int(0, n));
    std::sort(cuts.begin(), cuts.end());
    MaxSum total{-kInf, 0.0f};
    for (std::size_t p = 0; p + 1 < cuts.size(); ++p) {
      MaxSum part{-kInf, 0.0f};
      for (int i = cuts[p]; i < cuts[p + 1]; ++i) part = ch03::merge(part, {row[i], 1.0f});
      total = ch03::merge(total, part);
    }
    const std::string d = differ(total, direct_state(row, 0, n), 1e-4);
    CHECK_MESSAGE(d == "", "row of ", n, " split at ", cuts.size() - 2, " points: ", d);
    if (!d.empty()) break;
  }
}

TEST_CASE("gpu: reduce_states: warp and block reductions of states, any block and group size") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (int threads : {32, 64, 96, 256, 1024})
    for (int group : {1, 31, 32, 33, 100, 1000, 4097}) {
      const int groups = 3;
      std::vector<MaxSum> states(std::size_t(groups) * group);
      for (auto& s : states) s = random_state(rng);
      for (std::size_t i = 0; i < states.size(); i += 3) states[i] = {-kInf, 0.0f};  // empty parts mixed in
      course::DeviceBuffer<MaxSum> d_states(states), d_out(groups);
      d_out.poison();
      ch03::reduce_states(d_states.data(), groups, group, threads, d_out.data(), nullptr);
      COURSE_CUDA_CHECK(cudaDeviceSynchronize());
      const auto out = d_out.download();
      for (int g = 0; g < groups; ++g) {
        const MaxSum want = direct_merge(&states[std::size_t(g) * group], group);
        const std::string d = differ(out[g], want, 1e-4);
        CHECK_MESSAGE(d == "", "threads=", threads, " group=", group, " g=", g, ": ", d,
                      " (check shfl_xor(MaxSum) moves both fields)");
      }
    }
}

namespace {

template <class T>
void check_cases(course::SoftmaxFn<T> fn, const char* name, const std::vector<course::testing::SoftmaxCase>& cases) {
  for (const auto& c : cases) COURSE_CHECK_CLOSE(check_softmax<T>(fn, c, name));
}

template <class T>
void check_everything(course::SoftmaxFn<T> fn, const char* name, course::Rng& rng) {
  check_cases<T>(fn, name, course::testing::softmax_edge_cases(rng));
  check_cases<T>(fn, name, course::testing::softmax_length_cases(rng));
}

// Lengths around the one-read kernel's boundaries for values of `bytes` bytes: a warp per
// row holding 64 or 128 bytes a lane (2 KiB, 4 KiB of row), a block of up to 1024 threads
// holding 128 bytes each (128 KiB), clusters of blocks, and one past the longest row kept
// on chip (it must then fall back to two reads).
std::vector<course::testing::SoftmaxCase> one_read_boundaries(course::Rng& rng, int bytes) {
  std::vector<course::testing::SoftmaxCase> cases;
  const int warp4 = 2048 / bytes, warp8 = 4096 / bytes, block = 131072 / bytes;
  const int longest = ch03::one_read_max_cols(bytes);
  for (int cols : {warp4, warp4 + 1, warp8, warp8 + 1, block - 1, block, block + 1, 2 * block + 3, 100003,
                   longest - 1, longest, longest + 1}) {
    const int rows = std::clamp(1'000'000 / cols, 2, 20);
    cases.push_back({"one-read boundary", rows, cols, rng.logits(std::size_t(rows) * cols, 2.0f)});
  }
  return cases;
}

}  // namespace

TEST_CASE("gpu: softmax_online: chapter 02's cases, fp32") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_everything<float>(ch03::softmax_online, "softmax_online", rng);
}

TEST_CASE("gpu: softmax_online: chapter 02's cases, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_everything<__half>(ch03::softmax_online, "softmax_online", rng);
  check_everything<__nv_bfloat16>(ch03::softmax_online, "softmax_online", rng);
}

TEST_CASE("gpu: softmax_one_read: chapter 02's cases and the block and cluster boundaries, fp32") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_everything<float>(ch03::softmax_one_read, "softmax_one_read", rng);
  check_cases<float>(ch03::softmax_one_read, "softmax_one_read", one_read_boundaries(rng, 4));
}

TEST_CASE("gpu: softmax_one_read: chapter 02's cases and the block and cluster boundaries, fp16 and bf16") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_everything<__half>(ch03::softmax_one_read, "softmax_one_read", rng);
  check_everything<__nv_bfloat16>(ch03::softmax_one_read, "softmax_one_read", rng);
  check_cases<__half>(ch03::softmax_one_read, "softmax_one_read", one_read_boundaries(rng, 2));
}

namespace {

// x and y one element into their allocations: the rows are no longer 16-byte aligned.
void one_read_misaligned(const float* x, float* y, int rows, int cols, cudaStream_t stream) {
  ch03::softmax_one_read(x + 1, y + 1, rows, cols, stream);
}

}  // namespace

TEST_CASE("gpu: softmax_one_read: rows that are not 16-byte aligned") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (int cols : {64, 1000, 20000}) {
    const int rows = 5;
    const std::size_t n = std::size_t(rows) * cols;
    const auto x = rng.logits(n + 1, 2.0f);
    course::DeviceBuffer<float> d_x(x), d_y(n + 1);
    d_y.poison();
    one_read_misaligned(d_x.data(), d_y.data(), rows, cols, nullptr);
    COURSE_CUDA_CHECK(cudaDeviceSynchronize());
    const auto y = d_y.download();
    const auto ref = course::reference::softmax_rows(course::widen(std::vector<float>(x.begin() + 1, x.end())), rows, cols);
    COURSE_CHECK_CLOSE(course::compare(std::vector<float>(y.begin() + 1, y.end()), ref, course::tolerance::prob_fp32,
                                       {std::size_t(rows), std::size_t(cols)},
                                       "softmax_one_read at x + 1, cols=" + std::to_string(cols),
                                       "16-byte vector accesses need 16-byte aligned addresses"));
  }
}

TEST_CASE("cpu (given): the launch functions reject empty shapes and bad block sizes") {
  CHECK_THROWS_AS(ch03::softmax_online(static_cast<const float*>(nullptr), nullptr, 0, 8, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch03::softmax_one_read(static_cast<const float*>(nullptr), nullptr, 8, 0, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(ch03::reduce_states(nullptr, 1, 1, 48, nullptr, nullptr), std::invalid_argument);
}
