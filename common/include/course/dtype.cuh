// The storage types of the course (float, __half, __nv_bfloat16), read and written as
// float, one value or one 16-byte vector at a time. Math is float32 throughout; only
// the stored values are narrow.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace course {

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

template <class T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Elements of T in one 16-byte access: 4 floats or 8 halves. A warp of 16-byte accesses
// moves 512 contiguous bytes per instruction, the widest load a thread can issue.
template <class T>
inline constexpr int kVec = 16 / sizeof(T);

// out[i] = p[i] for i < kVec<T>, one 16-byte load; p must be 16-byte aligned.
template <class T>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[kVec<T>]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) out[i] = to_float(v[i]);
}

// p[i] = in[i] for i < kVec<T>, one 16-byte store; p must be 16-byte aligned.
template <class T>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[kVec<T>]) {
  uint4 raw;
  T* v = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) v[i] = from_float<T>(in[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

}  // namespace course
