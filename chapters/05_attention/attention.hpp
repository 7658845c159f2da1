// Chapter 05 — attention, the straightforward way: S = scale * Q K^T, P = masked softmax(S),
// O = P V, each step a trip through global memory.
//
// The contract between the chapter's kernels (exercises/05_attention/attention.cu, yours;
// solutions/05_attention/attention.cu), its suite and its executable. Shapes, masks and the
// float64 reference are course/attention.hpp's (shared with chapters 06 to 08):
//   Q, O: [batch, heads, n_q, d];  K, V: [batch, heads, n_k, d];  lse: [batch, heads, n_q].
// fp32 throughout. Every pointer is a device pointer, 16-byte aligned (cudaMalloc's are).
// The launch functions check their arguments (std::invalid_argument naming the one that
// failed), enqueue on `stream` and return without waiting.
#pragma once

#include "course/attention.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace ch05 {

using course::AttentionMask;
using course::AttentionShape;

// What the materialized paths hold besides Q, K, V, O and lse: the scores S and the
// probabilities P, each [batch * heads, n_q, n_k] fp32. This is attention's O(N^2).
struct Workspace {
  float* S;  // scale * Q K^T, every (query, key) pair, masked or not
  float* P;  // masked softmax of S: 0 at masked keys, rows sum to 1 (or are all 0)
};
// Bytes of one of S or P.
std::size_t score_bytes(const AttentionShape& shape);

// ---- Yours ------------------------------------------------------------------------------
// O = P V for every head: O[h][i][c] = sum_j P[h][i][j] * V[h][j][c].
//   P: [batch * heads, n_q, n_k]   V: [batch * heads, n_k, d]   O: [batch * heads, n_q, d]
// Any sizes of at least 1 (d too: this step does not care what d is).
void probs_times_values(const float* P, const float* V, float* O, const AttentionShape& shape,
                        cudaStream_t stream);

// The whole forward pass through the workspace, on in-house kernels:
//   1 S = scale * Q K^T      chapter 01's score_matrix, once per head
//   2 lse = log-sum-exp of each row of S over its kept keys      row_logsumexp (given)
//   3 P = masked softmax(S)  chapter 04's masked_softmax (scale 1: S is already scaled)
//   4 O = P V                probs_times_values
// Rows that see no key: O = 0, lse = -inf. K and V rows past a batch's key length take no
// part, but must be finite: step 4 multiplies them by probability 0.
void attention(const float* Q, const float* K, const float* V, float* O, float* lse, const AttentionShape& shape,
               float scale, AttentionMask mask, Workspace workspace, cudaStream_t stream);

// ---- Given ------------------------------------------------------------------------------
// lse[r] = ln sum over row r's kept keys j of exp(S[r][j]), -inf when it keeps none.
// S: [batch * heads, n_q, n_k], already scaled. Reads each row's visible prefix once.
void row_logsumexp(const float* S, float* lse, const AttentionShape& shape, AttentionMask mask,
                   cudaStream_t stream);

// attention() with both products on cuBLAS (SGEMM, strided batched, TF32 off): the best
// this structure can do. Sets `handle`'s stream to `stream`.
void attention_cublas(const float* Q, const float* K, const float* V, float* O, float* lse,
                      const AttentionShape& shape, float scale, AttentionMask mask, Workspace workspace,
                      cublasHandle_t handle, cudaStream_t stream);

}  // namespace ch05
