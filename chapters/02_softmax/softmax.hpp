// Chapter 02 — softmax: naive, then safe.
//
// The contract between the chapter's kernels (exercises/02_softmax/softmax.cu, yours;
// solutions/02_softmax/softmax.cu), its suite and its executable.
//
//   y[r][c] = exp(x[r][c]) / sum_c' exp(x[r][c'])        x, y: [rows, cols], row-major
//
// Every pointer is a device pointer. Each function checks rows >= 1 and cols >= 1
// (std::invalid_argument otherwise), enqueues its kernel on `stream` and returns.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace ch02 {

// Naive (given): the formula as written, no max subtracted. It overflows once a logit
// passes ~88.7 in float32 (exp(88.7) > FLT_MAX), and in the __half version, whose
// exponentials are half too, once a logit passes ~11.1 (exp(11.1) > 65504).
void softmax_naive(const float* x, float* y, int rows, int cols, cudaStream_t stream);
void softmax_naive(const __half* x, __half* y, int rows, int cols, cudaStream_t stream);

// Safe (yours): three passes over each row, float32 math whatever the stored type:
//   m = max_c x[c];   l = sum_c exp(x[c] - m);   y[c] = exp(x[c] - m) / l
// One block per row; a row may be far longer than the block (up to 2^31 - 1 columns).
void softmax_safe(const float* x, float* y, int rows, int cols, cudaStream_t stream);
void softmax_safe(const __half* x, __half* y, int rows, int cols, cudaStream_t stream);
void softmax_safe(const __nv_bfloat16* x, __nv_bfloat16* y, int rows, int cols, cudaStream_t stream);

}  // namespace ch02
