// Thread-block clusters (sm_90+), for the softmax kernels whose rows are longer than one
// block can hold (chapters 03 and 04): the row is split over a cluster of blocks, which
// merge their (m, l) states through distributed shared memory.
//
//   device:  cluster_begin(cluster_size) as the kernel's first statement, then
//            cluster_merge(state, op, cluster_size)
//   host:    clusters_supported(), clusters_resident(kernel, ...), cluster_fits(kernel, ...),
//            launch_clustered(kernel, ...)
#pragma once

#include "course/cuda_check.hpp"
#include "course/online_softmax.cuh"

#include <cooperative_groups.h>

namespace course {

// The most blocks a cluster may hold without opting in to non-portable sizes.
constexpr int kMaxClusterBlocks = 8;

// "This block has started": the first statement of a kernel that calls cluster_merge, in
// every thread. A block may write into another's shared memory only once that block is
// running; cluster_merge waits for this arrival before its writes. Arriving first and
// waiting after the loads, the wait costs nothing: every block arrived long before.
__device__ inline void cluster_begin(int cluster_size) {
#if __CUDA_ARCH__ >= 900
  if (cluster_size > 1) cooperative_groups::this_cluster().barrier_arrive();
#endif
}

// The row's state from the states of the blocks of this block's cluster (each holds a
// slice of the row), combined with `op` (an associative operation with Op::identity(),
// such as chapter 03's merge). Result valid in every thread of every block of the
// cluster. Every thread of the cluster must call it, after cluster_begin(); cluster_size is
// at most kMaxClusterBlocks. With a cluster of one block (or before sm_90) it returns `state`.
//
// Each block pushes its state into every block's shared memory, then one cluster barrier;
// after it each block merges its own copies. No block touches another's shared memory
// after the barrier, so a block may leave whenever it is done.
template <class State, class Op>
__device__ State cluster_merge(State state, Op op, int cluster_size) {
#if __CUDA_ARCH__ >= 900
  if (cluster_size > 1) {
    namespace cg = cooperative_groups;
    __shared__ State states[kMaxClusterBlocks];  // states[r]: block r's state, in every block
    cg::cluster_group cluster = cg::this_cluster();
    cluster.barrier_wait();  // every block has started (cluster_begin): its shared memory exists
    const unsigned me = cluster.block_rank();
    if (threadIdx.x < unsigned(cluster_size))  // thread r writes into block r
      cluster.map_shared_rank(states, threadIdx.x)[me] = state;
    cluster.sync();  // every block's state is in every block
    State row = Op::identity();
    for (int rank = 0; rank < cluster_size; ++rank)  // same order everywhere: same result
      row = op(row, states[rank]);
    return row;
  }
#endif
  return state;
}

// Can this GPU launch clusters at all (sm_90+)?
inline bool clusters_supported() {
  int device = 0, supported = 0;
  COURSE_CUDA_CHECK(cudaGetDevice(&device));
  COURSE_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrClusterLaunch, device));
  return supported != 0;
}

namespace detail {
inline cudaLaunchConfig_t cluster_config(unsigned blocks, int cluster, int threads, int smem_bytes,
                                         cudaStream_t stream, cudaLaunchAttribute& dims) {
  dims = {};
  dims.id = cudaLaunchAttributeClusterDimension;
  dims.val.clusterDim.x = unsigned(cluster);
  dims.val.clusterDim.y = dims.val.clusterDim.z = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(unsigned(threads));
  config.dynamicSmemBytes = std::size_t(smem_bytes);
  config.stream = stream;
  config.attrs = &dims;
  config.numAttrs = cluster > 1 ? 1 : 0;
  return config;
}
}  // namespace detail

// How many clusters of `cluster` blocks of `kernel` (`threads` threads and `smem_bytes` of
// dynamic shared memory each) the GPU holds at once; 0 if it can run none. A refusal is an
// answer, not an error.
template <class... Params>
int clusters_resident(void (*kernel)(Params...), int cluster, int threads, int smem_bytes = 0) {
  if (!clusters_supported()) return 0;
  if (smem_bytes > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem_bytes) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  cudaLaunchAttribute dims;
  const cudaLaunchConfig_t config = detail::cluster_config(unsigned(cluster), cluster, threads, smem_bytes, nullptr, dims);
  int active = 0;
  if (cudaOccupancyMaxActiveClusters(&active, kernel, &config) != cudaSuccess) active = 0;
  cudaGetLastError();
  return active;
}

// Can the GPU run at least one such cluster?
template <class... Params>
bool cluster_fits(void (*kernel)(Params...), int cluster, int threads, int smem_bytes = 0) {
  return clusters_resident(kernel, cluster, threads, smem_bytes) > 0;
}

// Launches `blocks` blocks of `kernel` in clusters of `cluster` (1: no cluster).
template <class... Params, class... Args>
void launch_clustered(void (*kernel)(Params...), unsigned blocks, int cluster, int threads, int smem_bytes,
                      cudaStream_t stream, Args... args) {
  cudaLaunchAttribute dims;
  const cudaLaunchConfig_t config = detail::cluster_config(blocks, cluster, threads, smem_bytes, stream, dims);
  COURSE_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, Params(args)...));
}

}  // namespace course
