#include "course/device_random.hpp"

#include "course/cuda_check.hpp"
#include "course/dtype.cuh"

namespace course {

namespace {

// splitmix64's finaliser: a well-mixed 64-bit hash of a counter.
__device__ std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Element i: two 24-bit uniforms from one hash, Box-Muller to a normal, and 3 in 256
// values made outliers.
template <class T>
__global__ void fill_logits_kernel(T* p, std::size_t n, std::uint64_t seed, float stddev) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const std::uint64_t h = mix(seed ^ mix(i));
    const float u1 = (float(h >> 40) + 0.5f) * 0x1p-24f;
    const float u2 = (float((h >> 16) & 0xFFFFFF) + 0.5f) * 0x1p-24f;
    float z = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    if ((h & 0xFF) < 3) z *= 20.0f;
    p[i] = from_float<T>(stddev * z);
  }
}

template <class T>
void fill(T* p, std::size_t n, std::uint64_t seed, float stddev, cudaStream_t stream) {
  if (n == 0) return;
  const int threads = 256;
  const std::size_t blocks = (n + threads - 1) / threads;
  fill_logits_kernel<<<unsigned(blocks < 65536 ? blocks : 65536), threads, 0, stream>>>(p, n, seed, stddev);
  COURSE_CHECK_LAUNCH();
}

}  // namespace

void fill_logits(float* p, std::size_t n, std::uint64_t seed, float stddev, cudaStream_t s) { fill(p, n, seed, stddev, s); }
void fill_logits(__half* p, std::size_t n, std::uint64_t seed, float stddev, cudaStream_t s) { fill(p, n, seed, stddev, s); }
void fill_logits(__nv_bfloat16* p, std::size_t n, std::uint64_t seed, float stddev, cudaStream_t s) { fill(p, n, seed, stddev, s); }

}  // namespace course
