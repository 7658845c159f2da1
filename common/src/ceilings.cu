#include "course/ceilings.hpp"

#include "course/cuda_check.hpp"
#include "course/device_buffer.hpp"
#include "course/device_random.hpp"
#include "course/random.hpp"
#include "course/timing.hpp"

#include <stdexcept>
#include <string>

namespace course {

CublasHandle::CublasHandle() { COURSE_CUBLAS_CHECK(cublasCreate(&handle_)); }
CublasHandle::~CublasHandle() { cublasDestroy(handle_); }

void cublas_check(cublasStatus_t status, const char* expr, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw std::runtime_error(std::string(expr) + " failed: " + cublasGetStatusName(status) + " (" +
                           cublasGetStatusString(status) + ") at " + file + ":" +
                           std::to_string(line));
}

double measure_copy_gbps(std::size_t bytes) {
  // Random bytes, not zeros: never time on zeros.
  Rng rng(pick_seed());
  DeviceBuffer<float> src(rng.uniform(bytes / sizeof(float), -1.0f, 1.0f));
  DeviceBuffer<float> dst(src.size());
  const Timing t = time_gpu([&](cudaStream_t s) {
    COURSE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(),
                                      cudaMemcpyDeviceToDevice, s));
  });
  return 2.0 * src.bytes() / (t.median_ms * 1e-3) / 1e9;
}

double measure_sgemm_tflops(int n) {
  Rng rng(pick_seed());
  const std::size_t elems = std::size_t(n) * n;
  DeviceBuffer<float> a(rng.uniform(elems, -1.0f, 1.0f)), b(rng.uniform(elems, -1.0f, 1.0f));
  DeviceBuffer<float> c(elems);
  CublasHandle handle;
  COURSE_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH));  // no TF32
  const float alpha = 1.0f, beta = 0.0f;
  const Timing t = time_gpu(
      [&](cudaStream_t s) {
        COURSE_CUBLAS_CHECK(cublasSetStream(handle, s));
        COURSE_CUBLAS_CHECK(cublasSgemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha,
                                        a.data(), n, b.data(), n, &beta, c.data(), n));
      },
      {/*warmup=*/2, /*repeats=*/10, /*cold_l2=*/false});
  return 2.0 * n * double(n) * n / (t.median_ms * 1e-3) / 1e12;
}

double measure_gemm_bf16_tflops(int n) {
  const std::size_t elems = std::size_t(n) * n;
  DeviceBuffer<__nv_bfloat16> a(elems), b(elems), c(elems);
  fill_logits(a.data(), elems, pick_seed(), 0.5f);
  fill_logits(b.data(), elems, pick_seed() + 1, 0.5f);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  CublasHandle handle;
  const float alpha = 1.0f, beta = 0.0f;
  const Timing t = time_gpu(
      [&](cudaStream_t s) {
        COURSE_CUBLAS_CHECK(cublasSetStream(handle, s));
        COURSE_CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.data(), CUDA_R_16BF, n,
                                         b.data(), CUDA_R_16BF, n, &beta, c.data(), CUDA_R_16BF, n,
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      },
      {/*warmup=*/2, /*repeats=*/10, /*cold_l2=*/false});
  return 2.0 * n * double(n) * n / (t.median_ms * 1e-3) / 1e12;
}

}  // namespace course
