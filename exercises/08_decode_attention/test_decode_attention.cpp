// Chapter 08's suite: decode_attention against the float64 attention reference (one query
// per head, the cache as keys, each sequence's length as its padding mask), fp16 and bf16,
// head_dim 64 and 128, GQA groups 1, 4 and 8: lengths 1, tile - 1, tile, tile + 1, chunk - 1,
// chunk, chunk + 1 and 0 (O = 0, lse = -inf), 100k positions, several split counts (the
// result must not depend on them); then the FP8 cache against the reference computed on
// the dequantized cache, and the E4M3 decoding and quantizing (given).
//
// Every check: fresh random data, NaN in every cache position past a sequence's length
// (never to be read), O, lse and the split workspace poisoned with NaN before the launch (a
// split whose state is never written, or read from the wrong place, shows), and O and lse
// followed by more poison that must stay untouched (a store past their end shows).
//
// Run: ctest --preset exercises -L 08   (or build/exercises/bin/test_ch08)
#include "decode_attention.hpp"

#include "course/attention.hpp"
#include "course/testing.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using ch08::CacheShape;

namespace {

// One decoding step on the host. q: [batch, heads, d]; K, V: [batch, kv_heads, max_len, d]
// with NaN past each length.
struct DecodeCase {
  std::string name;
  CacheShape shape;
  std::vector<int> lengths;
  std::vector<float> q, K, V;
};

std::string describe(const DecodeCase& c, int splits) {
  const CacheShape& s = c.shape;
  std::string lengths;
  for (std::size_t b = 0; b < c.lengths.size() && b < 8; ++b) lengths += (b ? "," : "") + std::to_string(c.lengths[b]);
  if (c.lengths.size() > 8) lengths += ",...";
  return c.name + ": [batch " + std::to_string(s.batch) + ", heads " + std::to_string(s.heads) + ", kv_heads " +
         std::to_string(s.kv_heads) + ", max_len " + std::to_string(s.max_len) + ", d " + std::to_string(s.head_dim) +
         "], lengths {" + lengths + "}, " + std::to_string(splits) + " splits";
}

DecodeCase make_case(course::Rng& rng, std::string name, CacheShape s, std::vector<int> lengths) {
  DecodeCase c{std::move(name), s, std::move(lengths), {}, {}, {}};
  REQUIRE(int(c.lengths.size()) == s.batch);
  c.q = rng.logits(std::size_t(s.batch) * s.heads * s.head_dim, 1.0f, 4.0f);
  const std::size_t cache = std::size_t(s.batch) * s.kv_heads * s.max_len * s.head_dim;
  c.K = rng.logits(cache, 1.0f, 4.0f);
  c.V = rng.normal(cache);
  for (int b = 0; b < s.batch; ++b)
    for (int kv = 0; kv < s.kv_heads; ++kv)
      for (int j = c.lengths[b]; j < s.max_len; ++j)
        for (int k = 0; k < s.head_dim; ++k) {
          const std::size_t at = ((std::size_t(b) * s.kv_heads + kv) * s.max_len + j) * s.head_dim + k;
          c.K[at] = c.V[at] = std::nanf("");  // past the length: must never be read
        }
  return c;
}

// The reference on the values the GPU sees (q, K, V rounded to T, or the dequantized FP8
// cache): every query head gets its kv head's rows, the length is the padding mask.
course::reference::Attention reference(const DecodeCase& c, const std::vector<double>& q,
                                       const std::vector<double>& K, const std::vector<double>& V) {
  const CacheShape& s = c.shape;
  const course::AttentionShape shape{s.batch, s.heads, 1, s.max_len, s.head_dim};
  std::vector<float> Kx(shape.kv_elements()), Vx(shape.kv_elements());
  const std::size_t row = std::size_t(s.max_len) * s.head_dim;  // one head's cache
  for (int b = 0; b < s.batch; ++b)
    for (int h = 0; h < s.heads; ++h) {
      const std::size_t from = (std::size_t(b) * s.kv_heads + h / s.group()) * row;
      const std::size_t to = (std::size_t(b) * s.heads + h) * row;
      std::copy(K.begin() + from, K.begin() + from + row, Kx.begin() + to);
      std::copy(V.begin() + from, V.begin() + from + row, Vx.begin() + to);
    }
  const std::vector<float> qf(q.begin(), q.end());
  return course::reference::attention(qf, Kx, Vx, shape, course::default_scale(s.head_dim), false, c.lengths);
}

template <class T>
course::Tolerance output_tolerance() {
  return std::is_same_v<T, __half> ? course::tolerance::attention_fp16_mma : course::tolerance::attention_bf16_mma;
}

// Runs decode_attention on c with T storage (and an FP8 cache if fp8) and `splits` chunks;
// checks O and lse against the reference, sequences of length 0 exactly (O = 0, lse = -inf).
template <class T>
course::CompareReport check_decode(const DecodeCase& c, int splits, bool fp8) {
  const CacheShape& s = c.shape;
  const std::vector<T> q = course::narrow<T>(c.q), K = course::narrow<T>(c.K), V = course::narrow<T>(c.V);
  const std::size_t pairs = std::size_t(s.batch) * s.heads;  // (b, h): a row of O, an lse
  constexpr std::size_t kTailRows = 4;                           // poisoned rows after O and lse
  course::DeviceBuffer<T> d_q(q), d_K(K), d_V(V), d_O(q.size() + kTailRows * s.head_dim);
  course::DeviceBuffer<float> d_lse(pairs + kTailRows);
  course::DeviceBuffer<int> d_lengths(c.lengths);
  course::DeviceBuffer<unsigned char> workspace(ch08::workspace_bytes(s, splits));
  std::vector<double> Kd = course::widen(K), Vd = course::widen(V);
  const float scale = course::default_scale(s.head_dim);
  d_O.poison();
  d_lse.poison();
  workspace.poison();
  if (fp8) {
    const std::size_t rows = K.size() / s.head_dim;
    course::DeviceBuffer<std::uint8_t> K8(K.size()), V8(V.size());
    course::DeviceBuffer<float> K_scale(rows), V_scale(rows);
    ch08::quantize_fp8(d_K.data(), K8.data(), K_scale.data(), rows, s.head_dim, nullptr);
    ch08::quantize_fp8(d_V.data(), V8.data(), V_scale.data(), rows, s.head_dim, nullptr);
    ch08::decode_attention(d_q.data(), ch08::Fp8Cache{K8.data(), V8.data(), K_scale.data(), V_scale.data()},
                           d_lengths.data(), d_O.data(), d_lse.data(), s, scale, splits, workspace.data(), nullptr);
    // The reference reads the cache as the kernel must: e4m3(byte) * the row's scale.
    const auto k8 = K8.download(), v8 = V8.download();
    const auto ks = K_scale.download(), vs = V_scale.download();
    for (std::size_t i = 0; i < Kd.size(); ++i) {
      Kd[i] = double(ch08::e4m3_to_float(k8[i])) * ks[i / s.head_dim];
      Vd[i] = double(ch08::e4m3_to_float(v8[i])) * vs[i / s.head_dim];
    }
    COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  } else {
    ch08::decode_attention(d_q.data(), d_K.data(), d_V.data(), d_lengths.data(), d_O.data(), d_lse.data(), s, scale,
                           splits, workspace.data(), nullptr);
  }
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  const auto want = reference(c, course::widen(q), Kd, Vd);
  std::vector<double> got_O = course::widen(d_O.download()), got_lse = course::widen(d_lse.download());
  std::vector<double> want_lse = want.lse;
  const std::string what = std::string(fp8 ? "decode_attention FP8 cache, " : "decode_attention, ") +
                           course::DType<T>::name + " " + describe(c, splits);
  for (auto [out, size, name] : {std::tuple{&got_O, q.size(), "O"}, std::tuple{&got_lse, pairs, "lse"}}) {
    if (course::count_written(*out, size, out->size()) > 0)
      return {false, what + ": wrote past the end of " + name + " (a (b, h) pair index past batch * heads)"};
    out->resize(size);
  }
  const int d = s.head_dim;
  for (std::size_t r = 0; r < want_lse.size(); ++r) {  // r = b * heads + h
    if (!std::isinf(want_lse[r])) continue;
    bool zeros = true;
    for (int k = 0; k < d; ++k) zeros = zeros && got_O[r * d + k] == 0.0;
    if (!zeros || !(std::isinf(got_lse[r]) && got_lse[r] < 0))
      return {false, what + ": sequence " + std::to_string(r / s.heads) + " has length 0: expected O = 0 and "
                     "lse = -inf for its head " + std::to_string(r % s.heads) + ", got O[0] = " +
                     std::to_string(got_O[r * d]) + ", lse = " + std::to_string(got_lse[r]) +
                     ". An empty chunk's state is (-inf, 0, 0); merging only empty states must not form -inf - (-inf)."};
    got_lse[r] = want_lse[r] = 0.0;
  }
  const course::CompareReport o = course::compare(
      got_O, want.O, output_tolerance<T>(), {pairs, std::size_t(d)}, what + ", O [rows = batch*heads, d]",
      "each chunk's output must be rescaled to the common max before the sum, and query head h reads kv head "
      "h / group");
  if (!o.ok) return o;
  return course::compare(got_lse, want_lse, course::tolerance::lse_mma, {std::size_t(s.batch), std::size_t(s.heads)},
                         what + ", lse [batch, heads]", "lse = m + ln l over the whole sequence, natural log");
}

// fp16 and bf16, each split count.
void check_both(const DecodeCase& c, std::initializer_list<int> splits, bool fp8 = false) {
  for (int n : splits) {
    const auto half = check_decode<__half>(c, n, fp8);
    CHECK_MESSAGE(half.ok, half.message);
    const auto bf16 = check_decode<__nv_bfloat16>(c, n, fp8);
    CHECK_MESSAGE(bf16.ok, bf16.message);
    if (!half.ok || !bf16.ok) return;  // the first failure says the most
  }
}

// Lengths around the 32-position tile and the chunk (max_len 1000 in 4 splits: chunks of
// 256), a length of 0, the full cache; every supported head_dim and group 1, 4, 8.
std::vector<DecodeCase> length_cases(course::Rng& rng) {
  std::vector<DecodeCase> cases;
  const std::vector<int> lengths = {1, 31, 32, 33, 255, 256, 257, 0, 1000, 513};
  for (int d : {64, 128})
    for (const auto& [heads, kv_heads] : {std::pair{4, 4}, std::pair{8, 2}, std::pair{8, 1}})
      cases.push_back(make_case(rng, "lengths around the tile and the chunk",
                                {int(lengths.size()), heads, kv_heads, 1000, d}, lengths));
  return cases;
}

}  // namespace

TEST_CASE("gpu: decode_attention: lengths 0, 1, tile +- 1, chunk +- 1 and full, head_dim 64 and 128, GQA groups 1, 4 and 8") {
  COURSE_SKIP_WITHOUT_GPU(ch08::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  for (const DecodeCase& c : length_cases(rng)) check_both(c, {1, 4});  // one split: no combine
}

TEST_CASE("gpu: decode_attention: the result does not depend on the number of splits") {
  COURSE_SKIP_WITHOUT_GPU(ch08::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  const DecodeCase c = make_case(rng, "split counts", {3, 8, 2, 2000, 128}, {2000, 1, 777});
  check_both(c, {1, 2, 3, 7, 16, 63, 128});
}

TEST_CASE("gpu: decode_attention: 100k positions, batch 1 (long)") {
  COURSE_SKIP_WITHOUT_GPU(ch08::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  const DecodeCase c = make_case(rng, "long cache", {1, 8, 2, 100000, 128}, {100000});
  check_both(c, {1, 64});
}

TEST_CASE("gpu: decode_attention: an FP8 cache, against the reference on the dequantized cache") {
  COURSE_SKIP_WITHOUT_GPU(ch08::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  for (const DecodeCase& c : length_cases(rng)) check_both(c, {4}, true);
  const DecodeCase c = make_case(rng, "split counts", {3, 8, 2, 2000, 128}, {2000, 1, 777});
  check_both(c, {1, 7, 128}, true);
}

TEST_CASE("gpu (given): resident_blocks: a split block fits on an SM, and FP8's smaller tiles fit as many or more") {
  COURSE_SKIP_WITHOUT_GPU(ch08::kMinMajor, 0);
  for (int d : {64, 128})
    for (int kv_heads : {32, 8, 4}) {
      const CacheShape s{1, 32, kv_heads, 1, d};
      CAPTURE(d);
      CAPTURE(kv_heads);
      CHECK(ch08::resident_blocks(s, false) >= 1);
      CHECK(ch08::resident_blocks(s, true) >= ch08::resident_blocks(s, false));
    }
  CHECK(ch08::resident_blocks({1, 32, 3, 1, 128}, false) == 0);  // unsupported: group 32 / 3
}

TEST_CASE("gpu (given): quantize_fp8: each value within E4M3's rounding of its row's scale") {
  COURSE_SKIP_WITHOUT_GPU(ch08::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  const int rows = 37, d = 128;
  std::vector<float> x = rng.logits(std::size_t(rows) * d, 1.0f, 20.0f);
  std::fill_n(x.begin(), d, 0.0f);  // a row of zeros: scale 0, bytes 0
  const std::vector<__half> xh = course::narrow<__half>(x);
  course::DeviceBuffer<__half> d_x(xh);
  course::DeviceBuffer<std::uint8_t> x8(x.size());
  course::DeviceBuffer<float> scale(rows);
  ch08::quantize_fp8(d_x.data(), x8.data(), scale.data(), rows, d, nullptr);
  const auto bytes = x8.download();
  const auto scales = scale.download();
  for (int r = 0; r < rows; ++r) {
    double amax = 0;
    for (int k = 0; k < d; ++k) amax = std::max(amax, std::fabs(double(__half2float(xh[r * d + k]))));
    CHECK(scales[r] == doctest::Approx(amax / 448).epsilon(1e-6));
    for (int k = 0; k < d; ++k) {
      const double want = __half2float(xh[r * d + k]);
      const double got = double(ch08::e4m3_to_float(bytes[r * d + k])) * scales[r];
      // 3 mantissa bits: half a step is 2^-4 relative; below 2^-6 (subnormals) a step is 2^-9 of the scale.
      CHECK_MESSAGE(std::fabs(got - want) <= std::fabs(want) / 16 + scales[r] * std::ldexp(1.0, -10) + 1e-30,
                    "row ", r, " col ", k, ": x = ", want, ", dequantized ", got);
    }
  }
}

TEST_CASE("cpu (given): e4m3_to_float decodes sign, exponent, mantissa and subnormals") {
  CHECK(ch08::e4m3_to_float(0x00) == 0.0f);
  CHECK(ch08::e4m3_to_float(0x38) == 1.0f);               // exponent 7 (bias 7), mantissa 0
  CHECK(ch08::e4m3_to_float(0xB8) == -1.0f);              // the sign bit
  CHECK(ch08::e4m3_to_float(0x3C) == 1.5f);               // mantissa 4 / 8
  CHECK(ch08::e4m3_to_float(0x7E) == 448.0f);             // the largest: 2^8 * 1.75
  CHECK(ch08::e4m3_to_float(0x08) == std::ldexp(1.0f, -6));  // the smallest normal
  CHECK(ch08::e4m3_to_float(0x01) == std::ldexp(1.0f, -9));  // the smallest subnormal
  CHECK(std::isnan(ch08::e4m3_to_float(0x7F)));
  CHECK(std::isnan(ch08::e4m3_to_float(0xFF)));
}

TEST_CASE("cpu (given): decode_attention rejects what it does not support") {
  const auto run = [](CacheShape s, int splits) {
    int workspace = 0;
    ch08::decode_attention(static_cast<const __half*>(nullptr), static_cast<const __half*>(nullptr), nullptr, nullptr,
                           nullptr, nullptr, s, 0.1f, splits, &workspace, nullptr);
  };
  CHECK_THROWS_AS(run({1, 8, 8, 100, 96}, 1), std::invalid_argument);   // head_dim 96
  CHECK_THROWS_AS(run({1, 6, 2, 100, 64}, 1), std::invalid_argument);   // group 3
  CHECK_THROWS_AS(run({1, 8, 3, 100, 64}, 1), std::invalid_argument);   // heads not a multiple of kv_heads
  CHECK_THROWS_AS(run({1, 8, 8, 100, 64}, 0), std::invalid_argument);   // no split
  CHECK_THROWS_AS(run({1, 8, 8, 100, 64}, ch08::kMaxSplits + 1), std::invalid_argument);
  CHECK_THROWS_AS(run({0, 8, 8, 100, 64}, 1), std::invalid_argument);   // batch 0
  CHECK(ch08::supports({1, 32, 8, 100, 128}));
  CHECK_FALSE(ch08::supports({1, 32, 2, 100, 128}));  // group 16
  CHECK(ch08::choose_splits({1, 32, 8, 131072, 128}, 132) == 16);  // a block per SM: 132 / 8 kv heads
  CHECK(ch08::choose_splits({64, 32, 8, 4096, 128}, 132) == 1);    // 512 blocks already
  CHECK(ch08::choose_splits({1, 32, 8, 300, 128}, 132) == 1);      // no chunk under 256 positions
  CHECK(ch08::choose_splits({1, 32, 8, 131072, 128}, 132, 3) == 49);  // 3 blocks per SM: 396 / 8
  CHECK(ch08::choose_splits({8, 32, 8, 131072, 128}, 132, 3) == 6);   // 396 / 64
  CHECK(ch08::choose_splits({64, 32, 8, 131072, 128}, 132, 3) == 3);  // 512 blocks on 396 slots: 3 splits fill 97%
}
