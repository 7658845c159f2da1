// Seeded random inputs. Every check draws fresh data; the seed is printed with any
// failure so it can be replayed: COURSE_SEED=<seed> ctest ... (or the test binary).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace course {

// COURSE_SEED from the environment when set, else a fresh one.
std::uint64_t pick_seed();

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : seed_(seed), engine_(seed) {}
  std::uint64_t seed() const { return seed_; }

  std::vector<float> normal(std::size_t n, float mean = 0.0f, float stddev = 1.0f);
  std::vector<float> uniform(std::size_t n, float lo, float hi);
  // Logit-like data: normal, with ~1% outliers `outlier_scale` times larger, so a softmax
  // over a row is neither flat (all near 1/n) nor one-hot.
  std::vector<float> logits(std::size_t n, float stddev = 1.0f, float outlier_scale = 20.0f);
  int uniform_int(int lo, int hi);  // in [lo, hi]

 private:
  std::uint64_t seed_;
  std::mt19937_64 engine_;
};

}  // namespace course
