// Tensor cores from CUDA C++ (sm_80+): the warp-wide matrix multiply-accumulate
// mma.sync.m16n8k16 and ldmatrix, which loads its operands from shared memory.
//
// One mma.sync multiplies a 16 x 16 tile A by a 16 x 8 tile B (fp16 or bf16) and adds the
// 16 x 8 product to an fp32 accumulator C, all in registers spread over the warp's 32
// lanes. Lane = 4 g + t (g = lane / 4 in 0..7, t = lane % 4 in 0..3) holds:
//   A (16 x 16, 4 registers of 2 values)  a[0]: row g,     cols 2t, 2t+1
//                                         a[1]: row g + 8, cols 2t, 2t+1
//                                         a[2]: row g,     cols 2t+8, 2t+9
//                                         a[3]: row g + 8, cols 2t+8, 2t+9
//   B (16 x 8, 2 registers of 2 values)   b[0]: rows 2t, 2t+1 of col g;  b[1]: rows 2t+8, 2t+9
//   C (16 x 8, 4 floats)                  c[0], c[1]: row g, cols 2t, 2t+1;  c[2], c[3]: row g + 8
// (docs/images/07_mma_fragments.svg draws them.) Note that C's layout is A's for half the
// columns: a score tile computed as C can become the A operand of the next product
// without leaving the registers, its floats paired by course::pack2 (dtype.cuh).
//
// ldmatrix.x4 loads four 8 x 8 matrices of 16-bit values: lanes 8i..8i+7 each give the
// shared-memory address of one 16-byte row of matrix i, and every lane receives, in
// register i, the two values (row g, cols 2t, 2t+1) of matrix i: exactly one register of
// an A or B fragment. The .trans form hands out the transpose (row 2t and 2t+1 of col g).
#pragma once

#include "course/dtype.cuh"  // pack2: two floats as one register of an operand

namespace course {

// The shared-memory address ldmatrix and cp.async want: a 32-bit offset in the shared window.
__device__ __forceinline__ unsigned shared_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// Four 8 x 8 matrices of 16-bit values; this lane's row address is `row`.
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], unsigned row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(row));
#endif
}

// The same, each matrix transposed: for a B operand stored row-major (k, n), like V.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], unsigned row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(row));
#endif
}

// c += A B for one m16n8k16 tile, fp32 accumulate; T is __half or __nv_bfloat16.
template <class T>
__device__ __forceinline__ void mma_16x8x16(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1);

template <>
__device__ __forceinline__ void mma_16x8x16<__half>(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

template <>
__device__ __forceinline__ void mma_16x8x16<__nv_bfloat16>(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                                           unsigned b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

}  // namespace course
