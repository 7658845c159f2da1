// Chapter 02 — softmax, the solutions.
//
//   softmax_naive   y = exp(x) / sum exp(x), exponentials in the stored type: overflows
//   softmax_safe    three passes per row: max, sum of exp(x - max), normalise
#include "softmax.hpp"

#include "course/cuda_check.hpp"
#include "course/dtype.cuh"
#include "course/reduce.cuh"
#include "course/rows.hpp"

#include <stdexcept>

namespace ch02 {

namespace {

using course::to_float;

// exp in the stored type's own precision: the naive kernel's weak point, on purpose.
__device__ float exp_in(float x) { return expf(x); }
__device__ __half exp_in(__half x) { return hexp(x); }

// One block per row: y[row][c] = exp(x[row][c]) / sum of exp(x[row][:]).
// The exponentials are computed and kept in T (an fp16 one is inf above ~11.1); the sum
// is float. Overflow makes inf / inf = NaN; underflow of every term makes 0 / 0 = NaN.
template <class T>
__global__ void softmax_naive_kernel(const T* __restrict__ x, T* __restrict__ y, int cols) {
  __shared__ float scratch[32];
  const std::size_t row_start = std::size_t(blockIdx.x) * cols;
  float sum = 0.0f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += to_float(exp_in(x[row_start + c]));
  sum = course::block_reduce(sum, course::Sum{}, scratch);
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    y[row_start + c] = course::from_float<T>(to_float(exp_in(x[row_start + c])) / sum);
}

// One block per row, three passes over it. Subtracting the row max m makes every
// exponent x - m <= 0, so every term lies in (0, 1] and the largest is exactly 1: the
// sum cannot overflow, nor underflow to 0. The block strides over the row, so any
// length works; passes 2 and 3 re-read the row (from L2 when it is still there).
template <class T>
__global__ void softmax_safe_kernel(const T* __restrict__ x, T* __restrict__ y, int cols) {
  __shared__ float scratch[32];  // block_reduce's per-warp partials
  const std::size_t row_start = std::size_t(blockIdx.x) * cols;
  const T* x_row = x + row_start;
  T* y_row = y + row_start;

  float m = -INFINITY;  // pass 1: the row max
  for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, to_float(x_row[c]));
  m = course::block_reduce(m, course::Max{}, scratch);

  float l = 0.0f;  // pass 2: the sum of exp(x - m), each term in (0, 1]
  for (int c = threadIdx.x; c < cols; c += blockDim.x) l += expf(to_float(x_row[c]) - m);
  l = course::block_reduce(l, course::Sum{}, scratch);

  const float inv_l = 1.0f / l;  // pass 3: normalise; one division per row, not per element
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    y_row[c] = course::from_float<T>(expf(to_float(x_row[c]) - m) * inv_l);
}

template <class T>
void launch_naive(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  course::require_rows_cols(rows, cols, "softmax_naive");
  softmax_naive_kernel<<<rows, course::row_block_threads(cols), 0, stream>>>(x, y, cols);
  COURSE_CHECK_LAUNCH();
}

template <class T>
void launch_safe(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  course::require_rows_cols(rows, cols, "softmax_safe");
  softmax_safe_kernel<<<rows, course::row_block_threads(cols), 0, stream>>>(x, y, cols);
  COURSE_CHECK_LAUNCH();
}

}  // namespace

void softmax_naive(const float* x, float* y, int rows, int cols, cudaStream_t stream) {
  launch_naive(x, y, rows, cols, stream);
}
void softmax_naive(const __half* x, __half* y, int rows, int cols, cudaStream_t stream) {
  launch_naive(x, y, rows, cols, stream);
}
void softmax_safe(const float* x, float* y, int rows, int cols, cudaStream_t stream) {
  launch_safe(x, y, rows, cols, stream);
}
void softmax_safe(const __half* x, __half* y, int rows, int cols, cudaStream_t stream) {
  launch_safe(x, y, rows, cols, stream);
}
void softmax_safe(const __nv_bfloat16* x, __nv_bfloat16* y, int rows, int cols, cudaStream_t stream) {
  launch_safe(x, y, rows, cols, stream);
}

}  // namespace ch02
