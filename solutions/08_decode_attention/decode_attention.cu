// Chapter 08 — decode attention over a KV cache (solutions).
//
//   O[b][h] = sum over j < lengths[b] of p_j V[b][h / group][j],
//   p_j = softmax_j(scale * q[b][h] . K[b][h / group][j]),   lse = ln of the softmax's sum.
//
//   split_kernel     block (split, b * kv_heads + kv): the `group` query heads of kv head kv
//                    over chunk `split` of sequence b's cache; writes the chunk's (m, l) and
//                    unnormalized output per query head to the workspace
//   combine_kernel   one block per (b, h), launched only for 2 splits or more: merges the
//                    chunks' states (chapter 03) and writes O = acc / l and lse
//   quantize_kernel  (given) one warp per row: E4M3 bytes and a scale per row
//
// Inside a split block, 4 warps take turns over the chunk's tiles of 32 positions (warp w:
// tiles w, w + 4, ...), each with its own shared memory, so the loads never wait on a
// barrier: cp.async fetches the warp's next keys while it scores this tile, and its next
// values while it scores the next tile. One buffer of values instead of two lets two
// blocks share an SM at head_dim 128 in fp16: twice the warps to hide each one's latency.
//
// Both products run on tensor cores (chapter 07's mma.sync m16n8k16): S = Q K^T with the
// group's queries as the rows of A (G of its 16 rows used; the others are zero) and the
// tile's keys as B, then O += P V with P, still in registers, as A. A decoding step does
// so little arithmetic per byte that wasting most of each mma costs nothing; what matters
// is that a 32-position tile takes 64 mma instead of ~2,000 FMAs per lane. Lane 4g + t
// owns query g's row of S, P and O (course/mma.cuh draws the fragments).
//
// An FP8 cache is widened to fp16 on its way from shared memory to the registers (E4M3
// values are exact in fp16). The row scales stay in fp32: K's multiply the scores, V's
// the probabilities (see "FP8 values" below).
#include "decode_attention.hpp"

#include "course/async_copy.cuh"
#include "course/cuda_check.hpp"
#include "course/gpu.hpp"
#include "course/dtype.cuh"
#include "course/mma.cuh"
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
constexpr int kTileKeys = 32;               // positions per warp per step
constexpr int kScoreTiles = kTileKeys / 8;  // S = Q K^T: 8 positions per mma (its n)
constexpr int kValueSteps = kTileKeys / 16;  // O += P V: 16 positions per mma (its k)
constexpr int kStages = 2;                  // a warp's key tiles: the one it scores, the next
using course::kLog2e;
constexpr float kLn2 = 0.6931471805599453f;

// ---- The cache in shared memory -----------------------------------------------------------
// Elem is the stored type: __half, __nv_bfloat16, or std::uint8_t holding an E4M3 byte. The
// tensor cores multiply in Operand<Elem>: the stored type, or fp16 for E4M3.
template <class Elem>
constexpr bool kIsFp8 = std::is_same_v<Elem, std::uint8_t>;
template <class Elem>
using Operand = std::conditional_t<kIsFp8<Elem>, __half, Elem>;

// Row strides in bytes. Every read below takes 8 rows at once (ldmatrix's 8 row addresses,
// or 8 lanes' 16-byte loads), and the stride puts those rows on different banks: an odd
// number of 16-byte chunks for ldmatrix and FP8 keys at head_dim 128, and for FP8 keys at
// head_dim 64 the bare 64 bytes (two rows fill the 128 bytes of banks). FP8 values are read
// 4 bytes at a time from 4 rows 2 apart: 16 bytes of padding move each by 8 banks.
template <class Elem, int D>
struct Strides {
  static constexpr int kRowBytes = D * int(sizeof(Elem));
  static constexpr int kKey = kRowBytes + (kIsFp8<Elem> && D == 64 ? 0 : 16);
  static constexpr int kValue = kRowBytes + 16;
};

// A warp's shared memory: kStages tiles of K rows and one of V rows, raw bytes as stored,
// and (FP8) the tile's row scales.
template <class Elem, int D>
struct WarpTiles {
  using S = Strides<Elem, D>;
  alignas(16) unsigned char k[kStages][kTileKeys][S::kKey];
  alignas(16) unsigned char v[kTileKeys][S::kValue];
  float k_scale[kTileKeys];
  float v_scale[kTileKeys];
};

// After the walk, the warps' states go through shared memory (reusing the tiles).
template <int D, int G>
struct WarpStates {
  float m[kWarps][G];
  float l[kWarps][G];
  float acc[kWarps][G][D];
};

// A split block's shared memory: the warps' tiles, later reused for their states.
template <class Elem, int D, int G>
constexpr std::size_t kSplitShared = std::max(sizeof(WarpTiles<Elem, D>) * kWarps, sizeof(WarpStates<D, G>));

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

// ---- Operands of the two products ---------------------------------------------------------
// The sum over d in S = Q K^T may take the columns in any order, as long as Q and K agree.
// From a 16-bit cache ldmatrix hands out K in mma order: k-step s, lane t holds columns
// 16s + 2t, 16s + 2t + 1 (b[0]) and 16s + 2t + 8, 16s + 2t + 9 (b[1]). From FP8, lane t reads
// its own quarter of the row instead, D/4 consecutive bytes: k-step s takes the 4 bytes at
// t D/4 + 4s (b[0] the first two, b[1] the next two). query_column is that order, for Q.
template <class Elem, int D>
__device__ __forceinline__ int query_column(int s, int t, int i) {  // i: 0, 1 in b[0]; 2, 3 in b[1]
  if constexpr (kIsFp8<Elem>)
    return t * (D / 4) + 4 * s + i;
  else
    return 16 * s + 2 * t + (i & 1) + 8 * (i >> 1);
}

// Two E4M3 bytes (the low 16 bits of `pair`) as an fp16 pair, the first byte in the low half.
__device__ __forceinline__ unsigned e4m3x2_to_half2(unsigned pair) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(pair), __NV_E4M3);
  return unsigned(h.x) | (unsigned(h.y) << 16);
}

// B of S = Q K^T for the 8 positions 8j .. 8j + 7 of the tile: b[s] for every k-step s.
template <class Elem, int D, int kStride>
__device__ __forceinline__ void key_fragments(unsigned (&b)[D / 16][2], const unsigned char (*k)[kStride], int j,
                                              int lane) {
  if constexpr (kIsFp8<Elem>) {
    const unsigned char* quarter = &k[8 * j + lane / 4][(lane % 4) * (D / 4)];
    for (int c = 0; c < D / 64; ++c) {  // 16 bytes: 4 k-steps
      const uint4 raw = *reinterpret_cast<const uint4*>(quarter + 16 * c);
      const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
      for (int w = 0; w < 4; ++w) {
        b[4 * c + w][0] = e4m3x2_to_half2(words[w]);
        b[4 * c + w][1] = e4m3x2_to_half2(words[w] >> 16);
      }
    }
  } else {
    // ldmatrix.x4: matrix i = 8 rows of 8 columns 32 kk + 8i: k-steps 2kk and 2kk + 1.
    for (int kk = 0; kk < D / 32; ++kk) {
      unsigned r[4];
      course::ldmatrix_x4(r, course::shared_address(&k[8 * j + lane % 8][sizeof(Elem) * (32 * kk + 8 * (lane / 8))]));
      b[2 * kk][0] = r[0], b[2 * kk][1] = r[1], b[2 * kk + 1][0] = r[2], b[2 * kk + 1][1] = r[3];
    }
  }
}

// In O += P V the output columns may come in any order too. P's k-step s covers positions
// 16s .. 16s + 15 (score tiles 2s and 2s + 1), so lane t needs V's rows 16s + 2t, +1, +8, +9.
// From a 16-bit cache ldmatrix.trans hands them out: n-tile n holds columns 8n .. 8n + 7. From
// FP8, lane 4g + t loads 4 bytes (4 columns) of each of its 4 rows and regroups the bytes by
// column, so n-tile 4c + i holds columns 32c + 4n' + i (n' = 0..7 the mma's n): value_column
// maps an accumulator (n-tile, e) of lane t (columns 2t + e of the tile) back to d.
template <class Elem>
__device__ __forceinline__ int value_column(int n_tile, int t, int e) {
  if constexpr (kIsFp8<Elem>)
    return 32 * (n_tile / 4) + 4 * (2 * t + e) + n_tile % 4;
  else
    return 8 * n_tile + 2 * t + e;
}

// B of O += P V for k-step s (positions 16s .. 16s + 15): b[n] for every n-tile.
template <class Elem, int D, int kStride>
__device__ __forceinline__ void value_fragments(unsigned (&b)[D / 8][2], const unsigned char (*v)[kStride], int s,
                                                int lane) {
  if constexpr (kIsFp8<Elem>) {
    const int g = lane / 4, t = lane % 4;
    const unsigned char* rows = &v[16 * s + 2 * t][0];  // rows 2t, 2t + 1, 2t + 8, 2t + 9 from here
    for (int c = 0; c < D / 32; ++c) {
      const int byte = 4 * (g + 8 * c);
      const unsigned r0 = *reinterpret_cast<const unsigned*>(rows + byte);
      const unsigned r1 = *reinterpret_cast<const unsigned*>(rows + kStride + byte);
      const unsigned r8 = *reinterpret_cast<const unsigned*>(rows + 8 * kStride + byte);
      const unsigned r9 = *reinterpret_cast<const unsigned*>(rows + 9 * kStride + byte);
      // Interleave two rows' bytes: column i of both rows becomes one 16-bit pair.
      const unsigned low[2] = {__byte_perm(r0, r1, 0x5140), __byte_perm(r8, r9, 0x5140)};   // columns 0, 1
      const unsigned high[2] = {__byte_perm(r0, r1, 0x7362), __byte_perm(r8, r9, 0x7362)};  // columns 2, 3
      for (int half = 0; half < 2; ++half) {
        b[4 * c + 0][half] = e4m3x2_to_half2(low[half]);
        b[4 * c + 1][half] = e4m3x2_to_half2(low[half] >> 16);
        b[4 * c + 2][half] = e4m3x2_to_half2(high[half]);
        b[4 * c + 3][half] = e4m3x2_to_half2(high[half] >> 16);
      }
    }
  } else {
    // ldmatrix.x4.trans: matrices (rows +0, n-tile 2nn), (rows +8, 2nn), (+0, 2nn + 1), (+8, 2nn + 1).
    const int row = 16 * s + lane % 8 + 8 * ((lane / 8) % 2);
    for (int nn = 0; nn < D / 16; ++nn) {
      unsigned r[4];
      course::ldmatrix_x4_trans(r, course::shared_address(&v[row][sizeof(Elem) * (16 * nn + 8 * (lane / 16))]));
      b[2 * nn][0] = r[0], b[2 * nn][1] = r[1], b[2 * nn + 1][0] = r[2], b[2 * nn + 1][1] = r[3];
    }
  }
}

// c += A B with only rows g (0..7) of A in use: a[1] and a[3], rows g + 8, are zero.
template <class M>
__device__ __forceinline__ void mma_rows_0_to_7(float (&c)[4], unsigned a0, unsigned a2, unsigned b0, unsigned b1) {
  const unsigned a[4] = {a0, 0u, a2, 0u};
  course::mma_16x8x16<M>(c, a, b0, b1);
}

// FP8 values: V's row scales multiply P, not V (they differ by row, and P's k is the row).
// p times a small scale would fall below fp16's normal range, so each tile's scales are
// divided by the tile's largest, `top`, and the accumulator is kept in units of `top`:
//   acc_true = top * acc, so entering a tile: acc *= rescale * top_before / top.
// A tile of all-zero rows keeps the previous `top` (its weights are 0 anyway).

// ---- Launching the combine early (sm_90: programmatic dependent launch) ------------------
// The combine kernel is launched with programmatic stream serialization: once every split
// block has called allow_combine_launch, the combine's blocks may start, and they wait in
// wait_for_split_kernel until the split kernel has finished and its writes are visible.
// Their launch then overlaps the split kernel's last blocks instead of following them.
__device__ __forceinline__ void allow_combine_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_split_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// ---- The split kernel ------------------------------------------------------------------

// Block (split, b * kv_heads + kv). K, V: the cache's [batch, kv_heads, max_len, D] elements;
// K_scale, V_scale: per-row scales (FP8) or nullptr. part_state: [batch * heads * splits]
// (m, l) in log2 units; part_acc: [batch * heads * splits, D], unnormalized (relative to m).
// With one split the block holds the whole sequence: it writes O and lse itself, and there
// is no combine to launch.
template <class Elem, class T, int D, int G>
__global__ void __launch_bounds__(kThreads)
    split_kernel(const T* __restrict__ q, const Elem* __restrict__ K, const Elem* __restrict__ V,
                 const float* __restrict__ K_scale, const float* __restrict__ V_scale, const int* __restrict__ lengths,
                 int kv_heads, int max_len, int chunk, float scale_log2, course::MaxSum* __restrict__ part_state,
                 float* __restrict__ part_acc, T* __restrict__ O, float* __restrict__ lse) {
  using Stride = Strides<Elem, D>;
  using M = Operand<Elem>;
  constexpr bool kFp8 = kIsFp8<Elem>;
  static_assert(kFp8 || std::is_same_v<T, Elem>, "a 16-bit cache holds the queries' type: q's pairs are its A operand");
  extern __shared__ float4 shared[];
  auto* tiles = reinterpret_cast<WarpTiles<Elem, D>*>(shared);
  auto& states = *reinterpret_cast<WarpStates<D, G>*>(shared);  // after the walk only

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int g = lane / 4, t = lane % 4;  // this lane's query (row of S, P, O) and quad lane
  const int split = blockIdx.x, splits = gridDim.x;
  const int kv_head = blockIdx.y;  // b * kv_heads + kv
  const int batch = kv_head / kv_heads;
  const int first_head = (kv_head % kv_heads) * G;  // the group's first query head within the batch
  const int heads = kv_heads * G;
  // This block's chunk of the sequence: positions [begin, end).
  const int length = min(max(lengths[batch], 0), max_len);
  const int begin = split * chunk;
  const int end = min(begin + chunk, length);

  const std::size_t cache_row0 = std::size_t(kv_head) * max_len;  // row of position 0
  const auto* K_bytes = reinterpret_cast<const unsigned char*>(K + cache_row0 * D);
  const auto* V_bytes = reinterpret_cast<const unsigned char*>(V + cache_row0 * D);
  WarpTiles<Elem, D>& mine = tiles[warp];

  // This warp's state for query g: m (the same in the 4 lanes of the quad), l (this lane's
  // share of the sum), acc[n][e]: O's columns value_column(n, t, e) (acc[n][2..3], rows
  // g + 8 of the mma, stay 0).
  float m = -INFINITY, l = 0.0f, acc[D / 8][4] = {};
  float top = 1.0f;  // FP8: the accumulator's unit, see "FP8 values" above

  const int tiles_in_chunk = end > begin ? (end - begin + kTileKeys - 1) / kTileKeys : 0;
  // Each fetch is one group of copies, empty past the chunk's last tile (so the count of
  // pending groups is the same for every warp and tile). FP8: fetch_keys also has lane j
  // load the scales of position j, which the warp moves to shared memory when it reaches
  // that tile. With the keys, the loads have a whole tile to land; with the values (at the
  // end of the tile before) the move waited for them: FP8 steps up to 6% slower on an H200.
  float next_k_scale = 0.0f, next_v_scale = 0.0f;
  auto fetch_keys = [&](int tile, int stage) {
    const int first = begin + tile * kTileKeys;
    if (tile < tiles_in_chunk) {
      fetch_rows<Stride::kRowBytes>(mine.k[stage], K_bytes, first, end, lane);
      if constexpr (kFp8) {
        const bool valid = first + lane < end;
        next_k_scale = valid ? K_scale[cache_row0 + first + lane] : 0.0f;
        next_v_scale = valid ? V_scale[cache_row0 + first + lane] : 0.0f;
      }
    }
    course::commit_copies();
  };
  auto fetch_values = [&](int tile) {
    if (tile < tiles_in_chunk) fetch_rows<Stride::kRowBytes>(mine.v, V_bytes, begin + tile * kTileKeys, end, lane);
    course::commit_copies();
  };

  // This lane's row of Q as the A operand: qa[s] holds a0 and a2 of k-step s, the pairs of
  // query g's columns query_column(s, t, ...), loaded straight into registers (rows g >= G
  // are zero). Each warp loads its own, so no warp waits at a block barrier for the others'
  // loads: when every SM asks for its first tiles at once, those copies take microseconds to
  // land, and a load queued behind them as long.
  const T* q_row = q + (std::size_t(batch) * heads + first_head + g) * D;
  unsigned qa[D / 16][2];
  for (int s = 0; s < D / 16; ++s)
    for (int half = 0; half < 2; ++half)
      qa[s][half] = g < G ? *reinterpret_cast<const unsigned*>(q_row + query_column<Elem, D>(s, t, 2 * half)) : 0u;

  // Copy groups complete in order. Entering tile t, the pending ones are t's keys, then
  // t's values; the loop adds the keys of the warp's next tile, then its values.
  fetch_keys(warp, 0);
  fetch_values(warp);

  // From a 16-bit cache the pairs as loaded are the operand (T is the cache's type). FP8
  // multiplies in fp16, whose range is narrower than bf16's: each query is scaled by a power
  // of two (exact) so that its largest element is below 2^14, and the scores by its inverse;
  // the quad's 4 lanes hold all D columns of its query.
  float q_unit = 1.0f;
  if constexpr (kFp8) {
    float amax = 0.0f;
    for (int s = 0; s < D / 16; ++s)
      for (int half = 0; half < 2; ++half) {
        const float2 x = course::unpack2<T>(qa[s][half]);
        amax = fmaxf(amax, fmaxf(fabsf(x.x), fabsf(x.y)));
      }
    amax = course::quad_reduce(amax, course::Max{});
    int exponent = 0;
    frexpf(amax, &exponent);  // amax < 2^exponent
    q_unit = amax > 0.0f ? ldexpf(1.0f, min(14 - exponent, 126)) : 1.0f;
    for (int s = 0; s < D / 16; ++s)
      for (int half = 0; half < 2; ++half) {
        const float2 x = course::unpack2<T>(qa[s][half]);
        qa[s][half] = course::pack2<M>(x.x * q_unit, x.y * q_unit);
      }
  }
  const float score_unit = scale_log2 / q_unit;  // scores in log2 units

  for (int tile = warp, stage = 0; tile < tiles_in_chunk; tile += kWarps, stage ^= 1) {
    if constexpr (kFp8) mine.k_scale[lane] = next_k_scale, mine.v_scale[lane] = next_v_scale;
    fetch_keys(tile + kWarps, stage ^ 1);
    course::wait_copies<2>();  // all but the 2 newest groups: this tile's keys have landed
    __syncwarp();              // ... for every lane's copies, not only this lane's

    // 1. S = Q K^T: s[j][e] is query g's score of position 8j + 2t + e of the tile.
    float s[kScoreTiles][2];
    for (int j = 0; j < kScoreTiles; ++j) {
      unsigned b[D / 16][2];
      key_fragments<Elem, D>(b, mine.k[stage], j, lane);
      float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int ks = 0; ks < D / 16; ++ks) mma_rows_0_to_7<M>(c, qa[ks][0], qa[ks][1], b[ks][0], b[ks][1]);
      s[j][0] = c[0], s[j][1] = c[1];
    }

    // 2. The online softmax of chapter 03, per query, over the quad's 32 scores.
    const int first = begin + tile * kTileKeys;
    float p[kScoreTiles][2];  // query g's weight of position 8j + 2t + e, relative to the new m
    float rescale;            // 2^(m before - m after): brings l and acc to the new max
    float tile_max = -INFINITY;
    for (int j = 0; j < kScoreTiles; ++j)
      for (int e = 0; e < 2; ++e) {
        const int at = 8 * j + 2 * t + e;
        const float k_scale = kFp8 ? mine.k_scale[at] : 1.0f;
        s[j][e] = first + at < end ? s[j][e] * score_unit * k_scale : -INFINITY;
        tile_max = fmaxf(tile_max, s[j][e]);
      }
    tile_max = course::quad_reduce(tile_max, course::Max{});
    // The tile holds a valid position (tile < tiles_in_chunk), so m_new is finite.
    const float m_new = fmaxf(m, tile_max);
    rescale = course::exp2_approx(m - m_new);  // 0 on the warp's first tile
    m = m_new;
    float p_sum = 0.0f;
    for (int j = 0; j < kScoreTiles; ++j)
      for (int e = 0; e < 2; ++e) {
        p[j][e] = course::exp2_approx(s[j][e] - m_new);  // 0 past the end
        p_sum += p[j][e];
      }
    l = l * rescale + p_sum;
    float acc_rescale = rescale;
    if constexpr (kFp8) {  // P's weights: V's scales over the tile's largest, in units of top
      float tile_top = 0.0f;
      for (int j = 0; j < kScoreTiles; ++j)
        for (int e = 0; e < 2; ++e) tile_top = fmaxf(tile_top, mine.v_scale[8 * j + 2 * t + e]);
      tile_top = course::quad_reduce(tile_top, course::Max{});
      if (tile_top > 0.0f) {
        acc_rescale *= top / tile_top;
        top = tile_top;
      }
      const float inv_top = 1.0f / top;
      for (int j = 0; j < kScoreTiles; ++j)
        for (int e = 0; e < 2; ++e) p[j][e] *= mine.v_scale[8 * j + 2 * t + e] * inv_top;
    }
    for (int n = 0; n < D / 8; ++n) acc[n][0] *= acc_rescale, acc[n][1] *= acc_rescale;

    course::wait_copies<1>();  // this tile's values have landed too
    __syncwarp();              // ... every lane's

    // 3. O += P V, P from the registers that held S: k-step ks = score tiles 2ks, 2ks + 1.
    for (int ks = 0; ks < kValueSteps; ++ks) {
      const unsigned a0 = course::pack2<M>(p[2 * ks][0], p[2 * ks][1]);
      const unsigned a2 = course::pack2<M>(p[2 * ks + 1][0], p[2 * ks + 1][1]);
      unsigned b[D / 8][2];
      value_fragments<Elem, D>(b, mine.v, ks, lane);
      for (int n = 0; n < D / 8; ++n) mma_rows_0_to_7<M>(acc[n], a0, a2, b[n][0], b[n][1]);
    }
    __syncwarp();  // done with the values and scales before they are overwritten
    fetch_values(tile + kWarps);
  }
  course::wait_copies<0>();
  allow_combine_launch();
  __syncthreads();  // every warp is done with its tiles: their memory now holds the states

  // 4. The block's state: merge the 4 warps' (m, l, acc), one (query, column) per thread.
  l = course::quad_reduce(l, course::Sum{});
  if (g < G) {
    if (t == 0) states.m[warp][g] = m, states.l[warp][g] = l;
    for (int n = 0; n < D / 8; ++n)
      for (int e = 0; e < 2; ++e) states.acc[warp][g][value_column<Elem>(n, t, e)] = acc[n][e] * top;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int query = i / D, column = i % D;
    float m_block = -INFINITY;
    for (int w = 0; w < kWarps; ++w) m_block = fmaxf(m_block, states.m[w][query]);
    float l_block = 0.0f, acc_block = 0.0f;
    if (m_block != -INFINITY)  // else no warp saw a position: the empty state (-inf, 0, 0)
      for (int w = 0; w < kWarps; ++w) {
        const float factor = course::exp2_approx(states.m[w][query] - m_block);  // 0 for an empty warp
        l_block += states.l[w][query] * factor;
        acc_block += states.acc[w][query][column] * factor;
      }
    const std::size_t pair = std::size_t(batch) * heads + first_head + query;
    if (splits == 1) {  // the final answer; length 0 (l = 0): O = 0, lse = -inf
      O[pair * D + column] = course::from_float<T>(l_block > 0.0f ? acc_block / l_block : 0.0f);
      if (column == 0) lse[pair] = l_block > 0.0f ? (m_block + log2f(l_block)) * kLn2 : -INFINITY;
    } else {
      const std::size_t part = pair * splits + split;
      part_acc[part * D + column] = acc_block;
      if (column == 0) part_state[part] = {m_block, l_block};
    }
  }
}

// ---- The combine kernel ----------------------------------------------------------------

constexpr int kCombineWarps = 4;  // warps per (b, h) pair: they share its splits

// Block r: pair r of [batch * heads]. Merges the splits' states, O = acc / l,
// lse = (m + log2 l) ln 2; a sequence of length 0: O = 0, lse = -inf. Warp w takes splits
// w, w + 4, ...; lane e reads columns [e * kPerLane, (e + 1) * kPerLane) of each in one load.
template <class T, int D>
__global__ void __launch_bounds__(32 * kCombineWarps)
    combine_kernel(const course::MaxSum* __restrict__ part_state, const float* __restrict__ part_acc, int splits,
                   T* __restrict__ O, float* __restrict__ lse) {
  constexpr int kPerLane = D / 32;
  using Columns = std::conditional_t<kPerLane == 4, float4, float2>;
  __shared__ float scratch[32];
  __shared__ float l_warp[kCombineWarps];
  __shared__ float acc_warp[kCombineWarps][D];
  wait_for_split_kernel();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const std::size_t pair = blockIdx.x;
  const course::MaxSum* state = part_state + pair * splits;
  float m = -INFINITY;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) m = fmaxf(m, state[s].m);
  m = course::block_reduce(m, course::Max{}, scratch);
  const bool empty = m == -INFINITY;  // every split is empty: the sequence has length 0
  float l = 0.0f, acc[kPerLane] = {};
  for (int s = warp; s < splits && !empty; s += kCombineWarps) {
    const float factor = course::exp2_approx(state[s].m - m);  // 0 for an empty split
    l += state[s].l * factor;
    const Columns x = *reinterpret_cast<const Columns*>(&part_acc[(pair * splits + s) * D + lane * kPerLane]);
    const float* values = reinterpret_cast<const float*>(&x);
    for (int e = 0; e < kPerLane; ++e) acc[e] += values[e] * factor;
  }
  if (lane == 0) l_warp[warp] = l;
  for (int e = 0; e < kPerLane; ++e) acc_warp[warp][lane * kPerLane + e] = acc[e];
  __syncthreads();
  for (int column = threadIdx.x; column < D; column += blockDim.x) {
    float l_sum = 0.0f, sum = 0.0f;
    for (int w = 0; w < kCombineWarps; ++w) l_sum += l_warp[w], sum += acc_warp[w][column];
    O[pair * D + column] = course::from_float<T>(l_sum > 0.0f ? sum / l_sum : 0.0f);
    if (column == 0) lse[pair] = l_sum > 0.0f ? (m + log2f(l_sum)) * kLn2 : -INFINITY;
  }
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

// Throws on anything unsupported; returns the GPU's compute capability major.
int check(const CacheShape& s, float scale, int splits, const void* workspace) {
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
  return course::require_compute_capability(kMinMajor, "decode_attention", "mma.sync, ldmatrix, cp.async");
}

// Where the kernels write: the workspace's per-split states and outputs, and O and lse.
template <class T>
struct Outputs {
  course::MaxSum* part_state;  // [batch * heads * splits]
  float* part_acc;             // [batch * heads * splits, head_dim], 16-byte aligned
  T* O;
  float* lse;
};

// The number of states in the workspace, rounded up so that part_acc starts 16 bytes in.
std::size_t state_slots(const CacheShape& s, int splits) {
  return (std::size_t(s.batch) * s.heads * splits + 1) / 2 * 2;
}

template <class Elem, class T, int D, int G>
void launch_split(const T* q, const Elem* K, const Elem* V, const float* K_scale, const float* V_scale,
                  const int* lengths, const CacheShape& s, float scale, int splits, const Outputs<T>& out,
                  cudaStream_t stream) {
  constexpr std::size_t kShared = kSplitShared<Elem, D, G>;
  const auto kernel = split_kernel<Elem, T, D, G>;
  COURSE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kShared)));
  const dim3 blocks(splits, s.batch * s.kv_heads);
  kernel<<<blocks, kThreads, kShared, stream>>>(q, K, V, K_scale, V_scale, lengths, s.kv_heads, s.max_len,
                                                chunk_of(s, splits), scale * kLog2e, out.part_state, out.part_acc,
                                                out.O, out.lse);
  COURSE_CHECK_LAUNCH();
}

// The combine kernel, allowed to start while the split kernel finishes (sm_90 and newer).
template <class T, int D>
void launch_combine(const CacheShape& s, int splits, const Outputs<T>& out, bool early, cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(s.batch * s.heads));
  config.blockDim = dim3(32 * kCombineWarps);
  config.stream = stream;
  cudaLaunchAttribute overlap[1] = {};
  overlap[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  overlap[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = overlap;
  config.numAttrs = early ? 1 : 0;
  COURSE_CUDA_CHECK(cudaLaunchKernelEx(&config, combine_kernel<T, D>, static_cast<const course::MaxSum*>(out.part_state),
                                       static_cast<const float*>(out.part_acc), splits, out.O, out.lse));
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
void launch_both(const T* q, const Elem* K, const Elem* V, const float* K_scale, const float* V_scale,
                 const int* lengths, const CacheShape& s, float scale, int splits, const Outputs<T>& out, int major,
                 cudaStream_t stream) {
  with_group(s.group(), [&](auto group) {
    launch_split<Elem, T, D, decltype(group)::value>(q, K, V, K_scale, V_scale, lengths, s, scale, splits, out, stream);
  });
  if (splits > 1) launch_combine<T, D>(s, splits, out, major >= 9, stream);
}

// Both kernels, for any storage Elem of the cache.
template <class Elem, class T>
void run(const T* q, const Elem* K, const Elem* V, const float* K_scale, const float* V_scale, const int* lengths,
         T* O, float* lse, const CacheShape& s, float scale, int splits, void* workspace, cudaStream_t stream) {
  const int major = check(s, scale, splits, workspace);
  auto* part_state = static_cast<course::MaxSum*>(workspace);
  const Outputs<T> out{part_state, reinterpret_cast<float*>(part_state + state_slots(s, splits)), O, lse};
  if (s.head_dim == 64)
    launch_both<Elem, T, 64>(q, K, V, K_scale, V_scale, lengths, s, scale, splits, out, major, stream);
  else
    launch_both<Elem, T, 128>(q, K, V, K_scale, V_scale, lengths, s, scale, splits, out, major, stream);
}

// Split blocks that fit on one SM at once, for cache element Elem, head_dim D, group G.
template <class Elem, int D, int G>
int resident_for_group() {
  constexpr std::size_t kShared = kSplitShared<Elem, D, G>;
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
  // Every block that fits counts: more warps on an SM hide more of each warp's waiting.
  const long long per_split = (long long)s.batch * s.kv_heads;              // blocks of one split
  const long long slots = (long long)sm_count * std::max(1, blocks_per_sm);  // blocks resident at once
  const int longest = std::clamp(s.max_len / 256, 1, kMaxSplits);  // no chunk shorter than 256 positions
  // Fewer blocks than slots: split until one wave fills the GPU (a second, partial wave
  // would leave SMs idle at its end).
  if (per_split < slots) return std::clamp(int(slots / per_split), 1, longest);
  // More: 1.3 waves take as long as 2. Split until the waves are at least 95% full.
  for (int splits = 1; splits <= longest; ++splits) {
    const long long blocks = per_split * splits, waves = (blocks + slots - 1) / slots;
    if (blocks * 100 >= waves * slots * 95) return splits;
  }
  return 1;
}

int resident_blocks(const CacheShape& s, bool fp8) {
  if (!supports(s)) return 0;
  if (fp8) return s.head_dim == 64 ? resident<std::uint8_t, 64>(s.group()) : resident<std::uint8_t, 128>(s.group());
  return s.head_dim == 64 ? resident<__half, 64>(s.group()) : resident<__half, 128>(s.group());
}

std::size_t workspace_bytes(const CacheShape& s, int splits) {
  const std::size_t parts = std::size_t(s.batch) * s.heads * splits;
  return state_slots(s, splits) * sizeof(course::MaxSum) + parts * s.head_dim * sizeof(float);
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
