// Warp and block reductions for any associative operation (chapter 01 derives the sum;
// later chapters use these for max, sum and chapter 03's (max, sum) pairs).
//
//   warp_reduce(v, op):  result valid in every lane of the warp. warp_reduce<16>(v, op):
//     the same within each half-warp (two rows per warp, chapter 04); every lane calls it.
//   quad_reduce(v, op):  over the 4 lanes 4g .. 4g + 3 of a quad, valid in each of them
//     (an mma accumulator's row lives in one quad: chapters 07 and 08).
//   block_reduce(v, op, scratch):  result valid in every thread of the block.
//     scratch: __shared__ storage for 32 values of v's type. blockDim.x must be a
//     multiple of 32. Ends with a barrier, so the same scratch can be used by the next
//     call at once. Every thread of the block must call it (it contains __syncthreads).
// A value type other than float joins in by overloading shfl_xor(value, lane_mask).
#pragma once

#include <cmath>

namespace course {

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
  __device__ static float identity() { return 0.0f; }
};

struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ static float identity() { return -INFINITY; }
};

__device__ inline float shfl_xor(float v, int lane_mask) {
  return __shfl_xor_sync(0xffffffffu, v, lane_mask);
}

// Butterfly: after log2(32) = 5 exchanges every lane has combined all 32 values.
// warp_reduce<kLanes>: the same within each group of kLanes lanes (16: each half-warp).
template <int kLanes = 32, class V, class Op>
__device__ V warp_reduce(V v, Op op) {
  static_assert(kLanes >= 2 && kLanes <= 32 && (kLanes & (kLanes - 1)) == 0, "a power of two up to 32 lanes");
  for (int mask = kLanes / 2; mask > 0; mask /= 2) v = op(v, shfl_xor(v, mask));
  return v;
}

template <class V, class Op>
__device__ __forceinline__ V quad_reduce(V v, Op op) {
  v = op(v, shfl_xor(v, 1));
  return op(v, shfl_xor(v, 2));
}

template <class V, class Op>
__device__ V block_reduce(V v, Op op, V* scratch) {
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int n_warps = blockDim.x / 32;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();  // all warp partials are in scratch
  // Every warp combines the partials itself: no second barrier to broadcast a result.
  v = warp_reduce(lane < n_warps ? scratch[lane] : Op::identity(), op);
  __syncthreads();  // everyone has read scratch before a next call overwrites it
  return v;
}

}  // namespace course
