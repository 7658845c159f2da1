// Chapter 01 — dot products: measuring relevance.
//
// The contract between the chapter's kernels (exercises/01_dot_product/dot_product.cu,
// which you complete, and solutions/01_dot_product/dot_product.cu), its test suite and
// its executable: plain C++, so the tests are built by the host compiler.
//
// Every pointer is a device pointer; matrices are row-major. Each function checks its
// preconditions (throwing std::invalid_argument that names the one that failed),
// enqueues its kernels on `stream` and returns without waiting for them.
#pragma once

#include <cuda_runtime_api.h>

namespace ch01 {

// ---- 1. A dot product: one number from two long vectors --------------------------------
// result[0] = sum_{i < n} a[i] * b[i]          a, b: [n], n >= 1
// Two launches: every block reduces its share of the products to partials[block], then
// one block adds the partials. `partials` holds at least kDotMaxBlocks floats.
constexpr int kDotThreads = 256;     // threads per block, a multiple of the warp size
constexpr int kDotMaxBlocks = 1024;  // enough blocks to fill any current GPU
void dot(const float* a, const float* b, int n, float* partials, float* result,
         cudaStream_t stream);

// ---- 2. Decoding: one query against every cached key -----------------------------------
// scores[j] = scale * sum_{k < d} K[j][k] * q[k]     q: [d], K: [n_keys, d], scores: [n_keys]
// naive: one thread per key (given; the threads of a warp read addresses d floats apart).
// query_scores: one warp per key, so a warp reads a key's row as contiguous 128-byte lines.
void query_scores_naive(const float* q, const float* K, int n_keys, int d, float scale,
                        float* scores, cudaStream_t stream);
void query_scores(const float* q, const float* K, int n_keys, int d, float scale,
                  float* scores, cudaStream_t stream);

// ---- 3. The score matrix of one attention head -----------------------------------------
// S[i][j] = scale * sum_{k < d} Q[i][k] * K[j][k]    Q: [n_q, d], K: [n_k, d], S: [n_q, n_k]
// naive: one thread per score, both operands read from global memory (given).
// score_matrix: a block computes a kScoreTile x kScoreTile tile of S, staging kScoreTile-wide
// slices of its Q rows and K rows in shared memory so each global value is read once per block.
constexpr int kScoreTile = 32;
void score_matrix_naive(const float* Q, const float* K, int n_q, int n_k, int d, float scale,
                        float* S, cudaStream_t stream);
void score_matrix(const float* Q, const float* K, int n_q, int n_k, int d, float scale,
                  float* S, cudaStream_t stream);

}  // namespace ch01
