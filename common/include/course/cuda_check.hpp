// Checking every CUDA call.
//
// COURSE_CUDA_CHECK(expr) evaluates a call returning cudaError_t and, on failure,
// throws course::CudaError whose message names the call, the error and where:
//   cudaMalloc(&ptr, bytes) failed: cudaErrorMemoryAllocation (out of memory) at main.cu:42
// COURSE_CHECK_LAUNCH() does the same for the kernel launched just before it
// (a bad launch configuration is only reported by cudaGetLastError).
// Exceptions rather than exit(): a doctest case reports the message and the next case
// runs; a chapter executable catches it in main and exits non-zero.
#pragma once

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>

namespace course {

class CudaError : public std::runtime_error {
 public:
  CudaError(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const { return code_; }

 private:
  cudaError_t code_;
};

[[noreturn]] void throw_cuda_error(cudaError_t code, const char* expr, const char* file, int line);

}  // namespace course

#define COURSE_CUDA_CHECK(expr)                                               \
  do {                                                                        \
    const cudaError_t course_err_ = (expr);                                   \
    if (course_err_ != cudaSuccess)                                           \
      ::course::throw_cuda_error(course_err_, #expr, __FILE__, __LINE__);     \
  } while (0)

#define COURSE_CHECK_LAUNCH() COURSE_CUDA_CHECK(cudaGetLastError())
