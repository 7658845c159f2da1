// Chapter 06's suite: flash_attention against the float64 attention reference, with both
// key tiles (the result must not depend on the tile), head_dim 64 and 128: no mask,
// causal, padded batches with key lengths n_k, 1 and 0 (rows that see nothing), n_q != n_k
// both ways, n_q = 1 (decoding), sequence lengths 1, tile - 1, tile, tile + 1, 1000, 4096.
//
// Every check: fresh random data, O and lse poisoned with NaN before the launch, NaN past
// the end of every input and poison past the end of every output (reads and writes past a
// partial tile are caught), O and lse both compared (course/attention_testing.hpp).
//
// Run: ctest --preset exercises -L 06   (or build/exercises/bin/test_ch06)
#include "flash_attention.hpp"

#include "course/attention_testing.hpp"
#include "course/testing.hpp"

#include <stdexcept>
#include <string>

using course::AttentionShape;
using course::testing::AttentionCase;

namespace {

course::testing::AttentionRunner flash(int key_tile) {
  return [key_tile](const float* Q, const float* K, const float* V, float* O, float* lse, const AttentionShape& s,
                    float scale, course::AttentionMask mask, cudaStream_t stream) {
    ch06::flash_attention(Q, K, V, O, lse, s, scale, mask, stream, key_tile);
  };
}

// Every (causal, padded) combination of `shape`, with both key tiles.
void check_masks_and_tiles(course::Rng& rng, const AttentionShape& shape) {
  for (bool causal : {false, true})
    for (bool padded : {false, true}) {
      const AttentionCase c = course::testing::make_attention_case(rng, "flash", shape, causal, padded);
      for (int key_tile : {32, 64}) {
        const course::CompareReport report =
            course::testing::check_attention(flash(key_tile), c, "flash_attention key_tile " + std::to_string(key_tile));
        CHECK_MESSAGE(report.ok, report.message);
        if (!report.ok) return;  // the first failure says the most
      }
    }
}

}  // namespace

TEST_CASE("gpu: flash_attention: sequence lengths around the query tile (64) and key tiles (32, 64)") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  for (int d : {64, 128})
    for (int n : {1, 2, 31, 32, 33, 63, 64, 65, 127, 129, 200}) {
      CAPTURE(n);
      check_masks_and_tiles(rng, {3, 2, n, n, d});
    }
}

TEST_CASE("gpu: flash_attention: n_q != n_k both ways, decoding (n_q = 1), rows that see nothing") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  // (batch, heads, n_q, n_k, d). Causal is bottom-right: with n_q > n_k the first n_q - n_k
  // queries see nothing; with n_q = 1 the query sees every key.
  const AttentionShape shapes[] = {{3, 2, 1, 100, 64},  {3, 1, 1, 1000, 128}, {3, 2, 40, 300, 64},
                                   {3, 2, 100, 40, 64}, {3, 1, 130, 65, 128}, {4, 3, 65, 1, 64},
                                   {3, 1, 64, 2048, 64}};
  for (const AttentionShape& shape : shapes) check_masks_and_tiles(rng, shape);
}

TEST_CASE("gpu: flash_attention: rows much longer than a tile, 1000 and 4096 keys (long)") {
  COURSE_SKIP_WITHOUT_GPU();
  COURSE_SEEDED_RNG(rng);
  check_masks_and_tiles(rng, {2, 1, 1000, 1000, 64});
  for (const auto& [d, causal] : {std::pair{64, true}, std::pair{128, false}}) {
    const AttentionCase c = course::testing::make_attention_case(rng, "long", {1, 1, 4096, 4096, d}, causal, false);
    COURSE_CHECK_CLOSE(course::testing::check_attention(flash(0), c, "flash_attention"));
  }
}

TEST_CASE("cpu (given): flash_attention rejects what it does not support") {
  const course::AttentionMask mask{};
  const auto run = [&](AttentionShape s, float scale, int key_tile) {
    ch06::flash_attention(nullptr, nullptr, nullptr, nullptr, nullptr, s, scale, mask, nullptr, key_tile);
  };
  CHECK_THROWS_AS(run({1, 1, 4, 4, 96}, 0.1f, 0), std::invalid_argument);   // head_dim 96
  CHECK_THROWS_AS(run({1, 1, 4, 4, 32}, 0.1f, 0), std::invalid_argument);   // head_dim 32
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, 0.1f, 48), std::invalid_argument);  // key tile 48
  CHECK_THROWS_AS(run({1, 1, 0, 4, 64}, 0.1f, 0), std::invalid_argument);   // n_q = 0
  CHECK_THROWS_AS(run({1, 1, 4, 4, 64}, 0.0f, 0), std::invalid_argument);   // scale 0
  CHECK(ch06::supports_head_dim(64));
  CHECK(ch06::supports_head_dim(128));
  CHECK_FALSE(ch06::supports_head_dim(80));
}
