// Chapter 04 — masked softmax, fused: the solutions.
//
//   y[r][j] = softmax over the kept keys j of (scale * S[r][j]); exactly 0 at masked keys
//   S, y: [batch * heads, n_q, n_k]
//
//   visible_end              the end of a row's prefix under the causal and padding masks
//   masked_softmax_unfused   (given) scale, mask, row max, normalise: four kernels, each a
//                            full trip through global memory
//   masked_softmax           fused: the visible prefix read once into registers (long
//                            16-bit rows: half in shared memory), y written once; a warp per
//                            short row, a block or a cluster of blocks per long one, two reads
//                            for rows longer than fit on chip
#include "masked_softmax.hpp"

#include "course/async_copy.cuh"
#include "course/cluster.cuh"
#include "course/cuda_check.hpp"
#include "course/dtype.cuh"
#include "course/online_softmax.cuh"
#include "course/reduce.cuh"


#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ch04 {

COURSE_HD int visible_end(int query, int n_q, int n_k, bool causal, int key_length) {
  int end = key_length < n_k ? key_length : n_k;  // padding hides keys key_length, key_length + 1, ...
  if (causal) {
    const int last_seen = query + (n_k - n_q);  // bottom-right: the last query sees key n_k - 1
    end = last_seen + 1 < end ? last_seen + 1 : end;
  }
  return end > 0 ? end : 0;  // n_q > n_k: the first n_q - n_k queries see nothing
}

namespace {

using course::MaxSum;
using course::MergeMaxSum;
using course::MergeMaxSumApprox;
using course::kLog2e;
using course::to_float;

// Row r of [batch * heads, n_q]: the query it holds (the index into the explicit mask and
// the causal offset) and its batch (the index into key_lengths).
struct RowOwner {
  int query;
  int batch;
};
__device__ RowOwner owner_of(int row, ScoreShape shape) {
  return {row % shape.n_q, row / (shape.n_q * shape.heads)};
}

// ---- Unfused (given): one kernel per operation -----------------------------------------

// 1. t = scale * S, widened to float. S, t: [rows * n_k] as one flat array; thread e
// handles elements e, e + stride, ... (a grid-stride loop: any size, a fixed grid).
template <class T>
__global__ void scale_kernel(const T* __restrict__ S, float* __restrict__ t, std::size_t count, float scale) {
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  for (std::size_t e = std::size_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride)
    t[e] = to_float(S[e]) * scale;
}

// 2. t[r][j] = -inf where a mask drops (r, j). One block per row; every element is read and
// written, as a masked_fill does: it knows a mask, position by position, not a prefix.
__global__ void mask_kernel(float* __restrict__ t, ScoreShape shape, Mask mask) {
  const int row = blockIdx.x;
  const RowOwner owner = owner_of(row, shape);
  const int key_length = mask.key_lengths ? mask.key_lengths[owner.batch] : shape.n_k;
  const int last_seen = owner.query + (shape.n_k - shape.n_q);  // causal: the last key this query sees
  const std::uint8_t* keep_row = mask.keep ? mask.keep + std::size_t(owner.query) * shape.n_k : nullptr;
  float* t_row = t + std::size_t(row) * shape.n_k;
  for (int j = threadIdx.x; j < shape.n_k; j += blockDim.x) {
    const bool dropped = (mask.causal && j > last_seen) || j >= key_length || (keep_row && keep_row[j] == 0);
    t_row[j] = dropped ? -INFINITY : t_row[j];
  }
}

// 3. m[r] = max_j t[r][j], -inf for a fully masked row. One block per row (chapter 02's
// first pass); the result leaves the chip, to be read back by the next kernel.
__global__ void row_max_kernel(const float* __restrict__ t, float* __restrict__ row_max, int n_k) {
  __shared__ float scratch[32];  // block_reduce's per-warp partials
  const float* t_row = t + std::size_t(blockIdx.x) * n_k;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < n_k; j += blockDim.x) m = fmaxf(m, t_row[j]);
  m = course::block_reduce(m, course::Max{}, scratch);
  if (threadIdx.x == 0) row_max[blockIdx.x] = m;
}

// 4. l = sum_j exp(t - m), then y = exp(t - m) / l. One block per row (chapter 02's second
// and third passes); the second read of the row is served by L2.
template <class T>
__global__ void normalise_kernel(const float* __restrict__ t, const float* __restrict__ row_max,
                                 T* __restrict__ y, int n_k) {
  __shared__ float scratch[32];
  const std::size_t row_start = std::size_t(blockIdx.x) * n_k;
  const float* t_row = t + row_start;
  T* y_row = y + row_start;
  const float m = row_max[blockIdx.x];
  // A fully masked row: every t is -inf, so m = -inf and every t - m is -inf - (-inf) =
  // NaN. The sum is NaN, not 0: a test of l after it cannot catch the case. Decide from m.
  if (m == -INFINITY) {
    for (int j = threadIdx.x; j < n_k; j += blockDim.x) y_row[j] = course::from_float<T>(0.0f);
    return;  // the whole block returns: no thread waits at the barrier below
  }
  float l = 0.0f;
  for (int j = threadIdx.x; j < n_k; j += blockDim.x) l += expf(t_row[j] - m);
  l = course::block_reduce(l, course::Sum{}, scratch);
  const float inv_l = 1.0f / l;
  for (int j = threadIdx.x; j < n_k; j += blockDim.x) y_row[j] = course::from_float<T>(expf(t_row[j] - m) * inv_l);
}

// ---- Fused: the row in registers (chapter 03's one read) -------------------------------
// Each thread holds N 16-byte vectors of its row as raw stored scores, -inf where a key is
// masked: with N = kVectors, 128 bytes (32 floats or 64 halves), enough loads in flight per
// SM to keep HBM busy.
constexpr int kVectors = 8;
constexpr int kWarpsPerBlock = 4;  // warp-per-row kernel: warps per block
constexpr int kMaxThreads = 1024;
constexpr int kMaxCluster = course::kMaxClusterBlocks;  // the portable cluster size limit

template <class T>
constexpr int kItems = kVectors * course::kVec<T>;  // values per thread of the block kernel

using course::exp_shifted;  // exp(z - m) on the multifunction unit (common/include/course/online_softmax.cuh)

// What a thread knows of its row. Its vector i starts at column first_col + i * stride_cols.
struct RowView {
  int first_col;
  int stride_cols;
  int n_k;                   // every column < n_k is written
  int end;                   // visible_end: columns from `end` on are masked and never read
  float scale;
  const std::uint8_t* keep;  // the explicit mask's row, or nullptr
  __device__ int col(int i) const { return first_col + i * stride_cols; }
  __device__ bool explicitly_kept(int c) const { return keep == nullptr || keep[c] != 0; }
  // Which vector (of V columns) on this thread's stride holds `end` strictly inside it: at
  // most one does. -1 if none.
  __device__ int vector_holding_end(int V) const {
    const int into = end - first_col;  // how far `end` lies into this thread's columns
    const int offset = into % stride_cols;
    return into > 0 && offset > 0 && offset < V ? into / stride_cols : -1;
  }
};

__device__ RowView row_view(int row, ScoreShape shape, float scale, Mask mask, int first_col, int stride_cols) {
  // Each of owner_of's two integer divisions only where a mask needs it: a division by a
  // value known only at run time is dozens of instructions, a visible share of a short
  // row's work (the warp kernel is bound by instructions, not by memory).
  const int query = mask.causal || mask.keep ? owner_of(row, shape).query : 0;
  const int key_length = mask.key_lengths ? mask.key_lengths[owner_of(row, shape).batch] : shape.n_k;
  return {first_col,
          stride_cols,
          shape.n_k,
          visible_end(query, shape.n_q, shape.n_k, mask.causal, key_length),
          scale,
          mask.keep ? mask.keep + std::size_t(query) * shape.n_k : nullptr};
}

// kVec<T> masked keys: the raw vector of -inf.
template <class T>
__device__ __forceinline__ uint4 masked_vector() {
  float v[course::kVec<T>];
#pragma unroll
  for (int j = 0; j < course::kVec<T>; ++j) v[j] = -INFINITY;
  return course::pack<T>(v);
}

// Keys [col, col + kVec<T>) read one by one, -inf from `end` on (those are not read).
template <class T>
__device__ __forceinline__ uint4 load_keys(const T* __restrict__ s_row, int col, int end) {
  float v[course::kVec<T>];
#pragma unroll
  for (int j = 0; j < course::kVec<T>; ++j) v[j] = col + j < end ? to_float(s_row[col + j]) : -INFINITY;
  return course::pack<T>(v);
}

// Reads this thread's share of the row into registers: the scores as stored up to
// row.end, -inf from row.end on; nothing from row.end on is read.
// kWhole: S, y and the explicit mask are 16-byte aligned and n_k is a multiple of kVec<T>,
// so every vector is one 16-byte access wholly inside the row or wholly past its end.
template <class T, int N, bool kWhole>
__device__ __forceinline__ void load_visible(uint4 (&raw)[N], const T* __restrict__ s_row, const RowView& row) {
  constexpr int V = course::kVec<T>;
  if constexpr (kWhole) {
    // The one vector that holds row.end strictly inside it (if any) is read key by key,
    // before the loop, which then issues nothing but 16-byte loads: a key-by-key path
    // inside the loop would cost registers for every vector.
    const int straddler = row.vector_holding_end(V);  // -1, or >= N: in a later block's slice
    const uint4 partial =
        straddler >= 0 && straddler < N ? load_keys(s_row, row.col(straddler), row.end) : masked_vector<T>();
#pragma unroll
    for (int i = 0; i < N; ++i) {
      const int col = row.col(i);
      raw[i] = col + V <= row.end ? *reinterpret_cast<const uint4*>(s_row + col)  // all V keys visible
               : i == straddler   ? partial
                                  : masked_vector<T>();
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) raw[i] = load_keys(s_row, row.col(i), row.end);
  }
}

// The explicit mask: -inf for every visible key it drops. It can drop any key, so it cannot
// shorten the read; the keys it drops were read with the rest and are dropped by a select,
// so a NaN there goes no further. kWhole: as load_visible (the mask's V bytes are one load).
template <class T, int N, bool kWhole>
__device__ __forceinline__ void drop_explicitly_masked(uint4 (&raw)[N], const RowView& row) {
  constexpr int V = course::kVec<T>;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int col = row.col(i);
    if (col >= row.end) continue;  // already all -inf
    bool kept[V];
    if (kWhole && col + V <= row.end) {
      unsigned words[V / 4];  // the V mask bytes, 4 per 32-bit word
      if constexpr (V == 8) {
        const uint2 pair = *reinterpret_cast<const uint2*>(row.keep + col);
        words[0] = pair.x;
        words[1] = pair.y;
      } else {
        words[0] = *reinterpret_cast<const unsigned*>(row.keep + col);
      }
#pragma unroll
      for (int j = 0; j < V; ++j) kept[j] = ((words[j / 4] >> (8 * (j % 4))) & 0xFFu) != 0;
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) kept[j] = col + j < row.end && row.keep[col + j] != 0;
    }
    float v[V];
    course::unpack<T>(raw[i], v);
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = kept[j] ? v[j] : -INFINITY;
    raw[i] = course::pack<T>(v);
  }
}

// Each visible key's exponential is computed once, by share_state, and kept in place of
// its score until store_share writes it: one ex2 per key instead of two (the kernel is
// about as much arithmetic as memory traffic, measured on an H200). The registers hold
// T, so p = exp(scale * s - m) is stored rounded to T, fp16 as p * 2^10 (course::kKeptScale,
// common/include/course/dtype.cuh), as in chapter 03.
using course::kKeptLog2;
using course::kKeptScale;

// The state (m, l) of this thread's keys, in units of scale * S: m = the max of
// scale * s over them, l = the sum of exp(scale * s - m), in two halves, as in chapter 03:
// share_max, then keep_exponentials, which overwrites every visible score with
// p = exp(scale * s - m) * kKeptScale<T> (explicitly masked keys: -inf becomes 0).
// Vectors from row.end on are all -inf: skipped, not computed (half of a causal row).

// max(m, every visible raw score of the vectors).
template <class T, int N>
__device__ __forceinline__ float share_max(const uint4 (&raw)[N], const RowView& row, float m) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    if (row.col(i) < row.end) m = course::max_into<T>(m, raw[i]);
  return m;
}

// Replaces each visible score s by p = exp(scale * (s - max_s)) * kKeptScale<T> and returns
// the sum of exp(scale * (s - max_s)). max_s: finite, at least every visible score.
template <class T, int N>
__device__ __forceinline__ float keep_exponentials(uint4 (&raw)[N], const RowView& row, float max_s) {
  constexpr int V = course::kVec<T>;
  // exp(scale * (s - max)) = 2^((s - max) * scale * log2 e): the difference first, so
  // that huge scores (1e4) cancel exactly before anything is rounded.
  const float slope = row.scale * kLog2e;
  float l = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (row.col(i) >= row.end) continue;
    float v[V];
    course::unpack<T>(raw[i], v);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      v[j] = course::exp2_approx(fmaf(v[j] - max_s, slope, float(kKeptLog2<T>)));
      l += v[j];
    }
    raw[i] = course::pack<T>(v);
  }
  return l * (1.0f / kKeptScale<T>);
}

// A thread that sees no key has max -inf and keeps the empty state (-inf, 0), its
// scores untouched: decided from the max, before any exp(-inf - (-inf)) = NaN is formed.
template <class T, int N>
__device__ __forceinline__ MaxSum share_state(uint4 (&raw)[N], const RowView& row) {
  const float max_s = share_max<T>(raw, row, -INFINITY);
  if (max_s == -INFINITY) return MergeMaxSum::identity();
  return {max_s * row.scale, keep_exponentials<T>(raw, row, max_s)};  // max(scale * s) = scale * max(s): scale > 0
}

// y = p * exp(m_thread - m) / l for every column of this thread's share (p as share_state
// left it), written where load_visible read it from; 0 from row.end on, and everywhere
// in a row or a thread that sees no key (its m is -inf: decide from m, since
// exp(-inf - (-inf)) is NaN whatever l is). kWhole: as load_visible.
template <class T, int N, bool kWhole>
__device__ __forceinline__ void store_share(const uint4 (&raw)[N], T* __restrict__ y_row, const RowView& row,
                                            MaxSum whole_row, MaxSum own) {
  constexpr int V = course::kVec<T>;
  const bool zeros = whole_row.m == -INFINITY || own.m == -INFINITY;
  // The thread's correction to the row's max, as chapter 03's merge, and the division by l
  // and by kKeptScale folded into one factor: one multiply per key.
  const float factor = zeros ? 0.0f : __fdividef(exp_shifted(own.m, whole_row.m), whole_row.l * kKeptScale<T>);
#pragma unroll
  for (int i = 0; i < N; ++i) {
    const int col = row.col(i);
    float out[V];
    course::unpack<T>(raw[i], out);
    if (!zeros && col < row.end) {
#pragma unroll
      for (int j = 0; j < V; ++j) out[j] *= factor;
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) out[j] = 0.0f;
    }
    if constexpr (kWhole) {
      if (col < row.n_k) course::store_vec(y_row + col, out);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j)
        if (col + j < row.n_k) y_row[col + j] = course::from_float<T>(out[j]);
    }
  }
}

// The row's state from its lanes' states: chapter 03's merge over the row's kLanes lanes
// (a warp, or a half-warp), taken apart into two butterflies, the max first and then the
// sums, each corrected once from its lane's max to the row's. Five merges cost about three
// times as many instructions, a visible share of a short row's work.
template <int kLanes>
__device__ __forceinline__ MaxSum warp_merge(MaxSum own) {
  const float m = course::warp_reduce<kLanes>(own.m, course::Max{});
  const float l =
      course::warp_reduce<kLanes>(own.m == -INFINITY ? 0.0f : own.l * exp_shifted(own.m, m), course::Sum{});
  return {m, l};  // every lane empty: (-inf, 0), the empty state
}

// Short rows (at most kLanes * N * kVec<T> keys): kLanes lanes per row, a warp (32) or a
// half-warp (16: two rows per warp); the row's state needs only shuffles, no shared
// memory, no barrier. N = 4 for rows that would leave lanes idle with 8 (a 1024-key fp16
// row). In the grid's last warp a half-warp may have no row: it still takes part in the
// shuffles (they name every lane of the warp), but reads and writes nothing.
template <class T, int N, bool kWhole, int kLanes>
__global__ void masked_softmax_warp_rows_kernel(const T* __restrict__ S, T* __restrict__ y, ScoreShape shape,
                                                float scale, Mask mask, int rows) {
  constexpr int V = course::kVec<T>, kRowsPerWarp = 32 / kLanes;
  const int lane = threadIdx.x % kLanes;
  const int first_row = (blockIdx.x * kWarpsPerBlock + threadIdx.x / 32) * kRowsPerWarp;
  if (first_row >= rows) return;  // a whole warp leaves together: the shuffles below stay full
  const int my_row = first_row + int(threadIdx.x % 32) / kLanes;
  const bool mine = my_row < rows;      // else: a half-warp past the last row, which reads and writes nothing
  const int row = min(my_row, rows - 1);  // a valid row for row_view's indices either way
  const std::size_t row_start = std::size_t(row) * shape.n_k;
  RowView view = row_view(row, shape, scale, mask, lane * V, kLanes * V);
  if (!mine) view.end = view.n_k = 0;
  uint4 raw[N];
  load_visible<T, N, kWhole>(raw, S + row_start, view);
  if (view.keep != nullptr) drop_explicitly_masked<T, N, kWhole>(raw, view);
  const MaxSum own = share_state<T>(raw, view);
  const MaxSum whole_row = warp_merge<kLanes>(own);
  store_share<T, N, kWhole>(raw, y + row_start, view, whole_row, own);
}

// Longer rows: one block per row, or a cluster of `cluster_size` blocks per row (sm_90+).
// Block `rank` of a cluster owns columns [rank * W, (rank + 1) * W), W = blockDim.x * kItems,
// and thread t its vectors t, t + blockDim.x, ...: each warp load reads 512 contiguous bytes.
// A block whose slice lies past the visible prefix reads nothing and writes zeros.
// Rows of whole 16-byte vectors only: with 1024 threads a thread has 64 registers, and 32
// of them hold the row; a key-by-key path for every vector would not fit beside them.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
masked_softmax_block_rows_kernel(const T* __restrict__ S, T* __restrict__ y, ScoreShape shape, float scale,
                                 Mask mask, int cluster_size) {
  constexpr int V = course::kVec<T>;
  __shared__ MaxSum scratch[32];  // block_reduce's per-warp partials
  course::cluster_begin(cluster_size);  // "started": cluster_merge may write into this block
  const int row = blockIdx.x / cluster_size;
  const int rank = blockIdx.x % cluster_size;  // this block's slice of the row
  const int slice_start = rank * blockDim.x * kItems<T>;
  const std::size_t row_start = std::size_t(row) * shape.n_k;
  const RowView view = row_view(row, shape, scale, mask, slice_start + int(threadIdx.x) * V, int(blockDim.x) * V);
  uint4 raw[kVectors];
  load_visible<T, kVectors, true>(raw, S + row_start, view);
  if (view.keep != nullptr) drop_explicitly_masked<T, kVectors, true>(raw, view);
  const MaxSum own = share_state<T>(raw, view);
  MaxSum whole_row = course::block_reduce(own, MergeMaxSumApprox{}, scratch);
  whole_row = course::cluster_merge(whole_row, MergeMaxSumApprox{}, cluster_size);  // the blocks of a cluster (sm_90)
  store_share<T, kVectors, true>(raw, y + row_start, view, whole_row, own);
}

// ---- Rows of 32k-64k 16-bit keys: registers + shared memory (chapter 03's staging) ----
// The block kernel holds such a row with 1024 threads, one block per SM: the SM loads the
// row, computes, reduces and stores, and its memory traffic stops while it computes. Here
// a block of 512 threads holds half its share in registers and half in shared memory
// ([kStaged][512] vectors, copied with cp.async), so two blocks share an SM. The two parts
// are loaded in turn: the staged vectors are copied and waited for, then the registers'
// loads start, and the staged part's max and exponentials run while those land. Each part
// keeps its own state (its p in units of its own max), corrected at the store. Measured on
// an H200: decoding rows of 65536 fp16 keys from 88-89% to 92% of copy bandwidth, with
// padding from 75-77% to 87-88%. fp32 rows of the same bytes have half the exponentials;
// staged, chapter 03's measured 1-2 points slower, so they keep the block kernel.
constexpr int kStagedThreads = 512;
constexpr int kStaged = kVectors;  // staged vectors per thread: as many as in registers
constexpr int kStagedBytes = kStaged * kStagedThreads * 16;

// A thread's vectors alternate between the parts: even ones staged, odd ones in registers,
// so that a row whose visible prefix ends early still has both parts to overlap (staging
// the second half of the share instead measured 86% against 87-88% of copy on padded
// decoding rows, H200). Staged vector s is the thread's vector 2s: its slot, and a view of
// it alone (its vector 0), for the helpers above.
__device__ __forceinline__ uint4& staged_slot(uint4* staged, int s) { return staged[s * blockDim.x + threadIdx.x]; }
__device__ __forceinline__ RowView staged_view(const RowView& row, int s) {
  RowView one = row;
  one.first_col = row.col(2 * s);
  return one;
}

// Starts the copies of the staged vectors wholly visible; the one holding row.end is read
// key by key and the ones past it are -inf, as load_visible leaves them in registers.
// One vector at a time (#pragma unroll 1): no registers held per copy.
template <class T>
__device__ __forceinline__ void stage_visible(uint4* staged, const T* __restrict__ s_row, const RowView& row) {
  constexpr int V = course::kVec<T>;
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s) {
    const int col = staged_view(row, s).first_col;
    if (col + V <= row.end)
      course::copy16_async(&staged_slot(staged, s), s_row + col, true);
    else
      staged_slot(staged, s) = col < row.end ? load_keys(s_row, col, row.end) : masked_vector<T>();
  }
  course::commit_copies();
}

// share_state of the staged vectors: their state (m, l), p left in their slots; the
// explicit mask applied first, as to the registers.
template <class T>
__device__ MaxSum staged_state(uint4* staged, const RowView& row) {
  float max_s = -INFINITY;
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s) {
    uint4 one[1] = {staged_slot(staged, s)};
    if (row.keep != nullptr) {
      drop_explicitly_masked<T, 1, true>(one, staged_view(row, s));
      staged_slot(staged, s) = one[0];
    }
    max_s = share_max<T>(one, staged_view(row, s), max_s);
  }
  if (max_s == -INFINITY) return MergeMaxSum::identity();
  float l = 0.0f;
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s) {
    uint4 one[1] = {staged_slot(staged, s)};
    l += keep_exponentials<T>(one, staged_view(row, s), max_s);
    staged_slot(staged, s) = one[0];
  }
  return {max_s * row.scale, l};
}

// One block of kStagedThreads per row; thread t holds vectors t, t + 512, ... (even ones
// staged, odd ones in registers). Whole 16-byte vectors only.
template <class T>
__global__ void __launch_bounds__(kStagedThreads, 2)
masked_softmax_staged_rows_kernel(const T* __restrict__ S, T* __restrict__ y, ScoreShape shape, float scale,
                                  Mask mask) {
  constexpr int V = course::kVec<T>;
  extern __shared__ uint4 staged[];  // [kStaged][blockDim.x] vectors; each thread only touches its own
  __shared__ MaxSum scratch[32];     // block_reduce's per-warp partials
  const int row = blockIdx.x;
  const std::size_t row_start = std::size_t(row) * shape.n_k;
  const RowView view = row_view(row, shape, scale, mask, int(threadIdx.x) * V, int(blockDim.x) * V);
  // The staged part first, then the registers' loads, the staged part's state while they land.
  stage_visible<T>(staged, S + row_start, view);
  course::wait_copies<0>();
  RowView in_registers = view;  // vectors 1, 3, 5, ...: twice the stride
  in_registers.first_col = view.col(1);
  in_registers.stride_cols = 2 * view.stride_cols;
  uint4 raw[kVectors];
  load_visible<T, kVectors, true>(raw, S + row_start, in_registers);
  const MaxSum staged_part = staged_state<T>(staged, view);
  if (view.keep != nullptr) drop_explicitly_masked<T, kVectors, true>(raw, in_registers);
  const MaxSum register_part = share_state<T>(raw, in_registers);

  const MaxSum whole_row =
      course::block_reduce(MergeMaxSumApprox{}(staged_part, register_part), MergeMaxSumApprox{}, scratch);
  store_share<T, kVectors, true>(raw, y + row_start, in_registers, whole_row, register_part);
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s)
    store_share<T, 1, true>({staged_slot(staged, s)}, y + row_start, staged_view(view, s), whole_row, staged_part);
}

// Rows longer than fit on chip: one block per row, two reads of its visible prefix. Read 1
// folds every kept key into a running state per thread (chapter 03's online softmax) and
// merges the threads' states over the block; read 2 writes y, 0 at every masked key.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
masked_softmax_two_reads_kernel(const T* __restrict__ S, T* __restrict__ y, ScoreShape shape, float scale,
                                Mask mask) {
  __shared__ MaxSum scratch[32];  // block_reduce's per-warp partials
  const int row = blockIdx.x;
  const RowView view = row_view(row, shape, scale, mask, threadIdx.x, blockDim.x);
  const T* s_row = S + std::size_t(row) * shape.n_k;
  T* y_row = y + std::size_t(row) * shape.n_k;

  MaxSum state = MergeMaxSum::identity();
  for (int col = threadIdx.x; col < view.end; col += blockDim.x)
    if (view.explicitly_kept(col)) state = course::merge(state, {to_float(s_row[col]) * scale, 1.0f});
  state = course::block_reduce(state, MergeMaxSum{}, scratch);

  const bool sees_nothing = state.m == -INFINITY;  // decide from m: see store_share
  const float inv_l = sees_nothing ? 0.0f : 1.0f / state.l;
  for (int col = threadIdx.x; col < shape.n_k; col += blockDim.x) {
    const bool counts = !sees_nothing && col < view.end && view.explicitly_kept(col);
    y_row[col] = course::from_float<T>(counts ? exp_shifted(to_float(s_row[col]) * scale, state.m) * inv_l : 0.0f);
  }
}

// ---- Host side ---------------------------------------------------------------------------

int rows_of(ScoreShape shape) { return shape.batch * shape.heads * shape.n_q; }
int ceil_div(int a, int b) { return int((std::int64_t(a) + b - 1) / b); }
bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

void check_problem(ScoreShape shape, float scale, const char* name) {
  const std::string who = name;
  if (shape.batch < 1 || shape.heads < 1 || shape.n_q < 1 || shape.n_k < 1)
    throw std::invalid_argument(who + ": batch, heads, n_q and n_k must be at least 1");
  if (std::int64_t(shape.batch) * shape.heads * shape.n_q > INT32_MAX)
    throw std::invalid_argument(who + ": batch * heads * n_q must be below 2^31");
  if (!(scale > 0.0f) || !std::isfinite(scale))
    throw std::invalid_argument(who + ": scale must be positive and finite (max(scale * s) = scale * max(s) needs scale > 0)");
}

// Short rows get a small block (threads would idle), long rows the largest (chapter 02).
int row_threads(int n_k) { return n_k <= 1024 ? 128 : n_k <= 8192 ? 256 : 1024; }

template <class T>
void launch_unfused(const T* S, T* y, ScoreShape shape, float scale, Mask mask, float* scaled, float* row_max,
                    cudaStream_t stream) {
  check_problem(shape, scale, "masked_softmax_unfused");
  if (scaled == nullptr || row_max == nullptr)
    throw std::invalid_argument("masked_softmax_unfused: needs its workspace, scaled (rows * n_k floats) and row_max (rows floats)");
  const int rows = rows_of(shape);
  const std::size_t count = std::size_t(rows) * shape.n_k;
  const int threads = row_threads(shape.n_k);
  const std::size_t scale_blocks = std::min<std::size_t>((count + 255) / 256, 65536);
  scale_kernel<<<unsigned(scale_blocks), 256, 0, stream>>>(S, scaled, count, scale);
  COURSE_CHECK_LAUNCH();
  if (mask.causal || mask.key_lengths || mask.keep) {  // no mask, no masked_fill
    mask_kernel<<<rows, threads, 0, stream>>>(scaled, shape, mask);
    COURSE_CHECK_LAUNCH();
  }
  row_max_kernel<<<rows, threads, 0, stream>>>(scaled, row_max, shape.n_k);
  COURSE_CHECK_LAUNCH();
  normalise_kernel<<<rows, threads, 0, stream>>>(scaled, row_max, y, shape.n_k);
  COURSE_CHECK_LAUNCH();
}

// Can this GPU run a cluster of kMaxCluster 1024-thread blocks of the block kernel?
template <class T>
bool full_clusters_run() {
  static const bool fits = course::cluster_fits(masked_softmax_block_rows_kernel<T>, kMaxCluster, kMaxThreads);
  return fits;  // asked once, not per launch
}

// Which kernel covers a row of n_k keys, with `threads` per block and `cluster` blocks per
// row. As chapter 03 measured: a warp while 32 threads' registers hold the row; one block
// while 1024 threads do (a 16-bit row that needs more than 512: one staged 512-thread block,
// two per SM, see its kernel); a cluster of 1024-thread blocks beyond (a cluster costs
// bandwidth: its blocks start, synchronise and finish together); two reads past that,
// and for long rows that are not whole 16-byte vectors (see the block kernel).
struct Plan {
  enum Kind { kWarpRows, kBlockRows, kStagedRows, kTwoReads } kind;
  int threads;
  int cluster;
};

// Can two staged blocks share an SM of this GPU? (Asked once; also raises the kernel's
// dynamic shared memory limit to kStagedBytes, which its launches need.) A GPU that cannot
// give a block that much shared memory answers no, and its rows take the block kernel.
template <class T>
bool staged_rows_run() {
  static const bool fits = [] {
    const auto kernel = masked_softmax_staged_rows_kernel<T>;
    int blocks = 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kStagedBytes) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kStagedThreads, kStagedBytes) != cudaSuccess) {
      (void)cudaGetLastError();  // clear the error: the answer is no
      return false;
    }
    return blocks >= 2;
  }();
  return fits;
}

template <class T>
Plan plan_rows(int n_k, int rows, bool whole_vectors) {
  if (n_k <= 32 * kItems<T>) return {Plan::kWarpRows, 32 * kWarpsPerBlock, 1};
  const Plan two_reads{Plan::kTwoReads, kMaxThreads, 1};
  if (!whole_vectors) return two_reads;
  const int threads = ceil_div(n_k, kItems<T> * 32) * 32;
  if constexpr (sizeof(T) == 2)  // fp32: the block kernel (see the staged kernel's comment)
    if (threads > kStagedThreads && threads <= kMaxThreads && staged_rows_run<T>())
      return {Plan::kStagedRows, kStagedThreads, 1};
  if (threads <= kMaxThreads) return {Plan::kBlockRows, threads, 1};
  const int cluster = ceil_div(n_k, kMaxThreads * kItems<T>);
  if (cluster <= kMaxCluster && std::int64_t(rows) * cluster <= INT32_MAX && full_clusters_run<T>())
    return {Plan::kBlockRows, kMaxThreads, cluster};
  return two_reads;
}

template <class T, int N, int kLanes = 32>
void launch_warp_rows(const T* S, T* y, ScoreShape shape, float scale, Mask mask, int rows, bool whole_vectors,
                      cudaStream_t stream) {
  const int blocks = ceil_div(rows, kWarpsPerBlock * (32 / kLanes));
  if (whole_vectors)
    masked_softmax_warp_rows_kernel<T, N, true, kLanes>
        <<<blocks, 32 * kWarpsPerBlock, 0, stream>>>(S, y, shape, scale, mask, rows);
  else
    masked_softmax_warp_rows_kernel<T, N, false, kLanes>
        <<<blocks, 32 * kWarpsPerBlock, 0, stream>>>(S, y, shape, scale, mask, rows);
  COURSE_CHECK_LAUNCH();
}

template <class T>
void launch_fused(const T* S, T* y, ScoreShape shape, float scale, Mask mask, cudaStream_t stream) {
  check_problem(shape, scale, "masked_softmax");
  const int rows = rows_of(shape);
  const bool whole_vectors = shape.n_k % course::kVec<T> == 0 && aligned16(S) && aligned16(y) &&
                             (mask.keep == nullptr || aligned16(mask.keep));
  const Plan plan = plan_rows<T>(shape.n_k, rows, whole_vectors);
  if (plan.kind == Plan::kWarpRows) {
    // As few vectors per lane as the row needs, so that no lane idles (a 512-key fp16 row: 2).
    // Rows that a mask shortens (causal with more than one query, or key lengths) read fewer
    // keys, so the work done once per row (row_view's division, the two butterflies, the
    // factor) weighs more: half-warps share it between two rows (512-key fp16 rows on an
    // H200: causal 83% -> 88-89% of copy, padded 80% -> 86-87%). Rows read in full keep whole
    // warps: half-warps measured 97% -> 95% on them.
    const bool shortened = (mask.causal && shape.n_q > 1) || mask.key_lengths;
    if (shortened && shape.n_k <= 16 * 4 * course::kVec<T>)
      launch_warp_rows<T, 4, 16>(S, y, shape, scale, mask, rows, whole_vectors, stream);
    else if (shape.n_k <= 32 * 2 * course::kVec<T>)
      launch_warp_rows<T, 2>(S, y, shape, scale, mask, rows, whole_vectors, stream);
    else if (shape.n_k <= 32 * 4 * course::kVec<T>)
      launch_warp_rows<T, 4>(S, y, shape, scale, mask, rows, whole_vectors, stream);
    else
      launch_warp_rows<T, kVectors>(S, y, shape, scale, mask, rows, whole_vectors, stream);
  } else if (plan.kind == Plan::kStagedRows) {
    if constexpr (sizeof(T) == 2) {  // plan_rows chooses it for 16-bit rows only
      masked_softmax_staged_rows_kernel<T><<<rows, plan.threads, kStagedBytes, stream>>>(S, y, shape, scale, mask);
      COURSE_CHECK_LAUNCH();
    }
  } else if (plan.kind == Plan::kTwoReads) {
    masked_softmax_two_reads_kernel<<<rows, plan.threads, 0, stream>>>(S, y, shape, scale, mask);
    COURSE_CHECK_LAUNCH();
  } else {
    course::launch_clustered(masked_softmax_block_rows_kernel<T>, unsigned(rows) * plan.cluster, plan.cluster,
                             plan.threads, 0, stream, S, y, shape, scale, mask, plan.cluster);
  }
}

}  // namespace

void masked_softmax_unfused(const float* S, float* y, ScoreShape shape, float scale, Mask mask, float* scaled,
                            float* row_max, cudaStream_t stream) {
  launch_unfused(S, y, shape, scale, mask, scaled, row_max, stream);
}
void masked_softmax_unfused(const __half* S, __half* y, ScoreShape shape, float scale, Mask mask, float* scaled,
                            float* row_max, cudaStream_t stream) {
  launch_unfused(S, y, shape, scale, mask, scaled, row_max, stream);
}
void masked_softmax_unfused(const __nv_bfloat16* S, __nv_bfloat16* y, ScoreShape shape, float scale, Mask mask,
                            float* scaled, float* row_max, cudaStream_t stream) {
  launch_unfused(S, y, shape, scale, mask, scaled, row_max, stream);
}

void masked_softmax(const float* S, float* y, ScoreShape shape, float scale, Mask mask, cudaStream_t stream) {
  launch_fused(S, y, shape, scale, mask, stream);
}
void masked_softmax(const __half* S, __half* y, ScoreShape shape, float scale, Mask mask, cudaStream_t stream) {
  launch_fused(S, y, shape, scale, mask, stream);
}
void masked_softmax(const __nv_bfloat16* S, __nv_bfloat16* y, ScoreShape shape, float scale, Mask mask,
                    cudaStream_t stream) {
  launch_fused(S, y, shape, scale, mask, stream);
}

int fused_max_cols(int value_bytes) {
  return (full_clusters_run<float>() ? kMaxCluster : 1) * kMaxThreads * (kVectors * 16 / value_bytes);
}

std::vector<Traffic> unfused_traffic(ScoreShape shape, int value_bytes, bool causal, bool has_key_lengths,
                                     bool has_keep) {
  const double rows = double(shape.batch) * shape.heads * shape.n_q;
  const double elements = rows * shape.n_k;
  std::vector<Traffic> kernels;
  kernels.push_back({"1 scale: read S, write t (fp32)", elements * (value_bytes + 4)});
  if (causal || has_key_lengths || has_keep)
    kernels.push_back({"2 mask: read t, write t", elements * 8 + (has_keep ? elements : 0.0) +
                                                       (has_key_lengths ? 4 * rows : 0.0)});
  kernels.push_back({"3 row max: read t, write m", elements * 4 + 4 * rows});
  kernels.push_back({"4 normalise: read m and t, write y", 4 * rows + elements * (4 + value_bytes)});
  return kernels;
}

double fused_traffic(ScoreShape shape, int value_bytes, bool causal, const std::vector<int>& key_lengths,
                     bool has_keep) {
  double visible = 0;  // keys read, over every row
  for (int b = 0; b < shape.batch; ++b)
    for (int i = 0; i < shape.n_q; ++i)
      visible += double(shape.heads) *
                 visible_end(i, shape.n_q, shape.n_k, causal, key_lengths.empty() ? shape.n_k : key_lengths[b]);
  const double rows = double(shape.batch) * shape.heads * shape.n_q;
  return visible * (value_bytes + (has_keep ? 1 : 0)) + rows * shape.n_k * value_bytes +
         (key_lengths.empty() ? 0.0 : 4 * rows);
}

}  // namespace ch04
