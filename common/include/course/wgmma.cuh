// Hopper's warpgroup matrix multiply (sm_90a): wgmma.mma_async from CUDA C++.
//
// A warpgroup is 4 consecutive warps (128 threads, the first warp's index a multiple of 4).
// One wgmma.m64nNk16 multiplies A (64 x 16) by B (16 x N) and adds the product to D (64 x N,
// fp32), all four warps together: warp w of the group holds rows 16w .. 16w + 15 of A and D
// in exactly mma.sync's m16n8k16 layout (course/mma.cuh), N / 8 such 8-column blocks of D
// per thread. A comes from registers (4 per thread, as mma.sync's A) or from shared memory;
// B always from shared memory, which the tensor cores read themselves: no ldmatrix, and no
// registers for B's fragments.
//
// A shared operand is named by a 64-bit descriptor: its address, two strides and a swizzle.
// Tiles here use the 128-byte swizzle: an "atom" is 8 rows of 128 bytes (64 16-bit values),
// 1024 bytes aligned to 1024, and 16-byte chunk c of row r of an atom is stored at chunk
// c ^ r. K-major operands (Q and K: the sum runs along the row) step 16 values = 32 bytes
// along the row; rows 8 apart are `stride_bytes` apart (`leading_bytes` is unused: 16).
// N-major operands (V, whose sum runs down the columns: the `trans` flag) have atoms of 8
// keys x 64 columns, the next 64 columns `leading_bytes` away and the next 8 keys
// `stride_bytes` away.
//
// The calls are asynchronous: wgmma_fence() before the first (registers written since are
// then seen), the products, wgmma_commit(), then wgmma_wait<0>() before reading D. Shared
// memory written by threads (st.shared, cp.async) must be made visible to the tensor cores'
// reads with fence_async_shared() before the barrier that publishes it.
//
// Compiled only for sm_90a (arch-specific features: __CUDA_ARCH_FEAT_SM90_ALL); elsewhere the
// calls are empty and the caller must not launch the kernel (see ch07::rung_available).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace course {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define COURSE_WGMMA 1
#endif

// The descriptor of a shared tile with the 128-byte swizzle (PTX ISA, "Matrix Descriptor"):
// address, leading and stride byte offsets in units of 16 bytes, swizzle mode 1 in bits 62-63.
__device__ __forceinline__ unsigned long long wgmma_descriptor(unsigned shared_address, unsigned leading_bytes,
                                                              unsigned stride_bytes) {
  return static_cast<unsigned long long>((shared_address & 0x3FFFF) >> 4) |
         static_cast<unsigned long long>(leading_bytes >> 4) << 16 |
         static_cast<unsigned long long>(stride_bytes >> 4) << 32 | 1ull << 62;
}

__device__ __forceinline__ void wgmma_fence() {
#ifdef COURSE_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#ifdef COURSE_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#ifdef COURSE_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Threads' writes to shared memory, made visible to the tensor cores' reads (the async proxy).
__device__ __forceinline__ void fence_async_shared() {
#ifdef COURSE_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The operand lists of the asm below, written out: N / 2 accumulators per thread.
#define COURSE_WGMMA_D32 "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define COURSE_WGMMA_D64 "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// d (64 x 64) (+)= A (64 x 16) B (16 x 64), both from shared memory, both K-major.
// accumulate = false: d = A B (d's old values ignored).
template <class T>
__device__ __forceinline__ void wgmma_64x64_ss(float (&d)[32], unsigned long long a, unsigned long long b,
                                               bool accumulate) {
#ifdef COURSE_WGMMA
#define COURSE_WGMMA_SS(type)                                                                               \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                 \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." type "." type " {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n" \
               : COURSE_WGMMA_D32                                                                           \
               : "l"(a), "l"(b), "r"(int(accumulate)))
  if constexpr (std::is_same_v<T, __half>)
    COURSE_WGMMA_SS("f16");
  else
    COURSE_WGMMA_SS("bf16");
#undef COURSE_WGMMA_SS
#endif
}

// d (64 x N) += A (64 x 16, registers: mma.sync's A fragment per warp) B (16 x N, shared,
// N-major: the `trans` flag). N = 64 or 128.
template <class T, int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long b) {
  static_assert(N == 64 || N == 128, "N is 64 or 128");
#ifdef COURSE_WGMMA
#define COURSE_WGMMA_RS(n, type, regs, a_and_b, outs)                                                      \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                                  \
               "wgmma.mma_async.sync.aligned.m64n" #n "k16.f32." type "." type " {" regs "}, " a_and_b       \
               ", p, 1, 1, 1;\n}\n"                                                                        \
               : outs                                                                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b))
  constexpr bool kHalf = std::is_same_v<T, __half>;
  if constexpr (N == 64 && kHalf)
    COURSE_WGMMA_RS(64, "f16", "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31", "{%32, %33, %34, %35}, %36", COURSE_WGMMA_D32);
  else if constexpr (N == 64)
    COURSE_WGMMA_RS(64, "bf16", "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31", "{%32, %33, %34, %35}, %36", COURSE_WGMMA_D32);
  else if constexpr (kHalf)
    COURSE_WGMMA_RS(128, "f16", "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63", "{%64, %65, %66, %67}, %68", COURSE_WGMMA_D64);
  else
    COURSE_WGMMA_RS(128, "bf16", "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63", "{%64, %65, %66, %67}, %68", COURSE_WGMMA_D64);
#undef COURSE_WGMMA_RS
#endif
}

#undef COURSE_WGMMA_D32
#undef COURSE_WGMMA_D64

}  // namespace course
