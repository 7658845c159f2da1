// Chapter 03 — online softmax: your kernels.
//
//   merge              (m_a, l_a) (+) (m_b, l_b): the state of two parts of a row
//   shfl_xor(MaxSum)   lets the course's warp and block reductions combine states
//   softmax_online     two reads: running (m, l) per thread, merged over the block; normalise
//   softmax_one_read   one read: the row stays in registers; long rows use a thread-block
//                      cluster whose blocks merge their states through distributed shared memory
//
// Fill in the four TODOs, in order; everything else is complete. Check your work with
//   cmake --build --preset exercises && ctest --preset exercises -L 03
// Hints, mild to strong: exercises/03_online_softmax/HINTS.md.
#include "online_softmax.hpp"

#include "course/cuda_check.hpp"
#include "course/dtype.cuh"
#include "course/reduce.cuh"

#include <cooperative_groups.h>

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

// Values each thread of the one-read kernel holds in registers.
constexpr int kItems = 32;
constexpr int kMaxThreads = 1024;
constexpr int kMaxCluster = 8;  // the portable cluster size limit

// The row's state from the states of the blocks of this block's cluster (each holds a
// slice of the row). Result valid in every thread of every block of the cluster. Every
// thread of the cluster must call it. Without a cluster it returns `state`.
__device__ MaxSum cluster_reduce(MaxSum state, int cluster_size) {
#if __CUDA_ARCH__ >= 900
  if (cluster_size > 1) {
    namespace cg = cooperative_groups;
    __shared__ MaxSum block_state;  // read by the other blocks of the cluster
    cg::cluster_group cluster = cg::this_cluster();
    if (threadIdx.x == 0) block_state = state;
    cluster.sync();  // every block's state is written before any block reads them
    MaxSum row = Merge::identity();
    for (int rank = 0; rank < cluster_size; ++rank)  // same order everywhere: same result
      row = merge(row, *cluster.map_shared_rank(&block_state, rank));
    cluster.sync();  // no block exits, freeing its shared memory, while others still read it
    return row;
  }
#endif
  return state;
}

// The row stays in registers: read once, written once. The C blocks of a cluster (C = 1
// without one) split the row: block `rank` owns columns [rank * S, (rank + 1) * S) with
// S = blockDim.x * kItems, and thread t holds the 16-byte vectors t, t + blockDim.x, ...
// of that slice, so each load instruction of a warp reads 512 contiguous bytes.
// whole_vectors: x and y are 16-byte aligned and cols is a multiple of V, so every row
// starts aligned and a vector lies wholly inside the row or wholly past its end;
// otherwise the kernel reads and writes value by value.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
softmax_one_read_kernel(const T* __restrict__ x, T* __restrict__ y, int cols, int cluster_size,
                        bool whole_vectors) {
  constexpr int V = course::kVec<T>;        // values per 16-byte vector
  constexpr int kVectors = kItems / V;      // vectors per thread
  __shared__ MaxSum scratch[32];
  const std::size_t row = blockIdx.x / cluster_size;
  const int rank = blockIdx.x % cluster_size;  // this block's slice of the row
  const int slice_start = rank * blockDim.x * kItems;
  const T* x_row = x + row * cols;
  T* y_row = y + row * cols;

  float v[kVectors][V];  // this thread's values; constant indices keep them in registers
  // TODO(03.4), in four steps:
  //  1. load: vector i of this thread starts at column
  //       col = slice_start + (i * blockDim.x + threadIdx.x) * V;
  //     with whole_vectors and col < cols, course::load_vec(x_row + col, v[i]); otherwise
  //     value by value, -INFINITY past the end of the row.
  //  2. this thread's state: m = max of its values; replace each value by exp(value - m)
  //     (0 if m is -INFINITY: the thread is past the row's end) and add them up into l.
  //  3. the row's state: course::block_reduce(MaxSum{m, l}, Merge{}, scratch), then
  //     cluster_reduce(..., cluster_size) to combine the blocks of a cluster (given).
  //  4. y = exp(x - m_row) / l_row = (the stored exp(x - m)) * exp(m - m_row) / l_row:
  //     scale the values, store them as you loaded them (course::store_vec or value by value).
}

void check_shape(int rows, int cols, const char* name) {
  if (rows < 1 || cols < 1) throw std::invalid_argument(std::string(name) + ": rows and cols must be at least 1");
}

int round_up(int value, int multiple) { return (value + multiple - 1) / multiple * multiple; }

// Short rows get a small block (threads would idle), long rows the largest.
int online_threads(int cols) { return cols <= 1024 ? 128 : cols <= 8192 ? 256 : 1024; }

template <class T>
void launch_online(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  check_shape(rows, cols, "softmax_online");
  softmax_online_kernel<<<rows, online_threads(cols), 0, stream>>>(x, y, cols);
  COURSE_CHECK_LAUNCH();
}

bool clusters_supported() {
  int device = 0, supported = 0;
  COURSE_CUDA_CHECK(cudaGetDevice(&device));
  COURSE_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrClusterLaunch, device));
  return supported != 0;
}

// How the one-read kernel covers a row: `threads` per block, `cluster` blocks per row.
struct OneReadPlan {
  int threads = 0;
  int cluster = 0;  // 0: the row does not fit on chip
};

OneReadPlan plan_one_read(int cols) {
  const int threads = round_up((cols + kItems - 1) / kItems, 32);
  if (threads <= 512) return {threads, 1};
  if (!clusters_supported()) return threads <= kMaxThreads ? OneReadPlan{threads, 1} : OneReadPlan{};
  // Prefer clusters of 512-thread blocks, two of which share an SM (one finishing its
  // row while the other loads); past 8 x 512 x kItems use 1024-thread blocks.
  for (int block : {512, kMaxThreads}) {
    const int cluster = (cols + block * kItems - 1) / (block * kItems);
    if (cluster <= kMaxCluster) return {block, cluster};
  }
  return {};
}

template <class T>
void launch_one_read(const T* x, T* y, int rows, int cols, cudaStream_t stream) {
  check_shape(rows, cols, "softmax_one_read");
  const OneReadPlan plan = plan_one_read(cols);
  if (plan.cluster == 0 || std::size_t(rows) * plan.cluster > 0x7fffffffu)
    return launch_online(x, y, rows, cols, stream);
  const bool whole_vectors = cols % course::kVec<T> == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0 &&
                             reinterpret_cast<std::uintptr_t>(y) % 16 == 0;
  cudaLaunchAttribute cluster_dims{};
  cluster_dims.id = cudaLaunchAttributeClusterDimension;
  cluster_dims.val.clusterDim.x = plan.cluster;
  cluster_dims.val.clusterDim.y = 1;
  cluster_dims.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(unsigned(rows) * plan.cluster);
  config.blockDim = dim3(plan.threads);
  config.stream = stream;
  config.attrs = &cluster_dims;
  config.numAttrs = plan.cluster > 1 ? 1 : 0;
  COURSE_CUDA_CHECK(cudaLaunchKernelEx(&config, softmax_one_read_kernel<T>, x, y, cols, plan.cluster,
                                       whole_vectors));
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

int one_read_max_cols() { return (clusters_supported() ? kMaxCluster : 1) * kMaxThreads * kItems; }

}  // namespace ch03
