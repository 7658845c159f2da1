// Chapter 07 — flash attention on tensor cores (solutions).
//
//   O = softmax(scale * Q K^T, masked) V and lse: chapter 06's walk, with both products
//   S = Q K^T and O += P V done by mma.sync on 16-bit inputs with fp32 accumulators (rung 6,
//   on Hopper: by wgmma, the warpgroup's instruction).
//
// Work split (every rung): a block of 4 warps (8 in rung 6) owns a block of queries of one
// head; each warp owns 16 of them (32 in rungs 4 and 5), as one or two 16-row mma tiles, for
// the whole walk.
// The warps share the K and V tiles in shared memory but never each other's rows, so a row's
// max, sum and output stay in one warp's registers: no reduction across warps (the
// FlashAttention-2 order). In a 16-row tile, lane 4g + t holds rows g and g + 8 (the mma
// accumulator layout, course/mma.cuh):
//   scores  s[r][nb][2h + e]   query 16r + g + 8h of the warp, key 8nb + 2t + e of the tile
//   output  o[r][db][2h + e]   the same query, column 8db + 2t + e of d
// so a row's scores are spread over the 4 lanes of a quad: its max and sum are 2 shuffles away.
//
// The ladder (Rung, tc_attention.hpp) switches on one idea at a time; Steps<R> says which.
#include "tc_attention.hpp"

#include "course/async_copy.cuh"
#include "course/cuda_check.hpp"
#include "course/gpu.hpp"
#include "course/mma.cuh"
#include "course/online_softmax.cuh"
#include "course/reduce.cuh"
#include "course/wgmma.cuh"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ch07 {

namespace {

constexpr int kWarps = 4;  // per block, rungs 1-5; rung 6 has two warpgroups of 4
constexpr int kKeyTile = 64;  // keys per step of the walk
constexpr unsigned kFullWarp = 0xffffffffu;
constexpr float kLn2 = 0.693147180559945309f;

// How a tile's rows sit in shared memory (see chunk_slot).
enum class Layout { plain, swizzled, padded, wgmma };

// 16-query mma tiles per warp: one, or two in rungs 4 and 5.
__host__ __device__ constexpr int row_tiles(Rung rung) {
  return rung == Rung::two_tiles || rung == Rung::tuned ? 2 : 1;
}
// Warps per block: 4, or two warpgroups of 4 in rung 6.
__host__ __device__ constexpr int block_warps(Rung rung) { return rung == Rung::wgmma ? 8 : kWarps; }

// What rung R switches on.
template <Rung R>
struct Steps {
  static constexpr bool kWgmma = R == Rung::wgmma;
  static constexpr Layout kLayout = kWgmma               ? Layout::wgmma
                                    : R >= Rung::tuned   ? Layout::padded
                                    : R >= Rung::swizzle ? Layout::swizzled
                                                         : Layout::plain;
  static constexpr bool kPipelined = R >= Rung::pipelined;
  static constexpr int kRowTiles = row_tiles(R);
  static constexpr bool kTuned = R >= Rung::tuned;
  static constexpr int kWarps = block_warps(R);
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kQueries = kWarps * 16 * kRowTiles;  // per block
  static constexpr int kStages = kPipelined ? 2 : 1;       // K and V tile buffers
  // Rung 6's warps hold no B fragments (the tensor cores read K and V from shared memory), so
  // 128 registers a thread are enough for two blocks of 8 warps per SM.
  static constexpr int kMinBlocks = kWgmma ? 2 : 1;
};

// ---- Shared tiles ------------------------------------------------------------------------
// A tile of rows x D 16-bit values, stored as 16-byte chunks of 8 values (uint4). ldmatrix has
// 8 lanes read the same chunk of 8 consecutive rows:
//   plain     rows of D / 8 chunks, 128 or 256 bytes apart: the 8 reads fall in the same 4
//             banks, an 8-way conflict (rung 1);
//   swizzled  chunk c of row r stored at c ^ (r % 8): the 8 rows' chunks land in 8 different
//             16-byte columns, all 32 banks (rungs 2-4);
//   padded    rows of D / 8 + 1 chunks: each row starts 4 banks after the one before, also
//             all 32 banks (rung 5). It costs 1/16 (d = 128) or 1/8 (d = 64) more shared memory
//             but every fragment's address is then a per-lane base plus a constant, where the
//             swizzle's XOR makes one address per column of d that the compiler keeps in
//             registers (217 against 174 at d = 128 in rung 2): registers rung 5 needs.
//   wgmma     the layout the tensor cores read themselves (rung 6, course/wgmma.cuh): per 8
//             rows, D / 64 atoms of 8 rows x 128 bytes, one after the other, each with the
//             128-byte swizzle (chunk c of row r at c ^ (r % 8) within its atom). At d = 64
//             this is the swizzled layout.
template <int D, Layout L>
inline constexpr int kRowChunks = D / 8 + (L == Layout::padded ? 1 : 0);

template <int D, Layout L>
__device__ __forceinline__ int chunk_slot(int row, int chunk) {
  if (L == Layout::swizzled) return row * kRowChunks<D, L> + (chunk ^ (row & 7));
  if (L == Layout::wgmma) return (row / 8) * 8 * (D / 8) + (chunk / 8) * 64 + (row % 8) * 8 + ((chunk % 8) ^ (row % 8));
  return row * kRowChunks<D, L> + chunk;
}

// Starts copying rows [first, first + ROWS) of a [n_rows, D] matrix into `tile` (consecutive
// threads take consecutive chunks of a row: coalesced). Rows past n_rows are zero-filled and
// not read: a zero value times a zero probability adds nothing, where garbage could be NaN.
template <int ROWS, int D, Layout L, int THREADS, class T>
__device__ __forceinline__ void load_tile(uint4* tile, const T* __restrict__ src, int first, int n_rows) {
  constexpr int kChunks = D / 8;
  static_assert(ROWS * kChunks % THREADS == 0, "every thread copies the same number of chunks");
#pragma unroll
  for (int step = 0; step < ROWS * kChunks / THREADS; ++step) {
    const int i = threadIdx.x + step * THREADS, row = i / kChunks, chunk = i % kChunks;
    const bool inside = first + row < n_rows;
    const T* from = src + std::size_t(inside ? first + row : 0) * D + chunk * 8;
    course::copy16_async(tile + chunk_slot<D, L>(row, chunk), from, inside);
  }
}

// ---- One tile of the walk, one warp ------------------------------------------------------
// s = 0, where every score tile starts: mma adds to its accumulator.
template <int RT>
__device__ __forceinline__ void zero_scores(float (&s)[RT][kKeyTile / 8][4]) {
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int nb = 0; nb < kKeyTile / 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[r][nb][e] = 0.0f;
}

// The fragments of one mma step, each from one ldmatrix_x4 (addresses through chunk_slot) or,
// for P, from registers. Rungs 1-4 load each just before its mma, rung 5 a step ahead.
// Q's A fragment for 16 queries from row0, d 16kk .. 16kk + 15: lanes 0-15 give rows 0-15 at
// d 16kk, lanes 16-31 the same rows at 16kk + 8.
template <int D, Layout L>
__device__ __forceinline__ void load_q_fragment(unsigned (&a)[4], const uint4* q_tile, int row0, int kk, int lane) {
  course::ldmatrix_x4(a, course::shared_address(q_tile + chunk_slot<D, L>(row0 + lane % 16, 2 * kk + lane / 16)));
}
// K's B fragments for keys 16np .. 16np + 15 (two 8-key blocks), d 16kk .. 16kk + 15. K is
// stored [key][d], already the "col" B layout. Matrices: keys 16np + 0..7 at d 16kk and
// 16kk + 8, then keys 16np + 8..15 at both.
template <int D, Layout L>
__device__ __forceinline__ void load_k_fragments(unsigned (&b)[4], const uint4* k_tile, int np, int kk, int lane) {
  const int key = 16 * np + lane % 8 + (lane / 16) * 8, chunk = 2 * kk + (lane / 8) % 2;
  course::ldmatrix_x4(b, course::shared_address(k_tile + chunk_slot<D, L>(key, chunk)));
}
// V's B fragments for keys 16ks .. 16ks + 15, columns 16dp .. 16dp + 15 (two 8-column blocks).
// V is stored [key][d] (row-major B), so ldmatrix.trans hands them out. Matrices: keys
// 16ks + 0..7 and + 8..15 at d 16dp, then the same keys at d 16dp + 8.
template <int D, Layout L>
__device__ __forceinline__ void load_v_fragments(unsigned (&b)[4], const uint4* v_tile, int ks, int dp, int lane) {
  const int key = 16 * ks + lane % 8 + ((lane / 8) % 2) * 8, chunk = 2 * dp + lane / 16;
  course::ldmatrix_x4_trans(b, course::shared_address(v_tile + chunk_slot<D, L>(key, chunk)));
}
// P's A fragment for keys 16ks .. 16ks + 15 of one 16-row tile: its score blocks 2ks and
// 2ks + 1, already in the accumulator layout, rounded to T in pairs (lower key in the low half).
template <class T>
__device__ __forceinline__ void p_fragment(unsigned (&a)[4], const float (&p)[kKeyTile / 8][4], int ks) {
  a[0] = course::pack2<T>(p[2 * ks][0], p[2 * ks][1]);          // row g,     keys 2t, 2t+1
  a[1] = course::pack2<T>(p[2 * ks][2], p[2 * ks][3]);          // row g + 8
  a[2] = course::pack2<T>(p[2 * ks + 1][0], p[2 * ks + 1][1]);  // row g,     keys 2t+8, 2t+9
  a[3] = course::pack2<T>(p[2 * ks + 1][2], p[2 * ks + 1][3]);  // row g + 8
}

// s = Q K^T for the warp's rows and the tile's kKeyTile keys. Per 16 columns of d (kk): the
// A fragments of Q, then for each pair of 8-key blocks the B fragments of K, feeding two mma
// per row tile.
template <class T, int D, int RT, Layout L>
__device__ __forceinline__ void score_tile(float (&s)[RT][kKeyTile / 8][4], const uint4* q_tile,
                                           const uint4* k_tile, int warp_row0, int lane) {
  zero_scores(s);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    unsigned a[RT][4];
#pragma unroll
    for (int r = 0; r < RT; ++r) load_q_fragment<D, L>(a[r], q_tile, warp_row0 + 16 * r, kk, lane);
#pragma unroll
    for (int np = 0; np < kKeyTile / 16; ++np) {
      unsigned b[4];
      load_k_fragments<D, L>(b, k_tile, np, kk, lane);
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        course::mma_16x8x16<T>(s[r][2 * np], a[r], b[0], b[1]);
        course::mma_16x8x16<T>(s[r][2 * np + 1], a[r], b[2], b[3]);
      }
    }
  }
}

// Keys at or past a row's visible end get -inf: exp2 makes them exactly 0.
template <int RT>
__device__ __forceinline__ void mask_scores(float (&s)[RT][kKeyTile / 8][4], const int (&visible)[RT][2], int k0,
                                            int lane) {
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int nb = 0; nb < kKeyTile / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          if (k0 + 8 * nb + 2 * (lane % 4) + e >= visible[r][h]) s[r][nb][2 * h + e] = -INFINITY;
}

// Chapter 03's online softmax on the tile, in log2 units (scale_log2 = scale * log2 e, so
// exp(scale s - m) is one FMA and an ex2): each row's new max over the quad, the rescale of
// its sum and output, and s replaced by p = 2^(scale_log2 s - m). l stays a per-lane partial
// sum (the quad adds its four at the end); m is the same in all four lanes.
// Done in phases over the lane's 2 * RT rows (every row's max, then the quad reductions, then
// the factors, then the exponentials), so that the rows' chains of dependent instructions
// interleave; each row's max is two interleaved chains for the same reason (+1-2% at 16k).
template <int D, int RT>
__device__ __forceinline__ void softmax_update(float (&s)[RT][kKeyTile / 8][4], float (&m)[RT][2], float (&l)[RT][2],
                                               float (&o)[RT][D / 8][4], float scale_log2, bool tuned) {
  float row_max[RT][2], shift[RT][2], rescale[RT][2];
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float even = fmaxf(s[r][0][2 * h], s[r][0][2 * h + 1]), odd = fmaxf(s[r][1][2 * h], s[r][1][2 * h + 1]);
#pragma unroll
      for (int nb = 2; nb < kKeyTile / 8; nb += 2) {
        even = fmaxf(even, fmaxf(s[r][nb][2 * h], s[r][nb][2 * h + 1]));
        odd = fmaxf(odd, fmaxf(s[r][nb + 1][2 * h], s[r][nb + 1][2 * h + 1]));
      }
      row_max[r][h] = fmaxf(even, odd);
    }
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) row_max[r][h] = course::quad_reduce(row_max[r][h], course::Max{});
  bool max_moved = false;  // for any of this lane's rows
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float m_new = fmaxf(m[r][h], row_max[r][h] * scale_log2);
      shift[r][h] = m_new == -INFINITY ? 0.0f : m_new;  // no key seen yet: avoid -inf - -inf
      rescale[r][h] = course::exp2_approx(m[r][h] - shift[r][h]);
      m[r][h] = m_new;
      max_moved |= rescale[r][h] != 1.0f;
    }
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < kKeyTile / 8; ++nb)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& x = s[r][nb][2 * h + e];
          x = course::exp2_approx(fmaf(x, scale_log2, -shift[r][h]));
          sum += x;
        }
      l[r][h] = l[r][h] * rescale[r][h] + sum;
    }
  // Tuned: once the maxima settle (most tiles of a long row) no row of the warp changes its
  // max; then every rescale is exactly 2^0 = 1 and the d / 4 multiplies per row are skipped.
  if (tuned && !__any_sync(kFullWarp, max_moved)) return;
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int db = 0; db < D / 8; ++db) {
        o[r][db][2 * h] *= rescale[r][h];
        o[r][db][2 * h + 1] *= rescale[r][h];
      }
}

// o += P V. Per 16 keys (ks): P's A fragments, straight from the probabilities in registers,
// then for each 16 columns of d V's B fragments, feeding two mma per row tile.
template <class T, int D, int RT, Layout L>
__device__ __forceinline__ void accumulate_pv(float (&o)[RT][D / 8][4], const float (&p)[RT][kKeyTile / 8][4],
                                              const uint4* v_tile, int lane) {
#pragma unroll
  for (int ks = 0; ks < kKeyTile / 16; ++ks) {
    unsigned a[RT][4];
#pragma unroll
    for (int r = 0; r < RT; ++r) p_fragment<T>(a[r], p[r], ks);
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      unsigned b[4];
      load_v_fragments<D, L>(b, v_tile, ks, dp, lane);
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        course::mma_16x8x16<T>(o[r][2 * dp], a[r], b[0], b[1]);
        course::mma_16x8x16<T>(o[r][2 * dp + 1], a[r], b[2], b[3]);
      }
    }
  }
}

// ---- Rung 5: both products with every fragment loaded a step ahead ----------------------
// score_tile and accumulate_pv issue each ldmatrix just before the mma that use it, and an mma
// then waits for its fragments to come back from shared memory: with 255 registers in use the
// compiler finds little to put in between (ncu: the walk's warps wait on such results ~1.2
// cycles per instruction issued, FlashAttention-2's ~0.3). These versions keep two register
// buffers and load step i + 1's fragments before step i's mma, so the load is in flight while
// the mma run. Measured on an H200 (bf16, d = 128): +1.5-2%; either product alone, or loads
// two steps ahead, measured no gain.
template <class T, int D, int RT, Layout L>
__device__ __forceinline__ void score_tile_ahead(float (&s)[RT][kKeyTile / 8][4], const uint4* q_tile,
                                                 const uint4* k_tile, int warp_row0, int lane) {
  constexpr int KK = D / 16, NP = kKeyTile / 16;  // k-steps over d; pairs of 8-key blocks per k-step
  auto load_q = [&](unsigned (&a)[RT][4], int kk) {
#pragma unroll
    for (int r = 0; r < RT; ++r) load_q_fragment<D, L>(a[r], q_tile, warp_row0 + 16 * r, kk, lane);
  };
  zero_scores(s);
  unsigned a[2][RT][4], b[2][4];  // a[kk % 2], b[step % 2]: this step's fragments and the next
  load_q(a[0], 0);
  load_k_fragments<D, L>(b[0], k_tile, 0, 0, lane);
#pragma unroll
  for (int kk = 0; kk < KK; ++kk)
#pragma unroll
    for (int np = 0; np < NP; ++np) {
      const int step = kk * NP + np, next = step + 1;
      if (np == 0 && kk + 1 < KK) load_q(a[(kk + 1) % 2], kk + 1);
      if (next < KK * NP) load_k_fragments<D, L>(b[next % 2], k_tile, next % NP, next / NP, lane);
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        course::mma_16x8x16<T>(s[r][2 * np], a[kk % 2][r], b[step % 2][0], b[step % 2][1]);
        course::mma_16x8x16<T>(s[r][2 * np + 1], a[kk % 2][r], b[step % 2][2], b[step % 2][3]);
      }
    }
}

template <class T, int D, int RT, Layout L>
__device__ __forceinline__ void accumulate_pv_ahead(float (&o)[RT][D / 8][4], const float (&p)[RT][kKeyTile / 8][4],
                                                    const uint4* v_tile, int lane) {
  constexpr int KS = kKeyTile / 16, DP = D / 16;  // 16-key steps; pairs of 8-column blocks of d
  unsigned b[2][4];  // b[step % 2]: this step's fragments and the next
  load_v_fragments<D, L>(b[0], v_tile, 0, 0, lane);
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) {
    unsigned a[RT][4];
#pragma unroll
    for (int r = 0; r < RT; ++r) p_fragment<T>(a[r], p[r], ks);
#pragma unroll
    for (int dp = 0; dp < DP; ++dp) {
      const int step = ks * DP + dp, next = step + 1;
      if (next < KS * DP) load_v_fragments<D, L>(b[next % 2], v_tile, next / DP, next % DP, lane);
#pragma unroll
      for (int r = 0; r < RT; ++r) {
        course::mma_16x8x16<T>(o[r][2 * dp], a[r], b[step % 2][0], b[step % 2][1]);
        course::mma_16x8x16<T>(o[r][2 * dp + 1], a[r], b[step % 2][2], b[step % 2][3]);
      }
    }
  }
}

// ---- Rung 6: both products on Hopper's warpgroup mma (sm_90a) -----------------------------
// The 4 warps of a warpgroup (queries group_row0 .. group_row0 + 63 of the block) multiply
// together, and the accumulators land in each warp's registers in mma.sync's layout: the
// masks, the softmax and the store are rung 5's. The tensor cores read Q, K and V from the
// shared tiles themselves, through descriptors (course/wgmma.cuh): no ldmatrix, no
// registers for B fragments. In the wgmma layout the atom of rows r0 .. r0 + 7 (r0 a
// multiple of 8) and columns 64b .. 64b + 63 starts at chunk_slot(r0, 8b); 8 rows on are
// 16 D bytes on, the next 64 columns 1024 bytes on.
template <class T, int D>
__device__ __forceinline__ void score_tile_wgmma(float (&s)[1][kKeyTile / 8][4], const uint4* q_tile,
                                                 const uint4* k_tile, int group_row0) {
  constexpr unsigned kRowGroup = 16 * D;
  course::wgmma_fence();  // s and the registers the softmax wrote are settled
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {  // 16 columns of d: 32 bytes into the atoms' rows
    const int chunk = 8 * (kk / 4), offset = 32 * (kk % 4);
    const unsigned q = course::shared_address(q_tile + chunk_slot<D, Layout::wgmma>(group_row0, chunk)) + offset;
    const unsigned k = course::shared_address(k_tile + chunk_slot<D, Layout::wgmma>(0, chunk)) + offset;
    course::wgmma_64x64_ss<T>(reinterpret_cast<float(&)[kKeyTile / 2]>(s), course::wgmma_descriptor(q, 16, kRowGroup),
                              course::wgmma_descriptor(k, 16, kRowGroup), kk > 0);
  }
  course::wgmma_commit();
  course::wgmma_wait<0>();
}

// O += P V: P's A fragments from registers, as in every rung; V read N-major (its columns
// are the output's), 16 keys per product.
template <class T, int D>
__device__ __forceinline__ void accumulate_pv_wgmma(float (&o)[1][D / 8][4], const float (&p)[1][kKeyTile / 8][4],
                                                    const uint4* v_tile) {
  constexpr unsigned kRowGroup = 16 * D, kColumnBlock = 1024;
  unsigned a[kKeyTile / 16][4];
#pragma unroll
  for (int ks = 0; ks < kKeyTile / 16; ++ks) p_fragment<T>(a[ks], p[0], ks);
  course::wgmma_fence();
#pragma unroll
  for (int ks = 0; ks < kKeyTile / 16; ++ks) {
    const unsigned v = course::shared_address(v_tile + chunk_slot<D, Layout::wgmma>(16 * ks, 0));
    course::wgmma_rs<T, D>(reinterpret_cast<float(&)[D / 2]>(o), a[ks],
                           course::wgmma_descriptor(v, kColumnBlock, kRowGroup));
  }
  course::wgmma_commit();
  course::wgmma_wait<0>();
}

// ---- The kernel --------------------------------------------------------------------------
// Grid: x = (batch, head), y = the head's block of queries. Shared memory: the block's
// queries, then kStages tiles of K, then kStages tiles of V.
template <class T, int D, Rung R>
__global__ void __launch_bounds__(Steps<R>::kThreads, Steps<R>::kMinBlocks) attention_kernel(const T* __restrict__ Q, const T* __restrict__ K,
                                                             const T* __restrict__ V, T* __restrict__ O,
                                                             float* __restrict__ lse, AttentionShape shape,
                                                             float scale_log2, AttentionMask mask) {
  using St = Steps<R>;
  constexpr int RT = St::kRowTiles, kChunks = kRowChunks<D, St::kLayout>;  // per row of a tile
  extern __shared__ uint4 shared[];
  // Rung 6's atoms must start on 1024 bytes (the swizzle works on address bits): the launch
  // gives 1 KiB of room to move them there.
  uint4* q_tile = shared + (St::kWgmma ? (1024 - course::shared_address(shared) % 1024) % 1024 / 16 : 0);
  uint4* k_tiles = q_tile + St::kQueries * kChunks;
  uint4* v_tiles = k_tiles + St::kStages * kKeyTile * kChunks;

  const int n_q = shape.n_q, n_k = shape.n_k, head = blockIdx.x, batch = head / shape.heads;
  // Causal blocks near the end of the sequence walk the most keys; launched first (tuned),
  // they do not trail behind the others at the end of the grid.
  const int q_block = St::kTuned && mask.causal ? gridDim.y - 1 - blockIdx.y : blockIdx.y;
  const int q0 = q_block * St::kQueries;
  const int key_length = mask.key_lengths ? mask.key_lengths[batch] : n_k;
  const T* q_head = Q + std::size_t(head) * n_q * D;
  const T* k_head = K + std::size_t(head) * n_k * D;
  const T* v_head = V + std::size_t(head) * n_k * D;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4;
  const int warp_row0 = warp * 16 * RT;  // the warp's first query in the block

  // The block's walk: keys [0, walk_end) are visible to its last query, which sees the most;
  // keys [0, all_see) are visible to its first query, so to all of them.
  const int last_query = min(q0 + St::kQueries, n_q) - 1;
  const int walk_end = course::visible_keys(last_query, n_q, n_k, mask.causal, key_length);
  const int all_see = course::visible_keys(q0, n_q, n_k, mask.causal, key_length);
  const int tiles = (walk_end + kKeyTile - 1) / kKeyTile;

  int visible[RT][2];  // this lane's rows: row tile r, row g (h = 0) or g + 8 (h = 1)
  float m[RT][2], l[RT][2], o[RT][D / 8][4];
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      visible[r][h] = course::visible_keys(q0 + warp_row0 + 16 * r + g + 8 * h, n_q, n_k, mask.causal, key_length);
      m[r][h] = -INFINITY;
      l[r][h] = 0.0f;
#pragma unroll
      for (int db = 0; db < D / 8; ++db)
#pragma unroll
        for (int e = 0; e < 2; ++e) o[r][db][2 * h + e] = 0.0f;
    }

  // Rung 5's order per head_dim. At d = 128 the softmax runs before the barrier that waits for
  // the values, and the warp votes to skip the output's rescale (+2-3%). At d = 64 the barrier
  // comes first and there is no vote: from the scores' max through the exponentials into P V
  // the code is then one stretch without a barrier or a branch, which the compiler interleaves
  // (the exponentials run under the mma): +4-6% at every N on an H200. d = 128 measured 7-10%
  // slower in that order, and spilled 104 bytes against 44: at 255 registers there is no room.
  constexpr bool kValuesFirst = St::kTuned && D == 64, kVote = St::kTuned && !kValuesFirst;

  // Copy groups, oldest first: q; then per tile its keys and its values. A wait_copies<1>
  // lets the newest group still be in flight.
  load_tile<St::kQueries, D, St::kLayout, St::kThreads>(q_tile, q_head, q0, n_q);
  course::commit_copies();
  if (St::kPipelined) {  // the first tile's keys and values, ahead of the walk
    load_tile<kKeyTile, D, St::kLayout, St::kThreads>(k_tiles, k_head, 0, n_k);
    course::commit_copies();
    load_tile<kKeyTile, D, St::kLayout, St::kThreads>(v_tiles, v_head, 0, n_k);
    course::commit_copies();
  }

  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * kKeyTile, stage = St::kPipelined ? tile % 2 : 0, next = (tile + 1) % St::kStages;
    const uint4* k_tile = k_tiles + stage * kKeyTile * kChunks;
    const uint4* v_tile = v_tiles + stage * kKeyTile * kChunks;
    if (!St::kPipelined) {  // this tile's keys and values, waited for below
      load_tile<kKeyTile, D, St::kLayout, St::kThreads>(k_tiles, k_head, k0, n_k);
      course::commit_copies();
      load_tile<kKeyTile, D, St::kLayout, St::kThreads>(v_tiles, v_head, k0, n_k);
      course::commit_copies();
    }
    course::wait_copies<1>();  // q and this tile's keys are here (its values may not be)
    if (St::kWgmma) course::fence_async_shared();  // ... and visible to the tensor cores
    __syncthreads();
    if (St::kPipelined) {  // the next keys, into the stage every warp finished scoring last tile
      if (tile + 1 < tiles)
        load_tile<kKeyTile, D, St::kLayout, St::kThreads>(k_tiles + next * kKeyTile * kChunks, k_head, k0 + kKeyTile, n_k);
      course::commit_copies();  // an empty group at the end keeps the count the waits expect
    }

    auto wait_for_values = [&] {
      if (St::kPipelined)
        course::wait_copies<1>();  // this tile's values are here (the next keys may not be)
      else
        course::wait_copies<0>();
      if (St::kWgmma) course::fence_async_shared();
      __syncthreads();
      if (St::kPipelined) {  // the next values, into the stage every warp finished reading last tile
        if (tile + 1 < tiles)
          load_tile<kKeyTile, D, St::kLayout, St::kThreads>(v_tiles + next * kKeyTile * kChunks, v_head, k0 + kKeyTile, n_k);
        course::commit_copies();
      }
    };

    float s[RT][kKeyTile / 8][4];
    if constexpr (St::kWgmma)
      score_tile_wgmma<T, D>(s, q_tile, k_tile, 64 * (warp / 4));
    else if constexpr (St::kTuned)
      score_tile_ahead<T, D, RT, St::kLayout>(s, q_tile, k_tile, warp_row0, lane);
    else
      score_tile<T, D, RT, St::kLayout>(s, q_tile, k_tile, warp_row0, lane);
    if (kValuesFirst) wait_for_values();
    if (!St::kTuned || k0 + kKeyTile > all_see) mask_scores(s, visible, k0, lane);
    softmax_update<D, RT>(s, m, l, o, scale_log2, kVote);
    if (!kValuesFirst) wait_for_values();
    if constexpr (St::kWgmma)
      accumulate_pv_wgmma<T, D>(o, s, v_tile);
    else if constexpr (St::kTuned)
      accumulate_pv_ahead<T, D, RT, St::kLayout>(o, s, v_tile, lane);
    else
      accumulate_pv<T, D, RT, St::kLayout>(o, s, v_tile, lane);
    if (!St::kPipelined) __syncthreads();  // every warp is done with k and v before they are overwritten
  }
  course::wait_copies<0>();  // no copy outlives the block (a walk of 0 tiles still copied q)

  // O = o / l and lse = (m + log2 l) ln 2 per row; l is the sum of the quad's partial sums.
  // A row that saw no key has l = 0: O = 0, lse = -inf. Up to rung 4 each lane stores its
  // pairs of O straight to global memory, 4 bytes at a time. Rung 5 puts the warp's rows in
  // its own rows of the q tile first and then stores whole 16-byte chunks, a row per 8 or
  // 16 lanes (+8% at N = 1k, d = 128, where a block's end is a larger part of its time).
  if (St::kTuned) __syncthreads();  // every copy into q has landed and no warp reads q any more
  T* o_head = O + std::size_t(head) * n_q * D;
#pragma unroll
  for (int r = 0; r < RT; ++r)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float row_l = course::quad_reduce(l[r][h], course::Sum{});
      const int row = warp_row0 + 16 * r + g + 8 * h, query = q0 + row;
      const float inv = row_l > 0.0f ? 1.0f / row_l : 0.0f;
#pragma unroll
      for (int db = 0; db < D / 8; ++db) {
        const unsigned pair = course::pack2<T>(o[r][db][2 * h] * inv, o[r][db][2 * h + 1] * inv);
        if (St::kTuned)
          reinterpret_cast<unsigned*>(q_tile + chunk_slot<D, St::kLayout>(row, db))[lane % 4] = pair;
        else if (query < n_q)
          *reinterpret_cast<unsigned*>(o_head + std::size_t(query) * D + 8 * db + 2 * (lane % 4)) = pair;
      }
      if (query < n_q && lane % 4 == 0)
        lse[std::size_t(head) * n_q + query] = row_l > 0.0f ? (m[r][h] + log2f(row_l)) * kLn2 : -INFINITY;
    }
  if (St::kTuned) {
    __syncwarp();  // the warp's rows are in place
    for (int i = lane; i < 16 * RT * (D / 8); i += 32) {
      const int row = warp_row0 + i / (D / 8), chunk = i % (D / 8);
      if (q0 + row < n_q)
        *reinterpret_cast<uint4*>(o_head + std::size_t(q0 + row) * D + 8 * chunk) =
            q_tile[chunk_slot<D, St::kLayout>(row, chunk)];
    }
  }
}

template <class T, int D, Rung R>
void launch(const T* Q, const T* K, const T* V, T* O, float* lse, const AttentionShape& shape, float scale,
            AttentionMask mask, cudaStream_t stream) {
  using St = Steps<R>;
  const int shared_bytes =
      (St::kQueries + 2 * St::kStages * kKeyTile) * kRowChunks<D, St::kLayout> * 16 + (St::kWgmma ? 1024 : 0);
  const auto kernel = attention_kernel<T, D, R>;
  COURSE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, shared_bytes));
  const dim3 grid(unsigned(shape.heads_total()), unsigned((shape.n_q + St::kQueries - 1) / St::kQueries));
  kernel<<<grid, St::kThreads, shared_bytes, stream>>>(Q, K, V, O, lse, shape, scale * course::kLog2e, mask);
  COURSE_CUDA_CHECK(cudaGetLastError());
}

template <class T, int D>
void dispatch_rung(const T* Q, const T* K, const T* V, T* O, float* lse, const AttentionShape& s, float scale,
                   AttentionMask mask, Rung rung, cudaStream_t stream) {
  switch (rung) {
    case Rung::mma: return launch<T, D, Rung::mma>(Q, K, V, O, lse, s, scale, mask, stream);
    case Rung::swizzle: return launch<T, D, Rung::swizzle>(Q, K, V, O, lse, s, scale, mask, stream);
    case Rung::pipelined: return launch<T, D, Rung::pipelined>(Q, K, V, O, lse, s, scale, mask, stream);
    case Rung::two_tiles: return launch<T, D, Rung::two_tiles>(Q, K, V, O, lse, s, scale, mask, stream);
    case Rung::tuned: return launch<T, D, Rung::tuned>(Q, K, V, O, lse, s, scale, mask, stream);
    case Rung::wgmma: return launch<T, D, Rung::wgmma>(Q, K, V, O, lse, s, scale, mask, stream);
  }
}

template <class T>
void run(const T* Q, const T* K, const T* V, T* O, float* lse, const AttentionShape& s, float scale,
         AttentionMask mask, Rung rung, cudaStream_t stream) {
  course::check_attention_args(s, scale, "ch07::flash_attention");
  if (!supports_head_dim(s.head_dim))
    throw std::invalid_argument("ch07::flash_attention: head_dim " + std::to_string(s.head_dim) +
                                " is not supported (64 or 128)");
  if (int(rung) < 1 || int(rung) > 6)
    throw std::invalid_argument("ch07::flash_attention: no rung " + std::to_string(int(rung)) + " (1 to 6)");
  if ((s.n_q + query_tile(rung) - 1) / query_tile(rung) > 65535)
    throw std::invalid_argument("ch07::flash_attention: n_q " + std::to_string(s.n_q) +
                                " needs more query blocks than a grid's y dimension holds (65535)");
  course::require_compute_capability(kMinMajor, "ch07::flash_attention", "mma.sync on bf16, ldmatrix, cp.async");
  if (!rung_available(rung))
    throw std::runtime_error(
        "ch07::flash_attention: rung 6 (wgmma) runs on compute capability 9.0 only (H100, H200), from a build "
        "for it (CMAKE_CUDA_ARCHITECTURES naming 90); this GPU or this build has none");
  if (s.head_dim == 64)
    dispatch_rung<T, 64>(Q, K, V, O, lse, s, scale, mask, rung, stream);
  else
    dispatch_rung<T, 128>(Q, K, V, O, lse, s, scale, mask, rung, stream);
}

}  // namespace

const char* rung_name(Rung rung) {
  switch (rung) {
    case Rung::mma: return "1 mma";
    case Rung::swizzle: return "2 swizzle";
    case Rung::pipelined: return "3 pipelined";
    case Rung::two_tiles: return "4 two tiles";
    case Rung::tuned: return "5 tuned";
    case Rung::wgmma: return "6 wgmma";
  }
  return "?";
}

int query_tile(Rung rung) { return block_warps(rung) * 16 * row_tiles(rung); }

bool rung_available(Rung rung) {
  if (rung != Rung::wgmma) return true;
#ifdef COURSE_SM90A  // CMake builds this library for sm_90a (cmake/CourseChapter.cmake, SM90A)
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();  // no GPU: no rung 6, and no error left for the next check to find
    return false;
  }
  return major == 9 && minor == 0;
#else
  return false;
#endif
}

bool supports_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128; }

void flash_attention(const __half* Q, const __half* K, const __half* V, __half* O, float* lse,
                     const AttentionShape& shape, float scale, AttentionMask mask, Rung rung, cudaStream_t stream) {
  run(Q, K, V, O, lse, shape, scale, mask, rung, stream);
}

void flash_attention(const __nv_bfloat16* Q, const __nv_bfloat16* K, const __nv_bfloat16* V, __nv_bfloat16* O,
                     float* lse, const AttentionShape& shape, float scale, AttentionMask mask, Rung rung,
                     cudaStream_t stream) {
  run(Q, K, V, O, lse, shape, scale, mask, rung, stream);
}

}  // namespace ch07
