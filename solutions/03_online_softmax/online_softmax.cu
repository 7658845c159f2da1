// Chapter 03 — online softmax, the solutions.
//
//   merge              (m_a, l_a) (+) (m_b, l_b): the state of two parts of a row
//   shfl_xor(MaxSum)   lets the course's warp and block reductions combine states
//   softmax_online     two reads: running (m, l) per thread, merged over the block; normalise
//   softmax_one_read   one read: the row stays on chip (registers; long rows also shared
//                      memory) and each exponential is computed once; long rows use a thread-block
//                      cluster whose blocks merge their states through distributed shared memory
#include "online_softmax.hpp"

#include "course/cluster.cuh"
#include "course/cuda_check.hpp"
#include "course/dtype.cuh"
#include "course/online_softmax.cuh"  // exp_shifted
#include "course/reduce.cuh"
#include "course/rows.hpp"

#include <cuda_pipeline.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ch03 {

COURSE_HD MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  // Both parts empty: exp(-inf - (-inf)) would be NaN. Otherwise a part with m = -inf
  // gets the factor exp(-inf) = 0, and the part holding the max gets exactly 1.
  if (m == -INFINITY) return {-INFINITY, 0.0f};
  return {m, a.l * expf(a.m - m) + b.l * expf(b.m - m)};
}

// Exchanges a whole state between lanes, so course::warp_reduce and course::block_reduce
// (found by argument-dependent lookup) work on states as they do on floats.
__device__ MaxSum shfl_xor(MaxSum s, int lane_mask) {
  return {__shfl_xor_sync(0xffffffffu, s.m, lane_mask), __shfl_xor_sync(0xffffffffu, s.l, lane_mask)};
}

namespace {

using course::to_float;

// merge as a reduction operator: associative, with the empty state as identity.
struct Merge {
  __device__ MaxSum operator()(MaxSum a, MaxSum b) const { return merge(a, b); }
  __device__ static MaxSum identity() { return {-INFINITY, 0.0f}; }
};

// Block g: thread t folds states t, t + blockDim.x, ... of group g; the block merges.
__global__ void reduce_states_kernel(const MaxSum* __restrict__ states, int group_size,
                                     MaxSum* __restrict__ out) {
  __shared__ MaxSum scratch[32];
  const MaxSum* group = states + std::size_t(blockIdx.x) * group_size;
  MaxSum state = Merge::identity();
  for (int i = threadIdx.x; i < group_size; i += blockDim.x) state = merge(state, group[i]);
  state = course::block_reduce(state, Merge{}, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = state;
}

// One block per row, two reads of it. Read 1: each thread folds its values into a running
// state, a value x being the state (x, 1); merge rescales the running sum whenever x is a
// new max. The block then merges the threads' states into the row's (m, l). Read 2: y.
template <class T>
__global__ void softmax_online_kernel(const T* __restrict__ x, T* __restrict__ y, int cols) {
  __shared__ MaxSum scratch[32];  // block_reduce's per-warp partials
  const std::size_t row_start = std::size_t(blockIdx.x) * cols;
  const T* x_row = x + row_start;
  T* y_row = y + row_start;

  MaxSum state = Merge::identity();
  for (int c = threadIdx.x; c < cols; c += blockDim.x) state = merge(state, {to_float(x_row[c]), 1.0f});
  state = course::block_reduce(state, Merge{}, scratch);

  const float inv_l = 1.0f / state.l;
  for (int c = threadIdx.x; c < cols; c += blockDim.x)
    y_row[c] = course::from_float<T>(expf(to_float(x_row[c]) - state.m) * inv_l);
}

// ---- One read: the row in registers ------------------------------------------------
// Each thread holds N 16-byte vectors of its row as raw stored values: with N = 8, 128
// bytes (32 floats or 64 halves). 128 bytes a thread and ~32 warps an SM keep ~128 KB of
// loads in flight per SM, what it takes to keep HBM busy.
constexpr int kVectors = 8;
constexpr int kWarpsPerBlock = 4;  // warp-per-row kernel: rows per block
constexpr int kMaxThreads = 1024;
constexpr int kMaxCluster = course::kMaxClusterBlocks;  // the portable limit
constexpr int kStaged = 8;         // long rows: vectors per thread staged in shared memory
constexpr int kStagedThreads = 512;

template <class T>
constexpr int kItems = kVectors * course::kVec<T>;  // values per thread of the block kernel

using course::exp_shifted;  // exp(x - m) on the multifunction unit (common/include/course/online_softmax.cuh)
using course::kKeptLog2;    // p kept in T between the passes (common/include/course/dtype.cuh)
using course::kKeptScale;

// A thread's share of a row: vector i starts at column first_col + i * stride_cols.
// Vectors that start past the row's end are never read, computed or written.
struct RowShare {
  int first_col;
  int stride_cols;
  int cols;
  __device__ int col(int i) const { return first_col + i * stride_cols; }
  __device__ bool holds(int i) const { return col(i) < cols; }
};

// The kernels' kWhole: x and y are 16-byte aligned and cols is a multiple of kVec<T>, so
// each vector is one 16-byte access wholly inside the row or wholly past its end; otherwise
// value by value, -inf past the end. A template flag, not a run-time test: a value-by-value
// path costs registers for every vector, and the kernels have none to spare.

// Reads this thread's share of the row into registers.
template <class T, bool kWhole, int N>
__device__ __forceinline__ void load_share(uint4 (&raw)[N], const T* __restrict__ x_row,
                                           const RowShare& share) {
  constexpr int V = course::kVec<T>;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (!share.holds(i)) continue;
    const int col = share.col(i);
    if constexpr (kWhole) {
      raw[i] = *reinterpret_cast<const uint4*>(x_row + col);
    } else {
      float v[V];
#pragma unroll
      for (int j = 0; j < V; ++j) v[j] = col + j < share.cols ? to_float(x_row[col + j]) : -INFINITY;
      raw[i] = course::pack<T>(v);
    }
  }
}

// The row is on chip, so a thread needs no running state for its own values: it takes
// their max first, then each exponential once, and keeps p = exp(x - m) where x was until
// the store (one ex2 per value, not one per pass). Only the threads' states (m, l) are
// merged, over the block and the cluster: the online recurrence of this chapter.

// max(m, every value of the share's vectors).
template <class T, int N>
__device__ __forceinline__ float share_max(const uint4 (&raw)[N], const RowShare& share, float m) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    if (share.holds(i)) m = course::max_into<T>(m, raw[i]);
  return m;
}

// Replaces each value x by p = exp(x - m) * kKeptScale<T> and returns the sum of exp(x - m).
// m = -inf (a thread holding only -inf): every p is 0 and so is the sum; the shift is then
// 0, since exp(-inf - (-inf)) would be NaN.
template <class T, int N>
__device__ __forceinline__ float keep_exponentials(uint4 (&raw)[N], const RowShare& share, float m) {
  constexpr int V = course::kVec<T>;
  const float shift = m == -INFINITY ? 0.0f : m;
  float l = 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (!share.holds(i)) continue;
    float v[V];
    course::unpack<T>(raw[i], v);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      // The difference first: huge values (1e4) cancel exactly before anything is rounded.
      v[j] = course::exp2_approx(fmaf(v[j] - shift, course::kLog2e, float(kKeptLog2<T>)));
      l += v[j];
    }
    raw[i] = course::pack<T>(v);
  }
  return l * (1.0f / kKeptScale<T>);
}

// The state (m, l) of the values in registers; leaves p in their place.
template <class T, int N>
__device__ __forceinline__ MaxSum share_state(uint4 (&raw)[N], const RowShare& share) {
  const float m = share_max<T>(raw, share, -INFINITY);
  return {m, keep_exponentials<T>(raw, share, m)};
}

// y = exp(x - row.m) / row.l = p * exp(own.m - row.m) / row.l: the thread's exponentials
// (share_state's p, in units of its own max) corrected to the row's max, as merge
// corrects a part's sum, and divided by l: one multiply per value. Written where
// load_share read them from.
template <bool kWhole, class T, int N>
__device__ __forceinline__ void store_share(const uint4 (&raw)[N], T* __restrict__ y_row,
                                            const RowShare& share, MaxSum own, MaxSum row) {
  constexpr int V = course::kVec<T>;
  // own.l = 0: every p of this thread is 0 (and exp(-inf - row.m) may be NaN).
  const float factor = own.l > 0.0f ? __fdividef(exp_shifted(own.m, row.m), row.l * kKeptScale<T>) : 0.0f;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    if (!share.holds(i)) continue;
    const int col = share.col(i);
    float out[V];
    course::unpack<T>(raw[i], out);
#pragma unroll
    for (int j = 0; j < V; ++j) out[j] *= factor;
    if constexpr (kWhole) {
      course::store_vec(y_row + col, out);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j)
        if (col + j < share.cols) y_row[col + j] = course::from_float<T>(out[j]);
    }
  }
}

// Short rows (at most 32 * N * kVec<T> values): one warp per row, kWarpsPerBlock rows per
// block; the row's state needs only the warp's shuffles, no shared memory, no barrier.
// N = 4 for rows that would leave lanes idle with 8 (a 1024-value fp16 row).
template <class T, int N, bool kWhole>
__global__ void softmax_warp_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int rows, int cols) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together: the shuffles below stay full
  const std::size_t row_start = std::size_t(row) * cols;
  const RowShare share{lane * course::kVec<T>, 32 * course::kVec<T>, cols};
  uint4 raw[N];
  load_share<T, kWhole>(raw, x + row_start, share);
  const MaxSum own = share_state<T>(raw, share);
  const MaxSum whole_row = course::warp_reduce(own, Merge{});
  store_share<kWhole>(raw, y + row_start, share, own, whole_row);
}

// Rows one block holds in registers (up to 1024 threads): one block per row. Thread t
// holds vectors t, t + blockDim.x, ...: each warp load reads 512 contiguous bytes.
template <class T, bool kWhole>
__global__ void __launch_bounds__(kMaxThreads)
softmax_block_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int cols) {
  __shared__ MaxSum scratch[32];  // block_reduce's per-warp partials
  const std::size_t row_start = std::size_t(blockIdx.x) * cols;
  const RowShare share{int(threadIdx.x) * course::kVec<T>, int(blockDim.x) * course::kVec<T>, cols};
  uint4 raw[kVectors];
  load_share<T, kWhole>(raw, x + row_start, share);
  const MaxSum own = share_state<T>(raw, share);
  const MaxSum whole_row = course::block_reduce(own, Merge{}, scratch);
  store_share<kWhole>(raw, y + row_start, share, own, whole_row);
}

// ---- Longer rows: a cluster of blocks per row, registers + shared memory ------------
// Block `rank` of a cluster owns columns [rank * S, (rank + 1) * S) of its row, S =
// blockDim.x * (kVectors + kStaged) * kVec<T>: kVectors vectors per thread in registers,
// as the block kernel, and kStaged more in shared memory ([kStaged][blockDim.x] vectors;
// each thread only ever touches its own, so no barrier is needed). With 512 threads, two
// blocks share an SM, so one can load while the other writes: measured on an H200,
// 256k-value rows went from 64% to 80% of copy bandwidth this way (80-83% since each
// exponential is computed once, 85-88% since the two parts are loaded in turn).

// Staged vector s of this thread's share: its slot, and its place in the row.
__device__ __forceinline__ uint4& staged_slot(uint4* staged, int s) { return staged[s * blockDim.x + threadIdx.x]; }
__device__ __forceinline__ RowShare staged_share(const RowShare& share, int s) {
  return {share.col(kVectors + s), share.stride_cols, share.cols};  // its vector 0
}

// Starts the copies of the staged vectors, global -> shared without passing through
// registers (cp.async, sm_80+); they land while the kernel works on the vectors in
// registers, and wait_staged() waits for them. Not kWhole: value by value, as load_share.
template <class T, bool kWhole>
__device__ __forceinline__ void stage_share(uint4* staged, const T* __restrict__ x_row, const RowShare& share) {
#pragma unroll 1  // no registers held per copy: each address is computed as it is issued
  for (int s = 0; s < kStaged; ++s) {
    const RowShare one = staged_share(share, s);
    if (!one.holds(0)) continue;
    if constexpr (kWhole) {
      __pipeline_memcpy_async(&staged_slot(staged, s), x_row + one.col(0), sizeof(uint4));
    } else {
      uint4 raw[1];
      load_share<T, false>(raw, x_row, one);
      staged_slot(staged, s) = raw[0];
    }
  }
  __pipeline_commit();
}

__device__ __forceinline__ void wait_staged() { __pipeline_wait_prior(0); }

// share_state of the staged vectors: their state (m, l), p left in their slots. One vector
// at a time (#pragma unroll 1): a slot needs no constant index, and the registers stay free.
template <class T>
__device__ MaxSum staged_state(uint4* staged, const RowShare& share) {
  MaxSum state = Merge::identity();
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s) state.m = share_max<T>({staged_slot(staged, s)}, staged_share(share, s), state.m);
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s) {
    uint4 one[1] = {staged_slot(staged, s)};
    state.l += keep_exponentials<T>(one, staged_share(share, s), state.m);
    staged_slot(staged, s) = one[0];
  }
  return state;
}

template <class T, bool kWhole>
__global__ void __launch_bounds__(kStagedThreads, 2)
softmax_cluster_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int cols, int cluster_size) {
  extern __shared__ uint4 staged[];  // [kStaged][blockDim.x] vectors
  __shared__ MaxSum scratch[32];     // block_reduce's per-warp partials
  course::cluster_begin(cluster_size);  // "started": cluster_merge may write into this block
  const std::size_t row = blockIdx.x / cluster_size;
  const int rank = blockIdx.x % cluster_size;  // this block's slice of the row
  const int slice_start = rank * blockDim.x * (kVectors + kStaged) * course::kVec<T>;
  const RowShare share{slice_start + int(threadIdx.x) * course::kVec<T>, int(blockDim.x) * course::kVec<T>, cols};
  const T* x_row = x + row * cols;
  T* y_row = y + row * cols;
  // The two parts in turn, each with its own state (its p in units of the part's own max,
  // corrected at the store): the staged vectors are copied and waited for, then the
  // registers' loads start, and the staged part's maxima and exponentials run while those
  // land. Issuing every load at once and starting the exponentials after the last one
  // measured 2-8 points of copy bandwidth slower at 256k on an H200.
  stage_share<T, kWhole>(staged, x_row, share);
  wait_staged();
  uint4 raw[kVectors];
  load_share<T, kWhole>(raw, x_row, share);
  const MaxSum staged_part = staged_state<T>(staged, share);
  const MaxSum register_part = share_state<T>(raw, share);

  // The blocks' and the cluster's merges lie between the last load and the first store, on
  // every thread: with exp_shifted instead of merge's expf, half their instructions. Measured
  // on an H200, 256k fp32 86% -> 87-88% of copy, 16-bit 87% -> 88%.
  using MergeApprox = course::MergeMaxSumApprox<MaxSum>;
  MaxSum whole_row = course::block_reduce(Merge{}(staged_part, register_part), MergeApprox{}, scratch);
  whole_row = course::cluster_merge(whole_row, MergeApprox{}, cluster_size);  // the blocks of the cluster (sm_90)
  store_share<kWhole>(raw, y_row, share, register_part, whole_row);
#pragma unroll 1
  for (int s = 0; s < kStaged; ++s)
    store_share<kWhole>({staged_slot(staged, s)}, y_row, staged_share(share, s), staged_part, whole_row);
}

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

template <class T>
void launch_online(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  course::require_rows_cols(rows, cols, "softmax_online");
  softmax_online_kernel<<<rows, course::row_block_threads(cols), 0, stream>>>(x, y, cols);
  COURSE_CHECK_LAUNCH();
}

constexpr int kStagedBytes = kStaged * kStagedThreads * 16;  // dynamic shared memory of a cluster-rows block

// Can this GPU run a cluster of kMaxCluster cluster-rows blocks? (Asked once, not per launch.)
// Both kernels are asked: cluster_fits also raises each one's dynamic shared memory limit
// to kStagedBytes, which their launches need.
template <class T>
bool cluster_rows_run() {
  static const bool fits = course::cluster_fits(softmax_cluster_rows_kernel<T, true>, kMaxCluster, kStagedThreads,
                                                kStagedBytes) &&
                           course::cluster_fits(softmax_cluster_rows_kernel<T, false>, kMaxCluster, kStagedThreads,
                                                kStagedBytes);
  return fits;
}

// How the one-read kernels cover a row of `cols` values.
struct BlockPlan {
  int threads = 0;
  int cluster = 0;      // blocks per row; 0: does not fit on chip
  bool staged = false;  // the cluster-rows kernel (registers + shared memory), else the block kernel
};

// One block per row while 1024 threads hold it in registers (a cluster costs 10-20% of
// bandwidth, measured on an H200: its blocks start, synchronise and finish together);
// beyond, clusters of 512-thread blocks with half their share in shared memory. 16-bit rows
// that need more than 512 threads take one such staged block (a cluster of one), two per
// SM: measured on an H200, 64k fp16 values 88-89% -> 91% of copy; fp32 rows of the same
// bytes (half the exponentials) measured 1-2 points slower staged and keep the block kernel.
template <class T>
BlockPlan plan_block_rows(int cols) {
  const int threads = round_up((cols + kItems<T> - 1) / kItems<T>, 32);
  if (sizeof(T) == 2 && threads > kStagedThreads && threads <= kMaxThreads && cluster_rows_run<T>())
    return {kStagedThreads, 1, true};
  if (threads <= kMaxThreads) return {threads, 1, false};
  const int per_block = kStagedThreads * (kVectors + kStaged) * course::kVec<T>;
  const int cluster = (cols + per_block - 1) / per_block;
  if (cluster <= kMaxCluster && cluster_rows_run<T>()) return {kStagedThreads, cluster, true};
  return {};
}

// kWhole: as the kernels'.
template <class T, bool kWhole>
void launch_one_read_kernels(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  if (cols <= 32 * kItems<T>) {
    const int blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
    if (cols <= 32 * 4 * course::kVec<T>)
      softmax_warp_rows_kernel<T, 4, kWhole><<<blocks, 32 * kWarpsPerBlock, 0, stream>>>(x, y, rows, cols);
    else
      softmax_warp_rows_kernel<T, kVectors, kWhole><<<blocks, 32 * kWarpsPerBlock, 0, stream>>>(x, y, rows, cols);
    COURSE_CHECK_LAUNCH();
    return;
  }
  const BlockPlan plan = plan_block_rows<T>(cols);
  if (plan.cluster == 1 && !plan.staged) {
    softmax_block_rows_kernel<T, kWhole><<<rows, plan.threads, 0, stream>>>(x, y, cols);
    COURSE_CHECK_LAUNCH();
    return;
  }
  if (plan.cluster == 0 || std::size_t(rows) * plan.cluster > 0x7fffffffu)
    return launch_online(x, y, rows, cols, stream);  // too long for the chip: two reads
  course::launch_clustered(softmax_cluster_rows_kernel<T, kWhole>, unsigned(rows) * plan.cluster, plan.cluster,
                           plan.threads, kStagedBytes, stream, x, y, cols, plan.cluster);
}

template <class T>
void launch_one_read(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  course::require_rows_cols(rows, cols, "softmax_one_read");
  const bool whole_vectors = cols % course::kVec<T> == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0 &&
                             reinterpret_cast<std::uintptr_t>(y) % 16 == 0;
  if (whole_vectors)
    launch_one_read_kernels<T, true>(x, y, rows, cols, stream);
  else
    launch_one_read_kernels<T, false>(x, y, rows, cols, stream);
}

}  // namespace

void reduce_states(const MaxSum* states, int groups, int group_size, int threads, MaxSum* out,
                   cudaStream_t stream) {
  if (groups < 1 || group_size < 1 || threads < 32 || threads > 1024 || threads % 32 != 0)
    throw std::invalid_argument("reduce_states: need groups, group_size >= 1 and threads a multiple of 32 in [32, 1024]");
  reduce_states_kernel<<<groups, threads, 0, stream>>>(states, group_size, out);
  COURSE_CHECK_LAUNCH();
}

void softmax_online(const float* x, float* y, int rows, int cols, cudaStream_t s) { launch_online(x, y, rows, cols, s); }
void softmax_online(const __half* x, __half* y, int rows, int cols, cudaStream_t s) { launch_online(x, y, rows, cols, s); }
void softmax_online(const __nv_bfloat16* x, __nv_bfloat16* y, int rows, int cols, cudaStream_t s) {
  launch_online(x, y, rows, cols, s);
}
void softmax_one_read(const float* x, float* y, int rows, int cols, cudaStream_t s) { launch_one_read(x, y, rows, cols, s); }
void softmax_one_read(const __half* x, __half* y, int rows, int cols, cudaStream_t s) { launch_one_read(x, y, rows, cols, s); }
void softmax_one_read(const __nv_bfloat16* x, __nv_bfloat16* y, int rows, int cols, cudaStream_t s) {
  launch_one_read(x, y, rows, cols, s);
}

int one_read_max_cols(int value_bytes) {
  if (cluster_rows_run<float>()) return kMaxCluster * kStagedThreads * (kVectors + kStaged) * 16 / value_bytes;
  return kMaxThreads * kVectors * 16 / value_bytes;
}

}  // namespace ch03
