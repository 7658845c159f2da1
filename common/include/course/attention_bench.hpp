// The attention chapters' benchmark harness (05 to 08): random Q, K, V on the GPU, one
// checked run of a version against the float64 reference on sampled rows, then timed runs.
#pragma once

#include "course/attention.hpp"
#include "course/compare.hpp"
#include "course/device_buffer.hpp"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <string>

namespace course {

// One problem on the GPU: Q, K, V random (normal, stddev 0.5, with ~1% outliers x20, drawn on the GPU),
// O and lse to be written. No padding mask: benchmarks time full rows. T: how Q, K, V and O
// are stored (float for chapters 05-06, __half or __nv_bfloat16 for chapter 07); lse is float.
template <class T>
struct AttentionProblemOf {
  AttentionShape shape;
  bool causal;
  float scale;
  DeviceBuffer<T> Q, K, V, O;
  DeviceBuffer<float> lse;
  Tolerance o_tolerance, lse_tolerance;  // the checked run's
  AttentionProblemOf(const AttentionShape& shape, bool causal, std::uint64_t seed, Tolerance o_tolerance,
                     Tolerance lse_tolerance);
  AttentionMask mask() const { return {causal, nullptr}; }
};
struct AttentionProblem : AttentionProblemOf<float> {
  AttentionProblem(const AttentionShape& shape, bool causal, std::uint64_t seed)
      : AttentionProblemOf(shape, causal, seed, tolerance::attention_fp32, tolerance::lse_fp32) {}
};

// Bytes of Q, K, V, O and lse in fp32: what any attention needs besides its workspace.
std::size_t attention_io_bytes(const AttentionShape& shape);

struct AttentionRun {
  double ms = 0;      // median
  double tflops = 0;  // attention_flops / time
  bool ok = false;    // sampled rows of O and lse match the reference
};

// Poisons O and lse, runs `work` once and checks 8 sampled rows (printing the report on
// stderr if wrong), then times `work`: the median of `repeats` runs (3 if one takes over
// a second), L2 cold before each.
template <class T>
AttentionRun bench_attention(AttentionProblemOf<T>& problem, const std::function<void(cudaStream_t)>& work,
                             int repeats, const std::string& what);

}  // namespace course
