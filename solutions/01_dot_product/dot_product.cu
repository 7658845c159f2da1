// Chapter 01 — dot products, the solutions.
//
//   dot                  s = sum_i a_i b_i: warp shuffles, a block reduction, two launches
//   query_scores_naive   s_j = scale * K_j . q, one thread per key (uncoalesced)
//   query_scores         the same, one warp per key (coalesced)
//   score_matrix_naive   S = scale * Q K^T, one thread per score, all reads from global memory
//   score_matrix         the same with 32 x 32 tiles of Q and K staged in shared memory
#include "dot_product.hpp"

#include "course/cuda_check.hpp"

#include <algorithm>
#include <stdexcept>

namespace ch01 {

namespace {

constexpr unsigned kFullWarp = 0xffffffffu;

// Sum of v over the 32 lanes of a warp. Each step adds the value from the lane `offset`
// away (lane ^ offset); after 5 steps every lane holds the total. No shared memory, no
// barrier: the lanes of a warp exchange registers directly.
__device__ float warp_reduce_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

// Sum of v over the block. Result valid in warp 0 (thread 0 is the one that uses it).
// blockDim.x must be a multiple of 32. Called once per kernel: a second call would
// need a __syncthreads() first, so warp 0 finishes reading warp_sums before it is reused.
__device__ float block_reduce_sum(float v) {
  __shared__ float warp_sums[32];  // one partial per warp (at most 1024 / 32 warps)
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int n_warps = blockDim.x / 32;
  v = warp_reduce_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();  // every warp's partial is written before warp 0 reads them
  if (warp == 0) v = warp_reduce_sum(lane < n_warps ? warp_sums[lane] : 0.0f);
  return v;
}

// Each block reduces its grid-stride share of a[i] * b[i] to partials[blockIdx.x].
// a, b: [n]; partials: [gridDim.x]. Consecutive threads read consecutive floats (coalesced).
__global__ void dot_partials_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                    int n, float* __restrict__ partials) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  float sum = 0.0f;
#pragma unroll 4  // four loads in flight per thread before the first add needs one
  for (std::size_t i = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < std::size_t(n);
       i += stride)
    sum += a[i] * b[i];
  sum = block_reduce_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// One block: result[0] = sum of partials[0, count).
__global__ void sum_kernel(const float* __restrict__ partials, int count,
                           float* __restrict__ result) {
  float sum = 0.0f;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_reduce_sum(sum);
  if (threadIdx.x == 0) result[0] = sum;
}

// One thread per key: thread j walks row j of K. The 32 threads of a warp read addresses
// d floats apart, so every load instruction touches 32 different cache lines.
__global__ void query_scores_naive_kernel(const float* __restrict__ q, const float* __restrict__ K,
                                          int n_keys, int d, float scale,
                                          float* __restrict__ scores) {
  const int key = blockIdx.x * blockDim.x + threadIdx.x;
  if (key >= n_keys) return;
  const float* k_row = K + std::size_t(key) * d;
  float sum = 0.0f;
  for (int k = 0; k < d; ++k) sum += k_row[k] * q[k];
  scores[key] = scale * sum;
}

// One warp per key: lane l reads k_row[l], k_row[l + 32], ... so each load instruction of
// the warp reads 32 consecutive floats (one 128-byte line). Warps stride over the keys.
__global__ void query_scores_kernel(const float* __restrict__ q, const float* __restrict__ K,
                                    int n_keys, int d, float scale, float* __restrict__ scores) {
  const int lane = threadIdx.x % 32;
  const int warps_per_block = blockDim.x / 32;
  const int first_key = blockIdx.x * warps_per_block + threadIdx.x / 32;
  const int key_stride = gridDim.x * warps_per_block;
  // Unrolled: the loads of several keys are issued before the first key's shuffles wait
  // on them, so more of the row is in flight per warp.
#pragma unroll 4
  for (int key = first_key; key < n_keys; key += key_stride) {
    const float* k_row = K + std::size_t(key) * d;
    float partial = 0.0f;
    for (int k = lane; k < d; k += 32) partial += k_row[k] * q[k];
    const float sum = warp_reduce_sum(partial);
    if (lane == 0) scores[key] = scale * sum;
  }
}

// One thread per score S[row][col], reading its Q row and K row from global memory.
__global__ void score_matrix_naive_kernel(const float* __restrict__ Q, const float* __restrict__ K,
                                          int n_q, int n_k, int d, float scale,
                                          float* __restrict__ S) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;  // key index
  const int row = blockIdx.y * blockDim.y + threadIdx.y;  // query index
  if (row >= n_q || col >= n_k) return;
  float sum = 0.0f;
  for (int k = 0; k < d; ++k) sum += Q[std::size_t(row) * d + k] * K[std::size_t(col) * d + k];
  S[std::size_t(row) * n_k + col] = scale * sum;
}

// Block (bx, by) computes the tile S[by*T .. by*T+T)[bx*T .. bx*T+T) with T = kScoreTile;
// thread (tx, ty) owns S[row = by*T + ty][col = bx*T + tx]. Both operands are read from
// global memory once per block instead of once per thread: the loop over d moves a
// T-wide slice of the block's T query rows and T key rows into shared memory at a time.
__global__ void score_matrix_kernel(const float* __restrict__ Q, const float* __restrict__ K,
                                    int n_q, int n_k, int d, float scale, float* __restrict__ S) {
  constexpr int T = kScoreTile;
  // (T query rows, T-wide slice of d) of Q and (T key rows, slice) of K. The +1 column of
  // padding puts k_tile[tx][k] for tx = 0..31 in 32 different banks; without it all 32
  // threads of a warp would hit one bank in the inner loop.
  __shared__ float q_tile[T][T + 1];
  __shared__ float k_tile[T][T + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * T + ty;        // this thread's query, and the Q row it loads
  const int col = blockIdx.x * T + tx;        // this thread's key
  const int k_row_loaded = blockIdx.x * T + ty;  // the K row this thread loads
  float sum = 0.0f;
  for (int k0 = 0; k0 < d; k0 += T) {
    // Consecutive tx read consecutive k: each warp loads 32 contiguous floats of one row.
    // Out-of-range elements are 0 so the partial tiles at the edges add nothing.
    const int k = k0 + tx;
    q_tile[ty][tx] = (row < n_q && k < d) ? Q[std::size_t(row) * d + k] : 0.0f;
    k_tile[ty][tx] = (k_row_loaded < n_k && k < d) ? K[std::size_t(k_row_loaded) * d + k] : 0.0f;
    __syncthreads();  // the tiles are complete before any thread reads them
    for (int kk = 0; kk < T; ++kk) sum += q_tile[ty][kk] * k_tile[tx][kk];
    __syncthreads();  // every thread is done reading before the next slice overwrites them
  }
  if (row < n_q && col < n_k) S[std::size_t(row) * n_k + col] = scale * sum;
}

void require(bool condition, const char* message) {
  if (!condition) throw std::invalid_argument(message);
}

int blocks_for(long long work, int per_block) { return int((work + per_block - 1) / per_block); }

}  // namespace

void dot(const float* a, const float* b, int n, float* partials, float* result,
         cudaStream_t stream) {
  require(n >= 1, "dot: n must be at least 1");
  const int blocks = std::min(kDotMaxBlocks, blocks_for(n, kDotThreads));
  dot_partials_kernel<<<blocks, kDotThreads, 0, stream>>>(a, b, n, partials);
  COURSE_CHECK_LAUNCH();
  sum_kernel<<<1, kDotThreads, 0, stream>>>(partials, blocks, result);
  COURSE_CHECK_LAUNCH();
}

void query_scores_naive(const float* q, const float* K, int n_keys, int d, float scale,
                        float* scores, cudaStream_t stream) {
  require(n_keys >= 1 && d >= 1, "query_scores_naive: n_keys and d must be at least 1");
  constexpr int threads = 256;
  query_scores_naive_kernel<<<blocks_for(n_keys, threads), threads, 0, stream>>>(
      q, K, n_keys, d, scale, scores);
  COURSE_CHECK_LAUNCH();
}

void query_scores(const float* q, const float* K, int n_keys, int d, float scale, float* scores,
                  cudaStream_t stream) {
  require(n_keys >= 1 && d >= 1, "query_scores: n_keys and d must be at least 1");
  constexpr int threads = 256, warps_per_block = threads / 32;
  // Enough warps to cover the keys, capped: a warp then takes several keys in turn.
  const int blocks = std::min(blocks_for(n_keys, warps_per_block), 8192);
  query_scores_kernel<<<blocks, threads, 0, stream>>>(q, K, n_keys, d, scale, scores);
  COURSE_CHECK_LAUNCH();
}

void score_matrix_naive(const float* Q, const float* K, int n_q, int n_k, int d, float scale,
                        float* S, cudaStream_t stream) {
  require(n_q >= 1 && n_k >= 1 && d >= 1, "score_matrix_naive: n_q, n_k and d must be at least 1");
  require(n_q <= 65535 * 8, "score_matrix_naive: n_q is beyond the grid's y limit");
  const dim3 threads(32, 8);
  const dim3 blocks(blocks_for(n_k, threads.x), blocks_for(n_q, threads.y));
  score_matrix_naive_kernel<<<blocks, threads, 0, stream>>>(Q, K, n_q, n_k, d, scale, S);
  COURSE_CHECK_LAUNCH();
}

void score_matrix(const float* Q, const float* K, int n_q, int n_k, int d, float scale, float* S,
                  cudaStream_t stream) {
  require(n_q >= 1 && n_k >= 1 && d >= 1, "score_matrix: n_q, n_k and d must be at least 1");
  require(n_q <= 65535 * kScoreTile, "score_matrix: n_q is beyond the grid's y limit");
  const dim3 threads(kScoreTile, kScoreTile);
  const dim3 blocks(blocks_for(n_k, kScoreTile), blocks_for(n_q, kScoreTile));
  score_matrix_kernel<<<blocks, threads, 0, stream>>>(Q, K, n_q, n_k, d, scale, S);
  COURSE_CHECK_LAUNCH();
}

}  // namespace ch01
