// Chapter 03 — online softmax: your kernels.
//
//   merge              (m_a, l_a) (+) (m_b, l_b): the state of two parts of a row
//   shfl_xor(MaxSum)   lets the course's warp and block reductions combine states
//   softmax_online     two reads: running (m, l) per thread, merged over the block; normalise
//   softmax_one_read   one read: the row stays in registers; long rows use a thread-block
//                      cluster whose blocks merge their states through distributed shared memory
//
// Fill in the TODOs, in order; everything else is complete. Check your work with
//   cmake --build --preset exercises && ctest --preset exercises -L 03
// Hints, mild to strong: exercises/03_online_softmax/HINTS.md.
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
  // TODO(03.1): m = the larger of a.m and b.m; l = each part's sum rescaled from its own
  // max to m (a factor exp(a.m - m), resp. exp(b.m - m)), added. Mind the case where
  // both parts are empty (m = -inf): exp(-inf - (-inf)) is NaN; the answer is (-inf, 0).
  return a;
}

// Exchanges a whole state between lanes, so course::warp_reduce and course::block_reduce
// (found by argument-dependent lookup) work on states as they do on floats.
__device__ MaxSum shfl_xor(MaxSum s, int lane_mask) {
  // TODO(03.2): return the state held by lane (this lane ^ lane_mask): both of its fields,
  // each through __shfl_xor_sync(0xffffffffu, field, lane_mask).
  return s;
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
  // TODO(03.3): read 1: starting from Merge::identity(), fold every value of the row this
  // thread visits (c = threadIdx.x, += blockDim.x) into its state: the value x is the state
  // (x, 1). Merge the threads' states with course::block_reduce(state, Merge{}, scratch).
  // Read 2: y_row[c] = exp(x - m) / l, converted with course::from_float<T>.
}

// ---- One read: the row in registers ------------------------------------------------
// Each thread holds N 16-byte vectors of its row as raw stored values: with N = 8, 128
// bytes (32 floats or 64 halves). 128 bytes a thread and ~32 warps an SM keep ~128 KB of
// loads in flight per SM, what it takes to keep HBM busy.
constexpr int kVectors = 8;
constexpr int kWarpsPerBlock = 4;  // warp-per-row kernel: rows per block
constexpr int kMaxThreads = 1024;
constexpr int kMaxCluster = 8;     // the portable limit
constexpr int kStaged = 8;         // long rows: vectors per thread staged in shared memory
constexpr int kStagedThreads = 512;

template <class T>
constexpr int kItems = kVectors * course::kVec<T>;  // values per thread of the block kernel

using course::exp_shifted;  // exp(x - m) on the multifunction unit (common/include/course/online_softmax.cuh)

// A thread's share of a row: vector i starts at column first_col + i * stride_cols.
// whole_vectors: x and y are 16-byte aligned and cols is a multiple of kVec<T>, so each
// vector is wholly inside the row or wholly past its end; otherwise value by value.
struct RowShare {
  int first_col;
  int stride_cols;
  int cols;
  bool whole_vectors;
  __device__ int col(int i) const { return first_col + i * stride_cols; }
};

// Reads this thread's share of the row into registers; values past the row's end are -inf.
template <class T, int N>
__device__ __forceinline__ void load_share(uint4 (&raw)[N], const T* __restrict__ x_row,
                                           const RowShare& share) {
  // TODO(03.4a): for each vector i < N (#pragma unroll: raw must stay in registers), at
  // column col = share.col(i): with share.whole_vectors and col < share.cols, one 16-byte
  // load, raw[i] = *reinterpret_cast<const uint4*>(x_row + col); otherwise fill a
  // float[kVec<T>] value by value (-INFINITY past share.cols), raw[i] = course::pack<T>(it).
}

// The state (m, l) of the values in registers, folded vector by vector with merge: the
// online recurrence again, at the grain of 16 bytes (each vector's floats die at once).
template <class T, int N>
__device__ __forceinline__ MaxSum share_state(const uint4 (&raw)[N]) {
  // TODO(03.4b): fold the vectors into one state: for each, course::unpack<T> it to floats,
  // take its max m (skip a vector that is all -INFINITY) and l = sum of exp_shifted(v, m),
  // and merge {m, l} into the running state, which starts as Merge::identity().
  return Merge::identity();
}

// y = exp(x - m) / l for the values in registers, written where they were read from.
template <class T, int N>
__device__ __forceinline__ void store_share(const uint4 (&raw)[N], T* __restrict__ y_row,
                                            const RowShare& share, MaxSum row) {
  // TODO(03.4c): for each vector: unpack it, out[j] = exp_shifted(value, row.m) / row.l,
  // and write it back where load_share read it from (course::pack<T> + one 16-byte store,
  // or value by value with course::from_float<T>, only columns < share.cols).
}

// Short rows (at most 32 * N * kVec<T> values): one warp per row, kWarpsPerBlock rows per
// block; the row's state needs only the warp's shuffles, no shared memory, no barrier.
// N = 4 for rows that would leave lanes idle with 8 (a 1024-value fp16 row).
template <class T, int N>
__global__ void softmax_warp_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int rows, int cols,
                                         bool whole_vectors) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together: the shuffles below stay full
  const std::size_t row_start = std::size_t(row) * cols;
  const RowShare share{lane * course::kVec<T>, 32 * course::kVec<T>, cols, whole_vectors};
  uint4 raw[N];
  load_share(raw, x + row_start, share);
  const MaxSum state = course::warp_reduce(share_state<T>(raw), Merge{});
  store_share(raw, y + row_start, share, state);
}

// The staged part of a long row's share: vectors kVectors .. kVectors + M - 1 of this
// thread's share, kept in shared memory ([M][blockDim.x] vectors: each thread only ever
// touches its own, so no barrier is needed). The copies go global -> shared without
// passing through registers (cp.async on sm_80+), and run while the kernel works on the
// vectors in registers; wait_staged() waits for them.
template <class T, int M>
__device__ __forceinline__ void stage_share(uint4* staged, const T* __restrict__ x_row, const RowShare& share) {
#pragma unroll
  for (int s = 0; s < M; ++s) {
    const int col = share.col(kVectors + s);
    uint4* slot = &staged[s * blockDim.x + threadIdx.x];
    if (share.whole_vectors && col < share.cols) {
      __pipeline_memcpy_async(slot, x_row + col, sizeof(uint4));
    } else {  // value by value, as load_share: -inf past the row's end
      float v[course::kVec<T>];
#pragma unroll
      for (int j = 0; j < course::kVec<T>; ++j) v[j] = col + j < share.cols ? to_float(x_row[col + j]) : -INFINITY;
      *slot = course::pack<T>(v);
    }
  }
  __pipeline_commit();
}

__device__ __forceinline__ void wait_staged() { __pipeline_wait_prior(0); }

// Longer rows: one block per row, or a cluster of `cluster_size` blocks per row (sm_90+).
// Block `rank` of a cluster owns columns [rank * S, (rank + 1) * S), S = blockDim.x *
// (kVectors + M) * kVec<T>, and thread t its vectors t, t + blockDim.x, ...: each warp
// load reads 512 contiguous bytes. M = 0: the share is in registers only (up to 1024
// threads, one block per row). M = kStaged (rows one such block cannot hold): 512-thread
// blocks keep as much again in shared memory, so two blocks share an SM and one loads
// while the other writes; measured on an H200, 256k-value rows went from 64% to 80% of
// copy bandwidth this way.
template <class T, int M>
__global__ void __launch_bounds__(kMaxThreads)
softmax_block_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int cols, int cluster_size,
                          bool whole_vectors) {
  extern __shared__ uint4 staged[];  // [M][blockDim.x] vectors, M > 0 only
  __shared__ MaxSum scratch[32];
  const std::size_t row = blockIdx.x / cluster_size;
  const int rank = blockIdx.x % cluster_size;  // this block's slice of the row
  const int slice_start = rank * blockDim.x * (kVectors + M) * course::kVec<T>;
  const RowShare share{slice_start + int(threadIdx.x) * course::kVec<T>, int(blockDim.x) * course::kVec<T>,
                          cols, whole_vectors};
  const T* x_row = x + row * cols;
  T* y_row = y + row * cols;
  if constexpr (M > 0) stage_share<T, M>(staged, x_row, share);
  uint4 raw[kVectors];
  load_share(raw, x_row, share);
  MaxSum state = share_state<T>(raw);
  if constexpr (M > 0) {
    wait_staged();
#pragma unroll 1  // one staged vector at a time: registers stay free
    for (int s = 0; s < M; ++s) {
      const uint4 one[1] = {staged[s * blockDim.x + threadIdx.x]};
      state = merge(state, share_state<T>(one));
    }
  }
  state = course::block_reduce(state, Merge{}, scratch);
  state = course::cluster_merge(state, Merge{}, cluster_size);  // the blocks of a cluster (sm_90)
  store_share(raw, y_row, share, state);
  if constexpr (M > 0) {
#pragma unroll 1
    for (int s = 0; s < M; ++s) {
      const uint4 one[1] = {staged[s * blockDim.x + threadIdx.x]};
      const RowShare one_share{share.col(kVectors + s), share.stride_cols, cols, whole_vectors};
      store_share(one, y_row, one_share, state);
    }
  }
  course::cluster_release(cluster_size);
}

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

template <class T>
void launch_online(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  course::require_rows_cols(rows, cols, "softmax_online");
  softmax_online_kernel<<<rows, course::row_block_threads(cols), 0, stream>>>(x, y, cols);
  COURSE_CHECK_LAUNCH();
}

constexpr int kStagedBytes = kStaged * kStagedThreads * 16;  // dynamic shared memory of a staged block

// Can this GPU run a cluster of kMaxCluster staged blocks? (Asked once, not per launch.)
template <class T>
bool staged_clusters_run() {
  static const bool fits =
      course::cluster_fits(softmax_block_rows_kernel<T, kStaged>, kMaxCluster, kStagedThreads, kStagedBytes);
  return fits;
}

// How the block kernel covers a row: `threads` per block, `cluster` blocks per row,
// `staged`: with kStaged vectors per thread in shared memory.
struct BlockPlan {
  int threads = 0;
  int cluster = 0;  // 0: the row does not fit on chip
  bool staged = false;
};

// One block per row while 1024 threads hold it in registers (a cluster costs 10-20% of
// bandwidth, measured on an H200: its blocks start, synchronise and finish together);
// beyond, clusters of staged 512-thread blocks.
template <class T>
BlockPlan plan_block_rows(int cols) {
  const int threads = round_up((cols + kItems<T> - 1) / kItems<T>, 32);
  if (threads <= kMaxThreads) return {threads, 1, false};
  const int per_block = kStagedThreads * (kVectors + kStaged) * course::kVec<T>;
  const int cluster = (cols + per_block - 1) / per_block;
  if (cluster <= kMaxCluster && staged_clusters_run<T>()) return {kStagedThreads, cluster, true};
  return {};
}

template <class T>
void launch_one_read(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  course::require_rows_cols(rows, cols, "softmax_one_read");
  const bool whole_vectors = cols % course::kVec<T> == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0 &&
                             reinterpret_cast<std::uintptr_t>(y) % 16 == 0;
  if (cols <= 32 * kItems<T>) {
    const int blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
    if (cols <= 32 * 4 * course::kVec<T>)
      softmax_warp_rows_kernel<T, 4><<<blocks, 32 * kWarpsPerBlock, 0, stream>>>(x, y, rows, cols, whole_vectors);
    else
      softmax_warp_rows_kernel<T, kVectors><<<blocks, 32 * kWarpsPerBlock, 0, stream>>>(x, y, rows, cols,
                                                                                       whole_vectors);
    COURSE_CHECK_LAUNCH();
    return;
  }
  const BlockPlan plan = plan_block_rows<T>(cols);
  if (plan.cluster == 0 || std::size_t(rows) * plan.cluster > 0x7fffffffu)
    return launch_online(x, y, rows, cols, stream);
  const auto kernel = plan.staged ? softmax_block_rows_kernel<T, kStaged> : softmax_block_rows_kernel<T, 0>;
  course::launch_clustered(kernel, unsigned(rows) * plan.cluster, plan.cluster, plan.threads,
                           plan.staged ? kStagedBytes : 0, stream, x, y, cols, plan.cluster, whole_vectors);
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
  if (staged_clusters_run<float>()) return kMaxCluster * kStagedThreads * (kVectors + kStaged) * 16 / value_bytes;
  return kMaxThreads * kVectors * 16 / value_bytes;
}

}  // namespace ch03
