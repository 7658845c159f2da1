// Copying global memory to shared memory without passing through registers (sm_80+):
// cp.async starts a 16-byte copy and returns at once, so a warp can compute on one tile
// while the next one is on its way. On older GPUs the same calls copy synchronously.
//
//   copy16_async(dst, src, valid)   dst, src 16-byte aligned; valid = false writes 16 zero
//                                   bytes and reads nothing (src may then point anywhere)
//   commit_copies()                 closes the group of copies started since the last call
//   wait_copies<N>()                waits until at most N groups are still in flight
// A thread's waits cover only its own copies: a barrier (__syncwarp or __syncthreads)
// after the wait makes the other threads' copies visible too.
#pragma once

#include <cuda_runtime.h>

namespace course {

__device__ __forceinline__ void copy16_async(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned shared = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  const int src_bytes = valid ? 16 : 0;  // fewer source bytes than 16: the rest is zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared), "l"(src), "r"(src_bytes));
#else
  *static_cast<uint4*>(dst) = valid ? *static_cast<const uint4*>(src) : make_uint4(0, 0, 0, 0);
#endif
}

__device__ __forceinline__ void commit_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

template <int N>
__device__ __forceinline__ void wait_copies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace course
