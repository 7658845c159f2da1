#include "course/random.hpp"

#include <cstdlib>
#include <string>

namespace course {

std::uint64_t pick_seed() {
  if (const char* env = std::getenv("COURSE_SEED"); env && *env) return std::stoull(env);
  std::random_device device;
  return (std::uint64_t{device()} << 32) ^ device();
}

std::vector<float> Rng::normal(std::size_t n, float mean, float stddev) {
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = dist(engine_);
  return v;
}

std::vector<float> Rng::uniform(std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(engine_);
  return v;
}

std::vector<float> Rng::logits(std::size_t n, float stddev, float outlier_scale) {
  std::vector<float> v = normal(n, 0.0f, stddev);
  std::bernoulli_distribution is_outlier(0.01);
  for (float& x : v)
    if (is_outlier(engine_)) x *= outlier_scale;
  return v;
}

int Rng::uniform_int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(engine_); }

}  // namespace course
