// The storage types of the course (float, __half, __nv_bfloat16), read and written as
// float, one value or one 16-byte vector at a time. Math is float32 throughout; only
// the stored values are narrow.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

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

// A probability p in (0, 1] kept in T between two passes over a row (chapters 03 and 04
// compute each exponential once and keep it where the value was): fp16 keeps p * 2^10, so
// that p down to 2^-24 (not 2^-14) is still a normal number with fp16's full precision;
// float and bf16 (fp32's exponent range) keep p itself.
template <class T>
inline constexpr int kKeptLog2 = std::is_same_v<T, __half> ? 10 : 0;
template <class T>
inline constexpr float kKeptScale = float(1 << kKeptLog2<T>);

// The kVec<T> values packed in 16 bytes (as loaded), widened to float, and back. Word by
// word with the paired conversions (two halves per 32-bit word), so the vector never
// leaves registers.
template <class T>
__device__ __forceinline__ void unpack(const uint4& raw, float (&out)[kVec<T>]);
template <class T>
__device__ __forceinline__ uint4 pack(const float (&in)[kVec<T>]);

template <>
__device__ __forceinline__ void unpack<float>(const uint4& raw, float (&out)[4]) {
  out[0] = __uint_as_float(raw.x), out[1] = __uint_as_float(raw.y);
  out[2] = __uint_as_float(raw.z), out[3] = __uint_as_float(raw.w);
}
template <>
__device__ __forceinline__ uint4 pack<float>(const float (&in)[4]) {
  return {__float_as_uint(in[0]), __float_as_uint(in[1]), __float_as_uint(in[2]), __float_as_uint(in[3])};
}

namespace detail {
// Pairs of 16-bit values in one 32-bit word, low value first.
__device__ __forceinline__ float2 widen_word(unsigned word, __half) {
  __half2 pair;
  __builtin_memcpy(&pair, &word, sizeof word);
  return __half22float2(pair);
}
__device__ __forceinline__ unsigned narrow_word(float2 f, __half) {
  const __half2 pair = __float22half2_rn(f);
  unsigned word;
  __builtin_memcpy(&word, &pair, sizeof word);
  return word;
}
// A bfloat16 is the top half of a float: widening is a shift or a mask, and narrowing
// rounds the float's bits to nearest even before keeping the top half.
__device__ __forceinline__ float2 widen_word(unsigned word, __nv_bfloat16) {
  return make_float2(__uint_as_float(word << 16), __uint_as_float(word & 0xFFFF0000u));
}
__device__ __forceinline__ unsigned round_to_bf16_bits(float f) {
  const unsigned u = __float_as_uint(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0u;  // NaN stays NaN (rounding would carry)
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
__device__ __forceinline__ unsigned narrow_word(float2 f, __nv_bfloat16) {
#if __CUDA_ARCH__ >= 800
  unsigned word;  // one instruction on sm_80+: convert and pack two floats
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(word) : "f"(f.y), "f"(f.x));
  return word;
#else
  return round_to_bf16_bits(f.x) | (round_to_bf16_bits(f.y) << 16);
#endif
}

template <class T>
__device__ __forceinline__ void unpack_pairs(const uint4& raw, float (&out)[8]) {
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const float2 f = widen_word(words[w], T{});
    out[2 * w] = f.x, out[2 * w + 1] = f.y;
  }
}
template <class T>
__device__ __forceinline__ uint4 pack_pairs(const float (&in)[8]) {
  unsigned words[4];
#pragma unroll
  for (int w = 0; w < 4; ++w) words[w] = narrow_word(make_float2(in[2 * w], in[2 * w + 1]), T{});
  return {words[0], words[1], words[2], words[3]};
}
}  // namespace detail

// Two floats rounded to T (__half or __nv_bfloat16) and packed in one 32-bit word, `lo` in
// the low half: the form of an mma operand register and of a 4-byte store.
template <class T>
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  return detail::narrow_word(make_float2(lo, hi), T{});
}
// The reverse: the two T values of a 32-bit word as floats, the low half in .x.
template <class T>
__device__ __forceinline__ float2 unpack2(unsigned word) {
  return detail::widen_word(word, T{});
}

template <>
__device__ __forceinline__ void unpack<__half>(const uint4& raw, float (&out)[8]) {
  detail::unpack_pairs<__half>(raw, out);
}
template <>
__device__ __forceinline__ uint4 pack<__half>(const float (&in)[8]) {
  return detail::pack_pairs<__half>(in);
}
template <>
__device__ __forceinline__ void unpack<__nv_bfloat16>(const uint4& raw, float (&out)[8]) {
  detail::unpack_pairs<__nv_bfloat16>(raw, out);
}
template <>
__device__ __forceinline__ uint4 pack<__nv_bfloat16>(const float (&in)[8]) {
  return detail::pack_pairs<__nv_bfloat16>(in);
}

// max(m, each value of a raw vector), as a float. 16-bit values are compared in pairs as
// stored (one max instruction per two values; the max of rounded values needs no
// widening to be exact), and only the winner of each vector is widened.
template <class T>
__device__ __forceinline__ float max_into(float m, const uint4& raw) {
  if constexpr (kVec<T> == 4) {
    float v[4];
    unpack<T>(raw, v);
    return fmaxf(fmaxf(m, fmaxf(v[0], v[1])), fmaxf(v[2], v[3]));
  } else {
    using Pair = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;
    const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
    Pair pairs[4];
    __builtin_memcpy(pairs, words, sizeof words);
    const Pair top = __hmax2(__hmax2(pairs[0], pairs[1]), __hmax2(pairs[2], pairs[3]));
    unsigned word;
    __builtin_memcpy(&word, &top, sizeof word);
    const float2 f = detail::widen_word(word, T{});
    return fmaxf(m, fmaxf(f.x, f.y));
  }
}

// out[i] = p[i] for i < kVec<T>, one 16-byte load; p must be 16-byte aligned.
template <class T>
__device__ __forceinline__ void load_vec(const T* p, float (&out)[kVec<T>]) {
  unpack<T>(*reinterpret_cast<const uint4*>(p), out);
}

// p[i] = in[i] for i < kVec<T>, one 16-byte store; p must be 16-byte aligned.
template <class T>
__device__ __forceinline__ void store_vec(T* p, const float (&in)[kVec<T>]) {
  *reinterpret_cast<uint4*>(p) = pack<T>(in);
}

}  // namespace course
