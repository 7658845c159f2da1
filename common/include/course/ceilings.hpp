// The two ceilings every result in the course is a ratio to, measured in the same run
// on the same GPU (datasheet numbers are not reached by anything):
//   memory:  a device-to-device copy, counting bytes read + bytes written;
//   compute: a cuBLAS GEMM of the same dtype.
#pragma once

#include <cublas_v2.h>

#include <cstddef>

namespace course {

// GB/s (1e9 bytes/s) of cudaMemcpyAsync device-to-device over `bytes`, read + written.
double measure_copy_gbps(std::size_t bytes = std::size_t(1) << 30);

// TFLOP/s of cublasSgemm at n x n x n, plain fp32 (TF32 off): the CUDA-core ceiling.
double measure_sgemm_tflops(int n = 4096);

// TFLOP/s of a cuBLAS bf16 GEMM at n x n x n (bf16 inputs and output, fp32 accumulation,
// cublasGemmEx): the tensor-core ceiling that chapter 07's kernels are compared with.
double measure_gemm_bf16_tflops(int n = 8192);

// A cuBLAS handle owned by an object.
class CublasHandle {
 public:
  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  operator cublasHandle_t() const { return handle_; }

 private:
  cublasHandle_t handle_{};
};

// Throws course::CudaError-like std::runtime_error naming the call on failure.
void cublas_check(cublasStatus_t status, const char* expr, const char* file, int line);

}  // namespace course

#define COURSE_CUBLAS_CHECK(expr) ::course::cublas_check((expr), #expr, __FILE__, __LINE__)
