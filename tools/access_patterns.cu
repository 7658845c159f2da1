// Access-pattern ceilings (for maintainers): the memory traffic of the softmax and decode
// kernels that stay below their targets, with the arithmetic taken out.
//
// Each kernel here reads and writes exactly what a chapter's kernel does (the same rows,
// the same 16-byte vectors, the same threads, staging and barriers) and computes nothing:
// y = x over a row's visible prefix, 0 after it. It keeps the one constraint of a softmax
// that no arithmetic can remove: every output depends on the whole row, so every load of
// a row lands before any of its stores (a vote over the row's loaded bits, in place of the
// reduction). What it reaches is the ceiling of the access pattern itself, measured in the
// same run as the copy: a fused kernel at that ceiling is bound by where its bytes go, not
// by its instructions.
//
//   ch03  rows of 262144 values: a cluster per row (chapter 03's cluster kernel: 512-thread
//         blocks, 8 vectors a thread in registers and 8 staged with cp.async, two blocks
//         per SM, the blocks' cluster barrier between the loads and the stores); the same
//         blocks with no barrier, each on its own; and a design the chapter does not use,
//         persistent clusters with two rows in flight
//   ch04  [43 * 12, 512, 512] causal (a half-warp per row, chapter 04's shape for rows a
//         mask shortens; and a warp per row); [171 * 12, 1, 65536] decoding rows with and
//         without padding (chapter 04's staged block, and a 1024-thread block that holds
//         the whole row in registers)
//   ch08  reading a KV cache's bytes once (8 loads in flight a thread), at the sizes of
//         chapter 08's table; the split kernel's walk over its tiles without the products;
//         and an empty kernel, the cost of a launch between two events
//
// Run: build/solutions/bin/access_patterns  (tools/PERF-NOTES.md keeps what it measured)
#include "course/async_copy.cuh"
#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/cluster.cuh"
#include "course/device_buffer.hpp"
#include "course/device_random.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/table.hpp"
#include "course/timing.hpp"

#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

using course::DeviceBuffer;
using course::MaxSum;

// The bits of a vector folded into one word: what a row's vote waits for.
__device__ __forceinline__ unsigned fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }
constexpr unsigned kNever = 0x9E3779B9u;  // a fold that random data does not give

// ---- Chapter 03: a row over a cluster of blocks --------------------------------------------

constexpr int kClusterThreads = 512;
constexpr int kHeld = 8;  // vectors a thread holds in registers, and as many staged
constexpr int kStagedBytes = kHeld * kClusterThreads * 16;

// Block `rank` of its cluster owns 2 * kHeld * 512 vectors of the row: thread t the vectors
// t + 512 i, the even i staged (copied first, waited for), the odd ones in registers.
// kBarrier: the blocks of a cluster meet between their loads and their stores, as the
// chapter's kernel merges the blocks' (m, l) there; without it each block runs on its own.
template <bool kBarrier>
__global__ void __launch_bounds__(kClusterThreads, 2)
    cluster_rows(const uint4* __restrict__ x, uint4* __restrict__ y, int row_vectors, int cluster_size) {
  extern __shared__ uint4 staged[];
  if constexpr (kBarrier) course::cluster_begin(cluster_size);
  const std::size_t row = blockIdx.x / cluster_size;
  const int rank = blockIdx.x % cluster_size;
  const std::size_t first = row * row_vectors + std::size_t(rank) * 2 * kHeld * kClusterThreads + threadIdx.x;
  auto vector = [&](int i) { return first + std::size_t(i) * kClusterThreads; };
  for (int s = 0; s < kHeld; ++s)
    course::copy16_async(&staged[s * kClusterThreads + threadIdx.x], x + vector(2 * s), true);
  course::commit_copies();
  course::wait_copies<0>();
  uint4 held[kHeld];
  unsigned bits = 0;
#pragma unroll
  for (int i = 0; i < kHeld; ++i) {
    held[i] = x[vector(2 * i + 1)];
    bits ^= fold(held[i]) ^ fold(staged[i * kClusterThreads + threadIdx.x]);
  }
  // The chapter's block_reduce (after every load of the block), then the blocks' merge.
  float vote = __syncthreads_or(bits == kNever);
  if constexpr (kBarrier) vote = course::cluster_merge(MaxSum{vote, 1.0f}, course::MergeMaxSum{}, cluster_size).m;
  if (vote != 0.0f && threadIdx.x == 0) y[first] = held[0];  // never: keeps the vote in the program
#pragma unroll
  for (int i = 0; i < kHeld; ++i) y[vector(2 * i + 1)] = held[i];
  for (int s = 0; s < kHeld; ++s) y[vector(2 * s)] = staged[s * kClusterThreads + threadIdx.x];
}

// A design chapter 03 does not use: persistent clusters of 1024-thread blocks (one per SM),
// two rows in flight. A block holds its share of one row in registers (8 vectors a thread)
// and of the next in shared memory (cp.async); while the cluster waits for one row's
// slowest block, the other row's bytes are on their way.
constexpr int kPipelinedThreads = 1024;
constexpr int kPipelinedBytes = kHeld * kPipelinedThreads * 16;

__global__ void __launch_bounds__(kPipelinedThreads, 1)
    cluster_rows_pipelined(const uint4* __restrict__ x, uint4* __restrict__ y, int rows, int row_vectors,
                           int cluster_size) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  extern __shared__ uint4 staged[];
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = int(cluster.block_rank());
  const int clusters = gridDim.x / cluster_size, first_row = blockIdx.x / cluster_size;
  auto vector = [&](int row, int i) {
    return std::size_t(row) * row_vectors + std::size_t(rank) * kHeld * kPipelinedThreads + i * kPipelinedThreads +
           threadIdx.x;
  };
  uint4 held[kHeld];
#pragma unroll
  for (int i = 0; i < kHeld; ++i) held[i] = first_row < rows ? x[vector(first_row, i)] : uint4{};
  for (int row = first_row; row < rows; row += 2 * clusters) {
    const int next = row + clusters;
    unsigned bits = 0;
#pragma unroll
    for (int i = 0; i < kHeld; ++i) bits ^= fold(held[i]);
    const bool vote = __syncthreads_or(bits == kNever);  // the block's state of `row`
    cluster.barrier_arrive();                            // ... shared with the cluster
    if (next < rows)
      for (int i = 0; i < kHeld; ++i)
        course::copy16_async(&staged[i * kPipelinedThreads + threadIdx.x], x + vector(next, i), true);
    course::commit_copies();
    cluster.barrier_wait();  // every block's state of `row` is in
#pragma unroll
    for (int i = 0; i < kHeld; ++i) y[vector(row, i)] = held[i];
    if (vote && threadIdx.x == 0) y[vector(row, 0)] = uint4{};  // never: keeps the vote in the program
    if (next >= rows) break;
    course::wait_copies<0>();
    bits = 0;
    for (int i = 0; i < kHeld; ++i) bits ^= fold(staged[i * kPipelinedThreads + threadIdx.x]);
    const bool vote_next = __syncthreads_or(bits == kNever);
    cluster.barrier_arrive();
    const int after = next + clusters;
#pragma unroll
    for (int i = 0; i < kHeld; ++i) held[i] = after < rows ? x[vector(after, i)] : uint4{};
    cluster.barrier_wait();
    for (int i = 0; i < kHeld; ++i) y[vector(next, i)] = staged[i * kPipelinedThreads + threadIdx.x];
    if (vote_next && threadIdx.x == 0) y[vector(next, 0)] = uint4{};
  }
#endif
}

// ---- Chapter 04: rows with a visible prefix ------------------------------------------------

// A row's visible prefix: n_k, or its batch's key length (padding), or query + 1 (causal
// with n_q = n_k).
struct Prefix {
  int n_q;             // queries per head (causal); 0: no causal mask
  const int* lengths;  // per batch, or nullptr
  int rows_per_batch;
  __device__ int end(int row, int n_k) const {
    if (lengths != nullptr) return lengths[row / rows_per_batch];
    return n_q > 0 ? row % n_q + 1 : n_k;
  }
};

// Vector i of a row (8 halves, 16 bytes) as loaded: whole when visible, key by key when it
// holds the end, zeros after (never read).
__device__ __forceinline__ uint4 load_prefix(const __half* row, int col, int end) {
  if (col + 8 <= end) return *reinterpret_cast<const uint4*>(row + col);
  __half h[8];
  for (int j = 0; j < 8; ++j) h[j] = col + j < end ? row[col + j] : __float2half(0.0f);
  return *reinterpret_cast<const uint4*>(h);
}

// kLanes lanes per row, N vectors a lane (chapter 04's warp-rows kernel): lane l's vector i
// starts at column 8 (l + kLanes i).
template <int kLanes, int N>
__global__ void lane_rows(const __half* __restrict__ x, __half* __restrict__ y, int rows, int n_k, Prefix prefix) {
  const int lane = threadIdx.x % kLanes;
  const int my_row = (blockIdx.x * blockDim.x + threadIdx.x) / kLanes;
  const bool mine = my_row < rows;  // else: lanes past the last row, which still take part in the vote
  const int row = mine ? my_row : rows - 1;
  const int end = mine ? prefix.end(row, n_k) : 0;  // an empty prefix: nothing read
  const __half* x_row = x + std::size_t(row) * n_k;
  __half* y_row = y + std::size_t(row) * n_k;
  uint4 v[N];
  unsigned bits = 0;
#pragma unroll
  for (int i = 0; i < N; ++i) {
    v[i] = load_prefix(x_row, 8 * (lane + kLanes * i), end);
    bits ^= fold(v[i]);
  }
  // The warp's shuffles of the row's state, after every load. Never true: the store only keeps
  // the vote, and so the wait for the loads, in the program.
  if (__any_sync(~0u, bits == kNever) && mine) y_row[0] = __float2half(1.0f);
#pragma unroll
  for (int i = 0; i < N; ++i)
    if (mine && 8 * (lane + kLanes * i) < n_k) *reinterpret_cast<uint4*>(y_row + 8 * (lane + kLanes * i)) = v[i];
}

// A block per 65536-key row: 1024 threads x 8 vectors in registers (chapter 04's block
// kernel), or 512 threads x (8 staged + 8 in registers), two blocks per SM (its staged
// kernel: even vectors staged and waited for first, odd ones in registers).
__global__ void __launch_bounds__(1024, 1)
    register_row(const __half* __restrict__ x, __half* __restrict__ y, int n_k, Prefix prefix) {
  const int end = prefix.end(blockIdx.x, n_k);
  const __half* x_row = x + std::size_t(blockIdx.x) * n_k;
  __half* y_row = y + std::size_t(blockIdx.x) * n_k;
  uint4 v[8];
  unsigned bits = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    v[i] = load_prefix(x_row, 8 * (threadIdx.x + 1024 * i), end);
    bits ^= fold(v[i]);
  }
  if (__syncthreads_or(bits == kNever) && threadIdx.x == 0) y_row[0] = __float2half(1.0f);  // the block's reduction
#pragma unroll
  for (int i = 0; i < 8; ++i) *reinterpret_cast<uint4*>(y_row + 8 * (threadIdx.x + 1024 * i)) = v[i];
}

__global__ void __launch_bounds__(kClusterThreads, 2)
    staged_row(const __half* __restrict__ x, __half* __restrict__ y, int n_k, Prefix prefix) {
  extern __shared__ uint4 staged[];
  const int end = prefix.end(blockIdx.x, n_k);
  const __half* x_row = x + std::size_t(blockIdx.x) * n_k;
  __half* y_row = y + std::size_t(blockIdx.x) * n_k;
  auto col = [](int i) { return 8 * int(threadIdx.x + kClusterThreads * i); };
  for (int s = 0; s < kHeld; ++s) {
    uint4& slot = staged[s * kClusterThreads + threadIdx.x];
    if (col(2 * s) + 8 <= end)
      course::copy16_async(&slot, x_row + col(2 * s), true);
    else
      slot = load_prefix(x_row, col(2 * s), end);
  }
  course::commit_copies();
  course::wait_copies<0>();
  uint4 v[kHeld];
  unsigned bits = 0;
#pragma unroll
  for (int i = 0; i < kHeld; ++i) {
    v[i] = load_prefix(x_row, col(2 * i + 1), end);
    bits ^= fold(v[i]) ^ fold(staged[i * kClusterThreads + threadIdx.x]);
  }
  if (__syncthreads_or(bits == kNever) && threadIdx.x == 0) y_row[0] = __float2half(1.0f);  // the block's reduction
#pragma unroll
  for (int i = 0; i < kHeld; ++i) *reinterpret_cast<uint4*>(y_row + col(2 * i + 1)) = v[i];
  for (int s = 0; s < kHeld; ++s)
    *reinterpret_cast<uint4*>(y_row + col(2 * s)) = staged[s * kClusterThreads + threadIdx.x];
}

// ---- Chapter 08: reading the cache ---------------------------------------------------------

// Reads n vectors, 8 independent loads a thread at a time, and folds them into a word that
// is written only if it takes the value kNever (so that the loads are not optimized away).
__global__ void read_once(const uint4* __restrict__ p, std::size_t n, unsigned* __restrict__ sink) {
  unsigned bits = 0;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x * 8;
  for (std::size_t base = blockIdx.x * std::size_t(blockDim.x) * 8 + threadIdx.x; base < n; base += stride) {
    uint4 v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = base + k * blockDim.x < n ? p[base + k * blockDim.x] : uint4{};
#pragma unroll
    for (int k = 0; k < 8; ++k) bits ^= fold(v[k]);
  }
  if (bits == kNever) sink[blockIdx.x] = bits;
}

// Chapter 08's split kernel without its products: a block of 4 warps per (sequence, kv head),
// warp w walking tiles w, w + 4, ... of 32 positions (K and V rows of 256 bytes, fp16 at
// d = 128), the next tile's keys copied while this tile's values land (cp.async, the warp's
// own shared memory, 2 key stages and 1 value buffer: 2 blocks per SM), each landed tile read
// back from shared memory by the warp; at the end the warps' 4 x 128 floats meet through
// shared memory and the block writes them.
constexpr int kDecodeWarps = 4, kTileRows = 32, kRowBytes = 256, kStride = kRowBytes + 16;
struct DecodeWarpTiles {
  unsigned char k[2][kTileRows][kStride];
  unsigned char v[kTileRows][kStride];
};
constexpr int kDecodeShared = kDecodeWarps * int(sizeof(DecodeWarpTiles));

// Copies rows [first, first + 32) of a cache into `rows` (when `any`), and closes the group
// either way, so that every warp has the same count of groups in flight.
__device__ __forceinline__ void fetch_tile(unsigned char (*rows)[kStride], const unsigned char* cache, int first,
                                           bool any, int lane) {
  if (any)
    for (int i = lane; i < kTileRows * kRowBytes / 16; i += 32) {
      const int row = i / 16, chunk = i % 16;
      course::copy16_async(&rows[row][16 * chunk], cache + std::size_t(first + row) * kRowBytes + 16 * chunk, true);
    }
  course::commit_copies();
}

// Folds the warp's share of a landed tile, read back from shared memory.
__device__ __forceinline__ unsigned fold_tile(const unsigned char (*rows)[kStride], int lane) {
  unsigned bits = 0;
  for (int i = lane; i < kTileRows * kRowBytes / 16; i += 32)
    bits ^= fold(*reinterpret_cast<const uint4*>(&rows[i / 16][16 * (i % 16)]));
  return bits;
}

__global__ void __launch_bounds__(32 * kDecodeWarps)
    decode_walk(const unsigned char* __restrict__ K, const unsigned char* __restrict__ V, int positions,
                float* __restrict__ out) {
  extern __shared__ DecodeWarpTiles tiles[];
  __shared__ float merged[kDecodeWarps][128];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const std::size_t head = blockIdx.x;
  const unsigned char* k = K + head * positions * kRowBytes;
  const unsigned char* v = V + head * positions * kRowBytes;
  DecodeWarpTiles& mine = tiles[warp];
  const int n_tiles = positions / kTileRows;
  unsigned bits = 0;
  fetch_tile(mine.k[0], k, warp * kTileRows, warp < n_tiles, lane);
  fetch_tile(mine.v, v, warp * kTileRows, warp < n_tiles, lane);
  for (int tile = warp, stage = 0; tile < n_tiles; tile += kDecodeWarps, stage ^= 1) {
    const int next = tile + kDecodeWarps;
    fetch_tile(mine.k[stage ^ 1], k, next * kTileRows, next < n_tiles, lane);
    course::wait_copies<2>();  // this tile's keys
    __syncwarp();
    bits ^= fold_tile(mine.k[stage], lane);
    course::wait_copies<1>();  // this tile's values
    __syncwarp();
    bits ^= fold_tile(mine.v, lane);
    __syncwarp();
    fetch_tile(mine.v, v, next * kTileRows, next < n_tiles, lane);
  }
  course::wait_copies<0>();
  for (int c = lane; c < 128; c += 32) merged[warp][c] = float(bits & 0xFF);
  __syncthreads();
  for (int c = threadIdx.x; c < 128; c += blockDim.x)
    out[head * 128 + c] = merged[0][c] + merged[1][c] + merged[2][c] + merged[3][c];
}

__global__ void empty_kernel() {}

// ---- Host ----------------------------------------------------------------------------------

struct Report {
  course::Table table{{"chapter", "pattern", "shape", "moves", "time", "bandwidth", "of copy"}};
  double copy_gbps = 0;
  course::TimingConfig timing;
  void time(const std::string& chapter, const std::string& pattern, const std::string& shape, double bytes,
            const std::function<void(cudaStream_t)>& work) {
    const double ms = course::time_gpu(work, timing).median_ms;
    table.add_row({chapter, pattern, shape, course::fmt(bytes / 1e6, 0) + " MB", course::fmt_us(ms),
                   course::fmt(course::gb_per_s(bytes, ms), 0) + " GB/s",
                   course::fmt_pct(course::gb_per_s(bytes, ms), copy_gbps)});
  }
};

void chapter03(Report& report) {
  for (int bytes_per_value : {4, 2}) {  // fp32: clusters of 8; 16-bit: clusters of 4
    const int cols = 262144, rows = (1 << 29) / (cols * bytes_per_value);
    const int row_vectors = cols * bytes_per_value / 16;
    const int cluster = row_vectors / (2 * kHeld * kClusterThreads);
    if (!course::cluster_fits(cluster_rows<true>, cluster, kClusterThreads, kStagedBytes) ||
        !course::cluster_fits(cluster_rows<false>, cluster, kClusterThreads, kStagedBytes)) {
      std::printf("[tools] chapter 03's patterns skipped: clusters of %d do not fit here\n", cluster);
      return;
    }
    DeviceBuffer<uint4> x(std::size_t(rows) * row_vectors), y(x.size());
    course::fill_logits(reinterpret_cast<float*>(x.data()), x.size() * 4, 3, 1.0f);
    const std::string shape =
        "[" + std::to_string(rows) + ", " + std::to_string(cols) + "] " + (bytes_per_value == 4 ? "fp32" : "16-bit");
    // The pipelined design: as many clusters as fit at once, each taking every clusters-th row.
    const int pipelined_cluster = row_vectors / (kHeld * kPipelinedThreads);
    const int resident =
        course::clusters_resident(cluster_rows_pipelined, pipelined_cluster, kPipelinedThreads, kPipelinedBytes);
    if (resident > 0) {
      const int clusters = std::min(resident, rows);
      report.time("03",
                  "persistent clusters of " + std::to_string(pipelined_cluster) +
                      " x 1024 threads, 2 rows in flight (" + std::to_string(clusters) + " clusters)",
                  shape, 2.0 * x.bytes(), [&](cudaStream_t s) {
                    course::launch_clustered(cluster_rows_pipelined, unsigned(clusters * pipelined_cluster),
                                             pipelined_cluster, kPipelinedThreads, kPipelinedBytes, s, x.data(),
                                             y.data(), rows, row_vectors, pipelined_cluster);
                  });
    }
    for (bool barrier : {true, false}) {
      auto kernel = barrier ? cluster_rows<true> : cluster_rows<false>;
      report.time("03", std::string("cluster of ") + std::to_string(cluster) + (barrier ? ", barrier" : ", no barrier"),
                  shape, 2.0 * x.bytes(), [&](cudaStream_t s) {
                    course::launch_clustered(kernel, unsigned(rows * cluster), cluster, kClusterThreads, kStagedBytes,
                                             s, x.data(), y.data(), row_vectors, cluster);
                  });
    }
  }
}

void chapter04(Report& report) {
  {  // GPT-2-like causal scores: 43 * 12 heads of [512, 512]
    const int n = 512, rows = 43 * 12 * n;
    DeviceBuffer<__half> x(std::size_t(rows) * n), y(x.size());
    course::fill_logits(x.data(), x.size(), 5, 8.0f);
    double bytes = 0;
    for (int r = 0; r < rows; ++r) bytes += 2.0 * (r % n + 1) + 2.0 * n;  // the visible prefix read, the row written
    const Prefix causal{n, nullptr, 1};
    const std::string shape = "[43*12, 512, 512] fp16 causal";
    report.time("04", "half-warp per row, 4 vectors a lane", shape, bytes, [&](cudaStream_t s) {
      lane_rows<16, 4><<<(rows * 16 + 127) / 128, 128, 0, s>>>(x.data(), y.data(), rows, n, causal);
    });
    report.time("04", "warp per row, 2 vectors a lane", shape, bytes, [&](cudaStream_t s) {
      lane_rows<32, 2><<<(rows * 32 + 127) / 128, 128, 0, s>>>(x.data(), y.data(), rows, n, causal);
    });
  }
  {  // decoding rows: 171 * 12 rows of 65536 keys, whole or padded per batch
    const int n = 65536, batch = 171, rows = batch * 12;
    DeviceBuffer<__half> x(std::size_t(rows) * n), y(x.size());
    course::fill_logits(x.data(), x.size(), 5, 8.0f);
    course::Rng rng(11);
    std::vector<int> lengths;
    double padded_bytes = 0;
    for (int b = 0; b < batch; ++b) {
      lengths.push_back(rng.uniform_int(1, n));  // as chapter 04 draws them
      padded_bytes += 12 * (2.0 * lengths.back() + 2.0 * n);
    }
    DeviceBuffer<int> d_lengths(lengths);
    COURSE_CUDA_CHECK(cudaFuncSetAttribute(staged_row, cudaFuncAttributeMaxDynamicSharedMemorySize, kStagedBytes));
    for (bool padded : {false, true}) {
      const Prefix prefix{0, padded ? d_lengths.data() : nullptr, 12};
      const double bytes = padded ? padded_bytes : 4.0 * x.size();
      const std::string shape = std::string("[171*12, 1, 65536] fp16") + (padded ? " padded" : "");
      report.time("04", "block of 1024 x 8 vectors", shape, bytes,
                  [&](cudaStream_t s) { register_row<<<rows, 1024, 0, s>>>(x.data(), y.data(), n, prefix); });
      report.time("04", "staged block, 512 x (8 + 8)", shape, bytes, [&](cudaStream_t s) {
        staged_row<<<rows, kClusterThreads, kStagedBytes, s>>>(x.data(), y.data(), n, prefix);
      });
    }
  }
}

void chapter08(Report& report, const cudaDeviceProp& prop) {
  // K and V of 8 kv heads x 128 dims: batch x positions x 4 KiB in fp16, half in FP8.
  const std::size_t most = std::size_t(1) << 30;
  DeviceBuffer<uint4> cache(most / 16);
  course::fill_logits(reinterpret_cast<float*>(cache.data()), cache.size() * 4, 7, 1.0f);
  DeviceBuffer<unsigned> sink(std::size_t(prop.multiProcessorCount) * 8);
  const struct {
    const char* shape;
    std::size_t bytes;
  } caches[] = {{"batch 1 x 32k fp16", std::size_t(1) << 27},
                {"batch 64 x 1k fp16", std::size_t(1) << 28},
                {"batch 8 x 32k FP8", std::size_t(1) << 29},
                {"batch 8 x 32k fp16", std::size_t(1) << 30}};
  for (const auto& c : caches)
    report.time("08", "read once", c.shape, double(c.bytes), [&](cudaStream_t s) {
      read_once<<<prop.multiProcessorCount * 4, 256, 0, s>>>(cache.data(), c.bytes / 16, sink.data());
    });
  // The split kernel's walk, one block per (sequence, kv head) as at batch 64 (one split).
  COURSE_CUDA_CHECK(cudaFuncSetAttribute(decode_walk, cudaFuncAttributeMaxDynamicSharedMemorySize, kDecodeShared));
  DeviceBuffer<float> out(std::size_t(64 * 8) * 128);
  const auto* bytes = reinterpret_cast<const unsigned char*>(cache.data());
  for (int positions : {1024, 4096}) {
    const int heads = 64 * 8;  // batch 64 x 8 kv heads
    const std::size_t half = std::size_t(heads) * positions * kRowBytes;
    report.time("08", "the split kernel's walk, no products",
                "batch 64 x " + std::to_string(positions / 1024) + "k fp16", 2.0 * half, [&](cudaStream_t s) {
                  decode_walk<<<heads, 32 * kDecodeWarps, kDecodeShared, s>>>(bytes, bytes + half, positions,
                                                                              out.data());
                });
  }
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Access-pattern ceilings: the memory traffic of the chapters' softmax and decode kernels\n"
                  "with no arithmetic, against the copy bandwidth measured in the same run.");
  const long long repeats = cli.integer("--repeats", 30, "timed runs per pattern; the median is reported");
  cli.finish();
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");
  return course::guarded_main([&] {
    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[tools] SKIPPED: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    if (gpu.prop.major < 8) {
      std::fprintf(stderr, "access_patterns needs sm_80 or newer (cp.async); this GPU is sm_%d%d\n", gpu.prop.major,
                   gpu.prop.minor);
      return int(course::kExitUnsupported);
    }
    Report report;
    report.timing = {3, int(repeats), true};
    report.copy_gbps = course::measure_copy_gbps();
    std::printf("GPU: %s\ndevice-to-device copy: %.0f GB/s (read + write), the ceiling\n",
                course::describe(gpu.prop).c_str(), report.copy_gbps);
    const double one =
        course::time_gpu([](cudaStream_t s) { empty_kernel<<<1, 32, 0, s>>>(); }, report.timing).median_ms;
    const double two = course::time_gpu(
                           [](cudaStream_t s) {
                             empty_kernel<<<1, 32, 0, s>>>();
                             empty_kernel<<<1, 32, 0, s>>>();
                           },
                           report.timing)
                           .median_ms;
    std::printf("an empty kernel between two events: %s; two: %s\n\n", course::fmt_us(one).c_str(),
                course::fmt_us(two).c_str());
    if (gpu.prop.major >= 9) chapter03(report);
    chapter04(report);
    chapter08(report, gpu.prop);
    report.table.print();
    std::printf(
        "\n%s; medians of %lld runs, L2 flushed before each. Moves: the bytes the chapter's kernel\n"
        "must move for the shape (its table's count).\n",
        gpu.prop.name, repeats);
    return int(course::kExitOk);
  });
}
