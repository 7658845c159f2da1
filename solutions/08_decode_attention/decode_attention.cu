// Chapter 08 — decode attention over a KV cache (solutions).
//
//   O[b][h] = sum over j < lengths[b] of p_j V[b][h / group][j],
//   p_j = softmax_j(scale * q[b][h] . K[b][h / group][j]),   lse = ln of the softmax's sum.
//
//   split_kernel     block (split, b * kv_heads + kv): the `group` query heads of kv head kv
//                    over chunk `split` of sequence b's cache; writes the chunk's (m, l) and
//                    unnormalized output per query head to the workspace
//   combine_kernel   one warp per (b, h): merges the chunks' states (chapter 03) and writes
//                    O = acc / l and lse
//   quantize_kernel  (given) one warp per row: E4M3 bytes and a scale per row
//
// Inside a split block, 4 warps take turns over the chunk's tiles of 32 positions (warp w:
// tiles w, w + 4, ...), each with its own shared memory, so the loads never wait on a
// barrier: cp.async fetches the warp's next keys while it scores this tile, and its next
// values while it scores the next tile. One buffer of values instead of two lets two
// blocks share an SM at head_dim 128 in fp16: twice the warps to hide each one's latency.
// Per tile, lane j scores position j for every query head of the group (the K row read
// from shared memory, the queries broadcast), then the lanes split head_dim to add p V.
// Scores are in log2 units (q pre-multiplied by scale * log2 e): every exp is one ex2.
#include "decode_attention.hpp"

#include "course/async_copy.cuh"
#include "course/cuda_check.hpp"
#include "course/dtype.cuh"
#include "course/online_softmax.cuh"
#include "course/reduce.cuh"

#include <cuda_fp8.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace ch08 {

namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTileKeys = 32;  // positions per warp per step: lane j scores position j
constexpr int kStages = 2;     // a warp's key tiles: the one it scores, the next
constexpr int kPad = 16;       // bytes after each K row in shared memory, see WarpTiles
using course::kLog2e;
constexpr float kLn2 = 0.6931471805599453f;

// ---- Reading cache elements as float ---------------------------------------------------
// Elem is the stored type: __half, __nv_bfloat16, or std::uint8_t holding an E4M3 byte.
// kPerChunk: how many elements one 16-byte chunk holds.
template <class Elem>
constexpr int kPerChunk = 16 / int(sizeof(Elem));

// The 16 E4M3 bytes of a chunk as floats: the hardware converts pairs of bytes to pairs of
// halves (one cvt on sm_89+), which widen exactly to float.
__device__ __forceinline__ void unpack_chunk(const uint4& raw, float (&out)[16]) {
  const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
  for (int w = 0; w < 4; ++w)
    for (int half = 0; half < 2; ++half) {
      const auto pair = static_cast<__nv_fp8x2_storage_t>(words[w] >> (16 * half));
      const float2 f = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
      out[4 * w + 2 * half] = f.x;
      out[4 * w + 2 * half + 1] = f.y;
    }
}
template <class T>
__device__ __forceinline__ void unpack_chunk(const uint4& raw, float (&out)[8]) {
  course::unpack<T>(raw, out);
}

// A pair of stored elements (one 16-bit word of E4M3 bytes, or 32 bits of two 16-bit
// values) as two floats: the P V loop reads kDimsPerLane elements per lane, in pairs.
template <class Elem>
__device__ __forceinline__ float2 unpack_pair(const unsigned char* p);
template <>
__device__ __forceinline__ float2 unpack_pair<std::uint8_t>(const unsigned char* p) {
  const auto pair = *reinterpret_cast<const __nv_fp8x2_storage_t*>(p);
  return __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3)));
}
template <>
__device__ __forceinline__ float2 unpack_pair<__half>(const unsigned char* p) {
  return __half22float2(*reinterpret_cast<const __half2*>(p));
}
template <>
__device__ __forceinline__ float2 unpack_pair<__nv_bfloat16>(const unsigned char* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// ---- The split kernel ------------------------------------------------------------------

// A warp's shared memory: kStages tiles of K rows and one of V rows, raw bytes as stored.
// K rows are padded by 16 bytes: lane j reads row j, and a row stride that is an odd
// multiple of 16 bytes puts the 8 lanes of a quarter-warp on 8 different 16-byte bank
// groups. V rows are read across the lanes (lane e takes columns of every row): contiguous,
// no padding needed.
template <int kRowBytes>
struct WarpTiles {
  alignas(16) unsigned char k[kStages][kTileKeys][kRowBytes + kPad];
  alignas(16) unsigned char v[kTileKeys][kRowBytes];
};

// The block's shared memory besides the warps' tiles.
template <int D, int G>
struct BlockShared {
  float q[G][D];                  // the group's queries, times scale * log2 e
  float p[kWarps][kTileKeys][G];  // each warp's current p (times the V row's scale for FP8)
};

// After the walk, the warps' states go through shared memory (reusing the tiles).
template <int D, int G>
struct WarpStates {
  float m[kWarps][G];
  float l[kWarps][G];
  float acc[kWarps][G][D];
};

template <class Elem, int D, int G>
struct SplitConfig {
  static constexpr int kRowBytes = D * int(sizeof(Elem));
  static constexpr int kChunks = kRowBytes / 16;  // 16-byte chunks per row
  static constexpr int kDimsPerLane = D / 32;     // output columns per lane
  static constexpr std::size_t kTilesBytes = sizeof(WarpTiles<kRowBytes>) * kWarps;
  // The tiles, later reused for the warps' states, then the block's queries and p.
  static constexpr std::size_t kBlockOffset =
      kTilesBytes > sizeof(WarpStates<D, G>) ? kTilesBytes : sizeof(WarpStates<D, G>);
  static constexpr std::size_t kShared = kBlockOffset + sizeof(BlockShared<D, G>);
};

// Starts the copies of the 32 cache rows from position `first` (K or V, as stored) into
// `rows`, 16 bytes per copy, consecutive lanes on consecutive chunks of a row (coalesced).
// Rows at or past `end` are zero-filled and never read from global memory.
template <int kRowBytes, int kStride>
__device__ void fetch_rows(unsigned char (*rows)[kStride], const unsigned char* cache, int first, int end, int lane) {
  constexpr int kChunks = kRowBytes / 16;
  for (int i = lane; i < kTileKeys * kChunks; i += 32) {
    const int row = i / kChunks, chunk = i % kChunks;
    const int position = first + row;
    const bool valid = position < end;
    const std::size_t offset = valid ? std::size_t(position) * kRowBytes + 16 * chunk : 0;
    course::copy16_async(&rows[row][16 * chunk], cache + offset, valid);
  }
}

// Block (split, b * kv_heads + kv). K, V: the cache's [batch, kv_heads, max_len, D] elements;
// K_scale, V_scale: per-row scales (FP8) or nullptr. part_state: [batch * heads * splits]
// (m, l) in log2 units; part_acc: [batch * heads * splits, D], unnormalized (relative to m).
template <class Elem, class T, int D, int G>
__global__ void __launch_bounds__(kThreads)
    split_kernel(const T* __restrict__ q, const Elem* __restrict__ K, const Elem* __restrict__ V,
                 const float* __restrict__ K_scale, const float* __restrict__ V_scale, const int* __restrict__ lengths,
                 int kv_heads, int max_len, int chunk, float scale_log2, course::MaxSum* __restrict__ part_state,
                 float* __restrict__ part_acc) {
  using Config = SplitConfig<Elem, D, G>;
  constexpr int kRowBytes = Config::kRowBytes;
  constexpr int kPerLane = Config::kDimsPerLane;
  extern __shared__ float4 shared[];
  auto* tiles = reinterpret_cast<WarpTiles<kRowBytes>*>(shared);
  auto& states = *reinterpret_cast<WarpStates<D, G>*>(shared);  // after the walk only
  auto& block = *reinterpret_cast<BlockShared<D, G>*>(reinterpret_cast<unsigned char*>(shared) + Config::kBlockOffset);

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int split = blockIdx.x, splits = gridDim.x;
  const int kv_head = blockIdx.y;  // b * kv_heads + kv
  const int batch = kv_head / kv_heads;
  const int first_head = (kv_head % kv_heads) * G;  // the group's first query head within the batch
  const int heads = kv_heads * G;
  // This block's chunk of the sequence: positions [begin, end).
  const int length = min(max(lengths[batch], 0), max_len);
  const int begin = split * chunk;
  const int end = min(begin + chunk, length);

  // The group's queries, in log2 units, shared by every warp.
  const T* q_group = q + (std::size_t(batch) * heads + first_head) * D;
  for (int i = threadIdx.x; i < G * D; i += kThreads)
    block.q[i / D][i % D] = course::to_float(q_group[i]) * scale_log2;
  __syncthreads();

  const std::size_t cache_row0 = std::size_t(kv_head) * max_len;  // row of position 0
  const auto* K_bytes = reinterpret_cast<const unsigned char*>(K + cache_row0 * D);
  const auto* V_bytes = reinterpret_cast<const unsigned char*>(V + cache_row0 * D);
  WarpTiles<kRowBytes>& mine = tiles[warp];

  float m[G], l[G], acc[G][kPerLane];  // this warp's state; l is this lane's share of the sum
  for (int g = 0; g < G; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
    for (int e = 0; e < kPerLane; ++e) acc[g][e] = 0.0f;
  }

  const int tiles_in_chunk = end > begin ? (end - begin + kTileKeys - 1) / kTileKeys : 0;
  // FP8: each lane fetches the scales of its position one tile ahead, with the keys.
  float k_scale = 1.0f, v_scale = 1.0f, next_k_scale = 1.0f, next_v_scale = 1.0f;
  auto fetch_keys = [&](int tile, int stage) {
    const int first = begin + tile * kTileKeys;
    fetch_rows<kRowBytes>(mine.k[stage], K_bytes, first, end, lane);
    if (K_scale != nullptr && first + lane < end) {
      next_k_scale = K_scale[cache_row0 + first + lane];
      next_v_scale = V_scale[cache_row0 + first + lane];
    }
  };
  auto fetch_values = [&](int tile) { fetch_rows<kRowBytes>(mine.v, V_bytes, begin + tile * kTileKeys, end, lane); };
  // Copy groups complete in order. Entering tile t, the pending ones are t's keys, then
  // t's values; the loop adds the next tile's keys. (Empty groups keep the count uniform.)
  int stage = 0;
  if (warp < tiles_in_chunk) fetch_keys(warp, stage);
  course::commit_copies();
  if (warp < tiles_in_chunk) fetch_values(warp);
  course::commit_copies();
  for (int tile = warp; tile < tiles_in_chunk; tile += kWarps, stage ^= 1) {
    k_scale = next_k_scale;
    v_scale = next_v_scale;
    if (tile + kWarps < tiles_in_chunk) fetch_keys(tile + kWarps, stage ^ 1);
    course::commit_copies();
    course::wait_copies<2>();    // all but the 2 newest groups: this tile's keys have landed
    __syncwarp();                // ... for every lane's copies, not only this lane's

    // 1. Lane j scores position first + j against every query of the group.
    const int position = begin + tile * kTileKeys + lane;
    float s[G] = {};
    for (int c = 0; c < Config::kChunks; ++c) {
      float x[kPerChunk<Elem>];
      if constexpr (std::is_same_v<Elem, std::uint8_t>)
        unpack_chunk(*reinterpret_cast<const uint4*>(&mine.k[stage][lane][16 * c]), x);
      else
        unpack_chunk<Elem>(*reinterpret_cast<const uint4*>(&mine.k[stage][lane][16 * c]), x);
      for (int g = 0; g < G; ++g)
        for (int e = 0; e < kPerChunk<Elem>; ++e) s[g] += x[e] * block.q[g][c * kPerChunk<Elem> + e];
    }

    // 2. Fold the tile into each query's (m, l), rescale acc; p goes to shared memory.
    const bool valid = position < end;
    for (int g = 0; g < G; ++g) {
      s[g] = valid ? s[g] * k_scale : -INFINITY;
      const float m_new = fmaxf(m[g], course::warp_reduce(s[g], course::Max{}));
      // The tile is not empty (tile < tiles_in_chunk), so m_new is finite: no -inf - -inf.
      const float rescale = course::exp2_approx(m[g] - m_new);
      const float p = course::exp2_approx(s[g] - m_new);
      m[g] = m_new;
      l[g] = l[g] * rescale + p;
      for (int e = 0; e < kPerLane; ++e) acc[g][e] *= rescale;
      block.p[warp][lane][g] = valid ? p * v_scale : 0.0f;  // (past the end: a stale scale)
    }
    course::wait_copies<1>();  // this tile's values have landed too
    __syncwarp();              // ... every lane's, and the warp's p are in place

    // 3. acc += p V: lane e owns columns [e * kPerLane, (e + 1) * kPerLane) of every row.
    for (int j = 0; j < kTileKeys; ++j) {
      const unsigned char* row = &mine.v[j][lane * kPerLane * sizeof(Elem)];
      float v[kPerLane];
      for (int e = 0; e < kPerLane; e += 2) {
        const float2 pair = unpack_pair<Elem>(row + e * sizeof(Elem));
        v[e] = pair.x;
        v[e + 1] = pair.y;
      }
      for (int g = 0; g < G; ++g) {
        const float p = block.p[warp][j][g];
        for (int e = 0; e < kPerLane; ++e) acc[g][e] += p * v[e];
      }
    }
    __syncwarp();  // done with the values and p before they are overwritten
    if (tile + kWarps < tiles_in_chunk) fetch_values(tile + kWarps);
    course::commit_copies();
  }
  course::wait_copies<0>();
  __syncthreads();  // every warp is done with its tiles: their memory now holds the states

  // 4. The block's state: merge the 4 warps' (m, l, acc), one (query, column) per thread.
  for (int g = 0; g < G; ++g) {
    const float l_warp = course::warp_reduce(l[g], course::Sum{});
    if (lane == 0) states.m[warp][g] = m[g], states.l[warp][g] = l_warp;
    for (int e = 0; e < kPerLane; ++e) states.acc[warp][g][lane * kPerLane + e] = acc[g][e];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int g = i / D, column = i % D;
    float m_block = -INFINITY;
    for (int w = 0; w < kWarps; ++w) m_block = fmaxf(m_block, states.m[w][g]);
    float l_block = 0.0f, acc_block = 0.0f;
    if (m_block != -INFINITY)  // else no warp saw a position: the empty state (-inf, 0, 0)
      for (int w = 0; w < kWarps; ++w) {
        const float factor = course::exp2_approx(states.m[w][g] - m_block);  // 0 for an empty warp
        l_block += states.l[w][g] * factor;
        acc_block += states.acc[w][g][column] * factor;
      }
    const std::size_t part = (std::size_t(batch) * heads + first_head + g) * splits + split;
    part_acc[part * D + column] = acc_block;
    if (column == 0) part_state[part] = {m_block, l_block};
  }
}

// ---- The combine kernel ----------------------------------------------------------------

constexpr int kCombineWarps = 4;  // (b, h) pairs per block

// Warp w of block x: pair r = x * kCombineWarps + w of [batch * heads]. Merges the splits'
// states, O = acc / l, lse = (m + log2 l) ln 2; a sequence of length 0: O = 0, lse = -inf.
template <class T, int D>
__global__ void combine_kernel(const course::MaxSum* __restrict__ part_state, const float* __restrict__ part_acc,
                               int pairs, int splits, T* __restrict__ O, float* __restrict__ lse) {
  __shared__ float factors[kCombineWarps][kMaxSplits];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int pair = blockIdx.x * kCombineWarps + warp;
  if (pair >= pairs) return;  // whole warps only: the shuffles below stay full
  const course::MaxSum* state = part_state + std::size_t(pair) * splits;
  float m = -INFINITY;
  for (int s = lane; s < splits; s += 32) m = fmaxf(m, state[s].m);
  m = course::warp_reduce(m, course::Max{});
  float l = 0.0f;
  for (int s = lane; s < splits; s += 32) {
    const float factor = m == -INFINITY ? 0.0f : course::exp2_approx(state[s].m - m);
    factors[warp][s] = factor;
    l += state[s].l * factor;
  }
  l = course::warp_reduce(l, course::Sum{});
  __syncwarp();  // the factors are in place
  const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
  const float* acc = part_acc + std::size_t(pair) * splits * D;
  for (int column = lane; column < D; column += 32) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += acc[std::size_t(s) * D + column] * factors[warp][s];
    O[std::size_t(pair) * D + column] = course::from_float<T>(sum * inv_l);
  }
  if (lane == 0) lse[pair] = l > 0.0f ? (m + log2f(l)) * kLn2 : -INFINITY;
}

// ---- Host side -------------------------------------------------------------------------

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument("decode_attention: " + message);
}

int ceil_div(long long a, long long b) { return int((a + b - 1) / b); }

// Positions per split: whole tiles of every warp, the cache covered by `splits` of them.
int chunk_of(const CacheShape& s, int splits) {
  return ceil_div(ceil_div(s.max_len, splits), kTileKeys) * kTileKeys;
}

void check(const CacheShape& s, float scale, int splits, const void* workspace) {
  require(s.batch >= 1 && s.heads >= 1 && s.kv_heads >= 1 && s.max_len >= 1,
          "batch, heads, kv_heads and max_len must each be at least 1");
  require(s.heads % s.kv_heads == 0, "heads (" + std::to_string(s.heads) + ") must be a multiple of kv_heads (" +
                                         std::to_string(s.kv_heads) + ")");
  require(supports(s), "head_dim " + std::to_string(s.head_dim) + " with group " + std::to_string(s.group()) +
                           " is not supported (head_dim 64 or 128; group 1, 2, 4 or 8)");
  require(double(s.batch) * s.kv_heads * s.max_len * s.head_dim < 2147483648.0 * 8,
          "the cache is too large for this kernel's indexing");
  require(double(s.batch) * s.kv_heads <= 65535, "batch * kv_heads must be at most 65535 (grid y)");
  require(splits >= 1 && splits <= kMaxSplits, "splits must be in [1, " + std::to_string(kMaxSplits) + "]");
  require(scale > 0.0f && std::isfinite(scale), "scale must be positive and finite");
  require(workspace != nullptr, "needs its workspace (workspace_bytes)");
}

template <class Elem, class T, int D, int G>
void launch_split(const T* q, const Elem* K, const Elem* V, const float* K_scale, const float* V_scale,
                  const int* lengths, const CacheShape& s, float scale, int splits, course::MaxSum* part_state,
                  float* part_acc, cudaStream_t stream) {
  constexpr std::size_t kShared = SplitConfig<Elem, D, G>::kShared;
  const auto kernel = split_kernel<Elem, T, D, G>;
  COURSE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kShared)));
  const dim3 blocks(splits, s.batch * s.kv_heads);
  kernel<<<blocks, kThreads, kShared, stream>>>(q, K, V, K_scale, V_scale, lengths, s.kv_heads, s.max_len,
                                                chunk_of(s, splits), scale * kLog2e, part_state, part_acc);
  COURSE_CHECK_LAUNCH();
}

// Calls f(std::integral_constant<int, G>{}) for the group G the kernels are compiled for.
template <class F>
decltype(auto) with_group(int group, F&& f) {
  switch (group) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    default: return f(std::integral_constant<int, 8>{});
  }
}

template <class Elem, class T, int D>
void dispatch_group(const T* q, const Elem* K, const Elem* V, const float* K_scale, const float* V_scale,
                    const int* lengths, const CacheShape& s, float scale, int splits, course::MaxSum* part_state,
                    float* part_acc, cudaStream_t stream) {
  with_group(s.group(), [&](auto group) {
    launch_split<Elem, T, D, decltype(group)::value>(q, K, V, K_scale, V_scale, lengths, s, scale, splits, part_state,
                                                     part_acc, stream);
  });
}

// Both kernels, for any storage Elem of the cache.
template <class Elem, class T>
void run(const T* q, const Elem* K, const Elem* V, const float* K_scale, const float* V_scale, const int* lengths,
         T* O, float* lse, const CacheShape& s, float scale, int splits, void* workspace, cudaStream_t stream) {
  check(s, scale, splits, workspace);
  auto* part_state = static_cast<course::MaxSum*>(workspace);
  auto* part_acc = reinterpret_cast<float*>(part_state + std::size_t(s.batch) * s.heads * splits);
  if (s.head_dim == 64)
    dispatch_group<Elem, T, 64>(q, K, V, K_scale, V_scale, lengths, s, scale, splits, part_state, part_acc, stream);
  else
    dispatch_group<Elem, T, 128>(q, K, V, K_scale, V_scale, lengths, s, scale, splits, part_state, part_acc, stream);
  const int pairs = s.batch * s.heads;
  const int blocks = ceil_div(pairs, kCombineWarps);
  if (s.head_dim == 64)
    combine_kernel<T, 64><<<blocks, 32 * kCombineWarps, 0, stream>>>(part_state, part_acc, pairs, splits, O, lse);
  else
    combine_kernel<T, 128><<<blocks, 32 * kCombineWarps, 0, stream>>>(part_state, part_acc, pairs, splits, O, lse);
  COURSE_CHECK_LAUNCH();
}

// Split blocks that fit on one SM at once, for cache element Elem, head_dim D, group G.
template <class Elem, int D, int G>
int resident_for_group() {
  constexpr std::size_t kShared = SplitConfig<Elem, D, G>::kShared;
  const auto kernel = split_kernel<Elem, __half, D, G>;
  COURSE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kShared)));
  int blocks = 0;
  COURSE_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, kernel, kThreads, kShared));
  return blocks;
}
template <class Elem, int D>
int resident(int group) {
  return with_group(group, [](auto g) { return resident_for_group<Elem, D, decltype(g)::value>(); });
}

// ---- Quantizing (given) ----------------------------------------------------------------

constexpr float kE4m3Max = 448.0f;

// One warp per row of D values: s = max |x| / 448, x8 = E4M3(x / s), saturating.
template <class T>
__global__ void quantize_kernel(const T* __restrict__ x, std::uint8_t* __restrict__ x8, float* __restrict__ scale,
                                std::size_t rows, int D) {
  const int lane = threadIdx.x % 32;
  const std::size_t row = std::size_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  float amax = 0.0f;
  for (int i = lane; i < D; i += 32) amax = fmaxf(amax, fabsf(course::to_float(x[row * D + i])));
  amax = course::warp_reduce(amax, course::Max{});
  const float s = amax / kE4m3Max;
  const float inv_s = s > 0.0f ? 1.0f / s : 0.0f;
  for (int i = lane; i < D; i += 32)
    x8[row * D + i] = __nv_cvt_float_to_fp8(course::to_float(x[row * D + i]) * inv_s, __NV_SATFINITE, __NV_E4M3);
  if (lane == 0) scale[row] = s;
}

template <class T>
void quantize(const T* x, std::uint8_t* x8, float* scale, std::size_t rows, int head_dim, cudaStream_t stream) {
  if (rows == 0) return;
  if (head_dim < 1) throw std::invalid_argument("quantize_fp8: head_dim must be at least 1");
  constexpr int kRowsPerBlock = 8;
  quantize_kernel<T><<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), 32 * kRowsPerBlock, 0, stream>>>(
      x, x8, scale, rows, head_dim);
  COURSE_CHECK_LAUNCH();
}

}  // namespace

bool supports(const CacheShape& s) {
  const int g = s.kv_heads > 0 && s.heads % s.kv_heads == 0 ? s.group() : 0;
  return (s.head_dim == 64 || s.head_dim == 128) && (g == 1 || g == 2 || g == 4 || g == 8);
}

int choose_splits(const CacheShape& s, int sm_count, int blocks_per_sm) {
  // One wave: a second, partial wave would leave SMs idle at its end. Every block that fits
  // counts: more warps on an SM hide more of each warp's time spent scoring its tile.
  const long long per_split = (long long)s.batch * s.kv_heads;  // blocks of one split
  const long long slots = (long long)sm_count * std::max(1, blocks_per_sm);
  const int wanted = int(std::max(1LL, slots / per_split));
  const int longest = std::max(1, s.max_len / 256);  // no chunk shorter than 256 positions
  return std::clamp(std::min(wanted, longest), 1, kMaxSplits);
}

int resident_blocks(const CacheShape& s, bool fp8) {
  if (!supports(s)) return 0;
  if (fp8) return s.head_dim == 64 ? resident<std::uint8_t, 64>(s.group()) : resident<std::uint8_t, 128>(s.group());
  return s.head_dim == 64 ? resident<__half, 64>(s.group()) : resident<__half, 128>(s.group());
}

std::size_t workspace_bytes(const CacheShape& s, int splits) {
  const std::size_t parts = std::size_t(s.batch) * s.heads * splits;
  return parts * sizeof(course::MaxSum) + parts * s.head_dim * sizeof(float);
}

void decode_attention(const __half* q, const __half* K, const __half* V, const int* lengths, __half* O, float* lse,
                      const CacheShape& shape, float scale, int splits, void* workspace, cudaStream_t stream) {
  run(q, K, V, nullptr, nullptr, lengths, O, lse, shape, scale, splits, workspace, stream);
}
void decode_attention(const __nv_bfloat16* q, const __nv_bfloat16* K, const __nv_bfloat16* V, const int* lengths,
                      __nv_bfloat16* O, float* lse, const CacheShape& shape, float scale, int splits, void* workspace,
                      cudaStream_t stream) {
  run(q, K, V, nullptr, nullptr, lengths, O, lse, shape, scale, splits, workspace, stream);
}
void decode_attention(const __half* q, Fp8Cache c, const int* lengths, __half* O, float* lse, const CacheShape& shape,
                      float scale, int splits, void* workspace, cudaStream_t stream) {
  require(c.K_scale && c.V_scale, "an FP8 cache needs its K and V scales");
  run(q, c.K8, c.V8, c.K_scale, c.V_scale, lengths, O, lse, shape, scale, splits, workspace, stream);
}
void decode_attention(const __nv_bfloat16* q, Fp8Cache c, const int* lengths, __nv_bfloat16* O, float* lse,
                      const CacheShape& shape, float scale, int splits, void* workspace, cudaStream_t stream) {
  require(c.K_scale && c.V_scale, "an FP8 cache needs its K and V scales");
  run(q, c.K8, c.V8, c.K_scale, c.V_scale, lengths, O, lse, shape, scale, splits, workspace, stream);
}

void quantize_fp8(const __half* x, std::uint8_t* x8, float* scale, std::size_t rows, int head_dim,
                  cudaStream_t stream) {
  quantize(x, x8, scale, rows, head_dim, stream);
}
void quantize_fp8(const __nv_bfloat16* x, std::uint8_t* x8, float* scale, std::size_t rows, int head_dim,
                  cudaStream_t stream) {
  quantize(x, x8, scale, rows, head_dim, stream);
}

float e4m3_to_float(std::uint8_t byte) {
  const int sign = byte >> 7, exponent = (byte >> 3) & 0xF, mantissa = byte & 0x7;
  if (exponent == 0xF && mantissa == 0x7) return std::nanf("");
  const float magnitude = exponent == 0 ? std::ldexp(mantissa / 8.0f, -6)                  // subnormal
                                        : std::ldexp(1.0f + mantissa / 8.0f, exponent - 7);  // normal
  return sign ? -magnitude : magnitude;
}

}  // namespace ch08
