// Random logits generated on the GPU, for the chapter executables' large benchmarks
// (a quarter-billion values would take seconds on the CPU). Normal(0, stddev) from a
// counter-based hash, with ~1% outliers 20x larger, like course::Rng::logits.
// Deterministic for a given seed; not for tests, which draw on the CPU.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace course {

void fill_logits(float* p, std::size_t n, std::uint64_t seed, float stddev = 1.0f,
                 cudaStream_t stream = nullptr);
void fill_logits(__half* p, std::size_t n, std::uint64_t seed, float stddev = 1.0f,
                 cudaStream_t stream = nullptr);
void fill_logits(__nv_bfloat16* p, std::size_t n, std::uint64_t seed, float stddev = 1.0f,
                 cudaStream_t stream = nullptr);

}  // namespace course
