// Chapter 05 — attention, the straightforward way (solutions).
//
//   O = softmax(scale * Q K^T, masked) V, materializing S and P: [batch * heads, n_q, n_k].
//
//   probs_times_values_kernel   O = P V, 32 x 32 tiles of P and V staged in shared memory
//                               (chapter 01's score_matrix with the second operand not
//                               transposed)
//   attention                   the four steps on in-house kernels
//   row_logsumexp_kernel        (given) one warp per row: the (max, sum) state of chapter 03
//   attention_cublas            (given) the same four steps with cuBLAS for both products
#include "attention.hpp"

#include "dot_product.hpp"     // chapter 01: score_matrix
#include "masked_softmax.hpp"  // chapter 04: masked_softmax

#include "course/cuda_check.hpp"
#include "course/online_softmax.cuh"
#include "course/reduce.cuh"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ch05 {

namespace {

constexpr int kTile = 32;  // the product's tile: kTile x kTile outputs per block, one per thread

// Block (bx, by, h) computes the tile O[h][by*T .. +T)[bx*T .. +T) with T = kTile; thread
// (tx, ty) owns O[h][row = by*T + ty][col = bx*T + tx]. The loop over the keys moves a
// (T queries, T keys) tile of P and a (T keys, T columns) tile of V into shared memory at a
// time, so each value read from global memory serves T threads.
__global__ void probs_times_values_kernel(const float* __restrict__ P, const float* __restrict__ V,
                                          float* __restrict__ O, int n_q, int n_k, int d) {
  constexpr int T = kTile;
  __shared__ float p_tile[T][T];  // (T queries, T keys) of P
  __shared__ float v_tile[T][T];  // (T keys, T columns) of V
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * T + ty;  // this thread's query
  const int col = blockIdx.x * T + tx;  // this thread's column of O (and of V)
  const std::size_t head = blockIdx.z;
  P += head * n_q * n_k;
  V += head * n_k * d;
  O += head * n_q * d;
  float sum = 0.0f;
  for (int j0 = 0; j0 < n_k; j0 += T) {
    // Consecutive tx read consecutive addresses of one row of P and of V: coalesced.
    // Past the edges the tiles hold 0, which adds nothing.
    p_tile[ty][tx] = (row < n_q && j0 + tx < n_k) ? P[std::size_t(row) * n_k + j0 + tx] : 0.0f;
    v_tile[ty][tx] = (j0 + ty < n_k && col < d) ? V[std::size_t(j0 + ty) * d + col] : 0.0f;
    __syncthreads();  // both tiles complete before any thread reads them
    // p_tile[ty][j] is one address per warp (a broadcast); v_tile[j][tx] is 32 banks.
    for (int j = 0; j < T; ++j) sum += p_tile[ty][j] * v_tile[j][tx];
    __syncthreads();  // everyone is done reading before the next tiles overwrite them
  }
  if (row < n_q && col < d) O[std::size_t(row) * d + col] = sum;
}

constexpr int kLseWarps = 8;  // rows per block of row_logsumexp

// One warp per row r of S: lane k folds keys k, k + 32, ... of the visible prefix into a
// (max, sum) state, then the warp merges its 32 states (chapter 03). lse = m + ln l.
__global__ void row_logsumexp_kernel(const float* __restrict__ S, float* __restrict__ lse, int rows, int n_q,
                                     int n_k, int heads, bool causal, const int* __restrict__ key_lengths) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kLseWarps + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together: the shuffles below stay full
  const int query = row % n_q;
  const int batch = row / (n_q * heads);
  const int length = key_lengths ? key_lengths[batch] : n_k;
  const int end = course::visible_keys(query, n_q, n_k, causal, length);
  const float* s = S + std::size_t(row) * n_k;
  course::MaxSum state{-INFINITY, 0.0f};
  for (int j = lane; j < end; j += 32) state = course::merge(state, {s[j], 1.0f});
  state = course::warp_reduce(state, course::MergeMaxSum{});
  if (lane == 0) lse[row] = end == 0 ? -INFINITY : state.m + logf(state.l);
}

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument(message);
}

void check_common(const AttentionShape& shape, float scale, Workspace workspace, const char* who) {
  course::check_attention_args(shape, scale, who);
  require(workspace.S && workspace.P, std::string(who) + ": the workspace needs both S and P");
}

// Steps 2 and 3, common to both paths: lse from S, then P = masked softmax(S).
void softmax_step(const AttentionShape& shape, AttentionMask mask, Workspace workspace, float* lse,
                  cudaStream_t stream) {
  row_logsumexp(workspace.S, lse, shape, mask, stream);
  const ch04::ScoreShape scores{shape.batch, shape.heads, shape.n_q, shape.n_k};
  ch04::masked_softmax(workspace.S, workspace.P, scores, 1.0f, ch04::Mask{mask.causal, mask.key_lengths, nullptr},
                       stream);
}

}  // namespace

std::size_t score_bytes(const AttentionShape& shape) {
  return shape.heads_total() * std::size_t(shape.n_q) * shape.n_k * sizeof(float);
}

void probs_times_values(const float* P, const float* V, float* O, const AttentionShape& shape,
                        cudaStream_t stream) {
  course::check_attention_args(shape, 1.0f, "probs_times_values");
  require(shape.heads_total() <= 65535, "probs_times_values: batch * heads must be at most 65535 (grid z)");
  require(shape.n_q <= 65535 * kTile, "probs_times_values: n_q is beyond the grid's y limit");
  const dim3 threads(kTile, kTile);
  const dim3 blocks((shape.head_dim + kTile - 1) / kTile, (shape.n_q + kTile - 1) / kTile,
                    unsigned(shape.heads_total()));
  probs_times_values_kernel<<<blocks, threads, 0, stream>>>(P, V, O, shape.n_q, shape.n_k, shape.head_dim);
  COURSE_CHECK_LAUNCH();
}

void row_logsumexp(const float* S, float* lse, const AttentionShape& shape, AttentionMask mask,
                   cudaStream_t stream) {
  course::check_attention_args(shape, 1.0f, "row_logsumexp");
  const int rows = int(shape.heads_total() * shape.n_q);
  row_logsumexp_kernel<<<(rows + kLseWarps - 1) / kLseWarps, kLseWarps * 32, 0, stream>>>(
      S, lse, rows, shape.n_q, shape.n_k, shape.heads, mask.causal, mask.key_lengths);
  COURSE_CHECK_LAUNCH();
}

void attention(const float* Q, const float* K, const float* V, float* O, float* lse, const AttentionShape& shape,
               float scale, AttentionMask mask, Workspace workspace, cudaStream_t stream) {
  check_common(shape, scale, workspace, "attention");
  const int d = shape.head_dim;
  // 1. S = scale * Q K^T, head by head: chapter 01's kernel knows one head.
  for (std::size_t h = 0; h < shape.heads_total(); ++h)
    ch01::score_matrix(Q + h * shape.n_q * d, K + h * shape.n_k * d, shape.n_q, shape.n_k, d, scale,
                       workspace.S + h * shape.n_q * shape.n_k, stream);
  // 2 and 3. lse, and P = masked softmax(S).
  softmax_step(shape, mask, workspace, lse, stream);
  // 4. O = P V.
  probs_times_values(workspace.P, V, O, shape, stream);
}

void attention_cublas(const float* Q, const float* K, const float* V, float* O, float* lse,
                      const AttentionShape& shape, float scale, AttentionMask mask, Workspace workspace,
                      cublasHandle_t handle, cudaStream_t stream) {
  check_common(shape, scale, workspace, "attention_cublas");
  const int n_q = shape.n_q, n_k = shape.n_k, d = shape.head_dim, heads = int(shape.heads_total());
  const auto check = [](cublasStatus_t status, const char* what) {
    if (status != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(std::string("attention_cublas: ") + what + " failed: " + cublasGetStatusString(status));
  };
  check(cublasSetStream(handle, stream), "cublasSetStream");
  check(cublasSetMathMode(handle, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");  // fp32 FMA, no TF32
  // cuBLAS is column-major: a row-major [rows, cols] matrix is its (cols x rows) transpose.
  // 1. S = scale * Q K^T  <=>  S^T (n_k x n_q) = K_cm^T Q_cm, with K_cm (d x n_k), Q_cm (d x n_q).
  const float zero = 0.0f, one = 1.0f;
  check(cublasSgemmStridedBatched(handle, CUBLAS_OP_T, CUBLAS_OP_N, n_k, n_q, d, &scale, K, d,
                                  (long long)n_k * d, Q, d, (long long)n_q * d, &zero, workspace.S, n_k,
                                  (long long)n_q * n_k, heads),
        "S = scale * Q K^T");
  // 2 and 3.
  softmax_step(shape, mask, workspace, lse, stream);
  // 4. O = P V  <=>  O^T (d x n_q) = V_cm P_cm, with V_cm (d x n_k), P_cm (n_k x n_q).
  check(cublasSgemmStridedBatched(handle, CUBLAS_OP_N, CUBLAS_OP_N, d, n_q, n_k, &one, V, d, (long long)n_k * d,
                                  workspace.P, n_k, (long long)n_q * n_k, &zero, O, d, (long long)n_q * d, heads),
        "O = P V");
}

}  // namespace ch05
