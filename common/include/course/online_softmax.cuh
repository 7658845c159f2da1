// The running state of online softmax, for the chapters after 03 (masked softmax, flash
// attention, split-KV decoding). Chapter 03 derives it and has the learner write it;
// this is the library copy the later chapters build on.
//
//   MaxSum {m, l}: m = max of the values seen, l = sum of exp(x - m) over them.
//   The empty state is (-inf, 0); one value x is (x, 1).
//   merge(a, b): the state of both parts; associative and commutative, (-inf, 0) the identity.
#pragma once

#include "course/hd.hpp"

#include <cmath>

namespace course {

// log2(e): exp(x) = 2^(x log2 e), the conversion every kernel that exponentiates on ex2 needs.
inline constexpr float kLog2e = 1.4426950408889634f;

struct MaxSum {
  float m;
  float l;
};

COURSE_HD inline MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {-INFINITY, 0.0f};  // both empty: avoid exp(-inf + inf) = NaN
  return {m, a.l * expf(a.m - m) + b.l * expf(b.m - m)};
}

#ifdef __CUDACC__
// Lets course::warp_reduce / block_reduce (reduce.cuh) combine states.
__device__ inline MaxSum shfl_xor(MaxSum s, int lane_mask) {
  return {__shfl_xor_sync(0xffffffffu, s.m, lane_mask), __shfl_xor_sync(0xffffffffu, s.l, lane_mask)};
}

// 2^x and exp(x - m) = 2^((x - m) log2 e), on the multifunction unit: ex2.approx is within 2 ulp
// and flushes results below 2^-126 to 0 (far below any probability the tests resolve);
// expf or exp2f would add instructions per value for ranges softmax never needs.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float exp_shifted(float x, float m) {
  return exp2_approx((x - m) * kLog2e);
}

// merge as a reduction operator for course::warp_reduce / block_reduce.
struct MergeMaxSum {
  __device__ MaxSum operator()(MaxSum a, MaxSum b) const { return merge(a, b); }
  __device__ static MaxSum identity() { return {-INFINITY, 0.0f}; }
};

// The same reduction operator with the exponentials on the multifunction unit (exp_shifted)
// instead of expf's accurate sequence: half the instructions of each merge, for kernels
// whose rows are short enough that the reduction is a visible share of their work
// (chapter 04 merges log2(32) times per row), or whose merges lie between a row's last load
// and its first store (chapter 03's clusters). Within 2 ulp of merge per rescale factor.
// State: MaxSum, or any struct {float m; float l;} (chapter 03 has the learner define one).
template <class State = MaxSum>
struct MergeMaxSumApprox {
  __device__ State operator()(State a, State b) const {
    const float m = fmaxf(a.m, b.m);
    if (m == -INFINITY) return {-INFINITY, 0.0f};  // both empty, as merge
    return {m, a.l * exp_shifted(a.m, m) + b.l * exp_shifted(b.m, m)};
  }
  __device__ static State identity() { return {-INFINITY, 0.0f}; }
};
#endif

}  // namespace course
