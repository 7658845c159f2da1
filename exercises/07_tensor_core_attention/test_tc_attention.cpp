// Chapter 07's suite: flash_attention on tensor cores against the float64 attention
// reference, for every rung of the ladder (they must all give the same answer), fp16 and
// bf16, head_dim 64 and 128, every mask: no mask, causal, padded batches with key lengths
// n_k, 1 and 0 (rows that see nothing), n_q != n_k both ways, n_q = 1, and sequence lengths
// around the mma tile (16), the key tile (64) and the query blocks (64, 128).
//
// Every check: fresh random data rounded to the dtype (the reference sees the same rounded
// inputs), O and lse poisoned before the launch, NaN past the end of every input and
// poison past the end of every output (course/attention_testing.hpp). Tolerances
// (course/compare.hpp): O within attention_fp16_mma / attention_bf16_mma, which allow for P
// rounded to the dtype before P V; lse within lse_mma.
//
// Run: ctest --preset exercises -L 07   (or build/exercises/bin/test_ch07)
#include "tc_attention.hpp"

#include "course/attention_testing.hpp"
#include "course/testing.hpp"

#include <initializer_list>
#include <stdexcept>
#include <string>

using ch07::Rung;
using course::AttentionShape;
using course::testing::AttentionCase;

namespace {

template <class T>
course::Tolerance output_tolerance();
template <>
course::Tolerance output_tolerance<__half>() { return course::tolerance::attention_fp16_mma; }
template <>
course::Tolerance output_tolerance<__nv_bfloat16>() { return course::tolerance::attention_bf16_mma; }

template <class T>
bool check_rung(const AttentionCase& c, Rung rung) {
  if (!ch07::rung_available(rung)) return true;  // rung 6 off Hopper: nothing to check here
  const auto run = [rung](const T* Q, const T* K, const T* V, T* O, float* lse, const AttentionShape& s, float scale,
                          course::AttentionMask mask, cudaStream_t stream) {
    ch07::flash_attention(Q, K, V, O, lse, s, scale, mask, rung, stream);
  };
  const course::CompareReport report = course::testing::check_attention<T>(
      run, c, std::string("rung ") + ch07::rung_name(rung) + ", " + course::DType<T>::name, output_tolerance<T>(),
      course::tolerance::lse_mma);
  CHECK_MESSAGE(report.ok, report.message);
  return report.ok;
}

// Every (causal, padded) combination of `shape` on each of `rungs`: fp16 for no mask and for
// causal + padded, bf16 for causal and for padded (each dtype meets every kind of mask).
// Stops at the first failure: it says the most.
bool check_shape(course::Rng& rng, const AttentionShape& shape, std::initializer_list<Rung> rungs) {
  for (bool causal : {false, true})
    for (bool padded : {false, true}) {
      const AttentionCase c = course::testing::make_attention_case(rng, "tc", shape, causal, padded);
      for (Rung rung : rungs)
        if (!(causal == padded ? check_rung<__half>(c, rung) : check_rung<__nv_bfloat16>(c, rung))) return false;
    }
  return true;
}

// Rung 6 only where it runs (an H100 or H200, and a build for it); elsewhere it is left out.
constexpr std::initializer_list<Rung> kEveryRung = {Rung::mma, Rung::swizzle, Rung::pipelined, Rung::two_tiles,
                                                    Rung::tuned, Rung::wgmma};

}  // namespace

TEST_CASE("gpu: rung 1 (yours): lengths around the mma tile (16), key tile (64) and query block (64)") {
  COURSE_SKIP_WITHOUT_GPU(ch07::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  for (int d : {64, 128})
    for (int n : {1, 2, 15, 16, 17, 63, 64, 65, 127, 129, 200}) {
      CAPTURE(d);
      CAPTURE(n);
      if (!check_shape(rng, {3, 2, n, n, d}, {Rung::mma})) return;
    }
}

TEST_CASE("gpu: rung 3 (yours, the prefetch) and every other rung: lengths around the tiles and query blocks") {
  COURSE_SKIP_WITHOUT_GPU(ch07::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  for (int d : {64, 128})
    for (int n : {1, 17, 65, 128, 129, 257}) {
      CAPTURE(d);
      CAPTURE(n);
      if (!check_shape(rng, {2, 2, n, n, d}, kEveryRung)) return;
    }
}

TEST_CASE("gpu: every rung: n_q != n_k both ways, decoding (n_q = 1), rows that see nothing") {
  COURSE_SKIP_WITHOUT_GPU(ch07::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  // (batch, heads, n_q, n_k, d). Causal is bottom-right: with n_q > n_k the first n_q - n_k
  // queries see nothing; with n_q = 1 the query sees every key.
  const AttentionShape shapes[] = {{3, 2, 1, 100, 64},  {3, 1, 1, 1000, 128}, {3, 2, 40, 300, 64},
                                   {3, 2, 100, 40, 128}, {3, 1, 200, 65, 128}, {4, 3, 65, 1, 64},
                                   {3, 1, 64, 2048, 64}};
  for (const AttentionShape& shape : shapes)
    if (!check_shape(rng, shape, kEveryRung)) return;
}

TEST_CASE("gpu: every rung: rows much longer than a tile, 1000 and 4096 keys (long)") {
  COURSE_SKIP_WITHOUT_GPU(ch07::kMinMajor, 0);
  COURSE_SEEDED_RNG(rng);
  if (!check_shape(rng, {2, 1, 1000, 1000, 128}, kEveryRung)) return;
  // 4096 keys: the float64 reference takes seconds, so rung 1 and the two fastest only.
  const AttentionCase c = course::testing::make_attention_case(rng, "long", {1, 2, 4096, 4096, 64}, true, false);
  const AttentionCase d = course::testing::make_attention_case(rng, "long", {1, 1, 4096, 4096, 128}, false, false);
  for (Rung rung : {Rung::mma, Rung::tuned, Rung::wgmma})
    if (!check_rung<__nv_bfloat16>(c, rung) || !check_rung<__half>(d, rung)) return;
}

TEST_CASE("cpu (given): flash_attention rejects what it does not support") {
  const course::AttentionMask mask{};
  const auto run = [&](AttentionShape s, float scale, Rung rung) {
    ch07::flash_attention(static_cast<const __half*>(nullptr), nullptr, nullptr, nullptr, nullptr, s, scale, mask,
                          rung, nullptr);
  };
  CHECK_THROWS_AS(run({1, 1, 4, 4, 96}, 0.1f, Rung::mma), std::invalid_argument);    // head_dim 96
  CHECK_THROWS_AS(run({1, 1, 4, 4, 32}, 0.1f, Rung::tuned), std::invalid_argument);  // head_dim 32
  CHECK_THROWS_AS(run({1, 1, 0, 4, 64}, 0.1f, Rung::mma), std::invalid_argument);    // n_q = 0
  CHECK_THROWS_AS(run({1, 1, 4, 0, 64}, 0.1f, Rung::mma), std::invalid_argument);    // n_k = 0
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, 0.0f, Rung::mma), std::invalid_argument);    // scale 0
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, 0.1f, Rung(7)), std::invalid_argument);      // no rung 7
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, 0.1f, Rung(0)), std::invalid_argument);      // no rung 0
  CHECK(ch07::supports_head_dim(64));
  CHECK(ch07::supports_head_dim(128));
  CHECK_FALSE(ch07::supports_head_dim(80));
  CHECK(ch07::query_tile(Rung::mma) == 64);
  CHECK(ch07::query_tile(Rung::tuned) == 128);
  CHECK(ch07::query_tile(Rung::wgmma) == 128);
}
