// Chapter 06 — flash attention, tiled, fp32 on CUDA cores: your kernel.
//
//   O = softmax(scale * Q K^T, masked) V and lse, without materializing S or P.
//
//   flash_attention_kernel   a block owns kQueryTile = 64 queries of one head; for each tile
//                            of keys it computes the (64, key tile) scores in registers,
//                            folds them into each row's running max m and sum l (chapter
//                            03), rescales the output accumulator by the same factor as l,
//                            and adds P V; at the end O = acc / l and lse = m + ln l.
//
// Work split: 256 threads as a 16 x 16 grid, thread (ty, tx) = (thread / 16, thread % 16).
//   scores  S[4ty + r][tx + 16c]         rows 4ty..4ty+3, keys tx, tx+16, ...  (r < 4, c < key tile / 16)
//   output  acc[4ty + r][64g + 4tx + e]  the same rows, columns 4tx..4tx+3 of each 64  (g < d / 64, e < 4)
// A row's scores live in the 16 threads of one half-warp, so its max is 4 shuffles away,
// and the threads that hold a row's scores are the ones that rescale its output.
//
// Fill in the TODOs, in order; everything else is complete. Check your work with
//   cmake --build --preset exercises && ctest --preset exercises -L 06
// Hints, mild to strong: exercises/06_flash_attention/HINTS.md.
#include "flash_attention.hpp"

#include "course/cuda_check.hpp"
#include "course/online_softmax.cuh"

#include <cmath>
#include <stdexcept>
#include <string>

namespace ch06 {

namespace {

constexpr int kThreads = 256;
constexpr int kRows = 4;  // query rows per thread: kQueryTile = 16 (ty) * kRows
constexpr int kPad = 4;   // floats of padding per shared row, see Tiles
constexpr unsigned kFullWarp = 0xffffffffu;
using course::kLog2e;

// The block's shared memory, for head dimension D and key tile BN.
// Rows of q and k are padded to D + 4 floats: a row is then 4 banks after the previous
// one, so the 8 threads of a quarter-warp reading float4s of 8 different rows (k[tx + 16c])
// hit 32 different banks. p is stored transposed, [key][query], so the P V loop reads the
// 4 probabilities of a thread's 4 rows as one float4.
template <int D, int BN>
struct Tiles {
  float q[kQueryTile][D + kPad];  // (queries, d): the block's queries, loaded once
  float k[BN][D + kPad];          // (keys, d): the current key tile
  float v[BN][D];                 // (keys, d): the current value tile
  float p[BN][kQueryTile + kPad]; // (keys, queries): exp(S - m) of the current tile, transposed
};

// rows [first, first + ROWS) of a [n_rows, D] matrix into dst, as float4s (consecutive
// threads take consecutive float4s of a row: coalesced). Rows past n_rows are zero, so a
// partial last tile adds nothing (a 0 probability times a 0 value).
template <int D, int ROWS, int STRIDE>
__device__ void load_rows(float (*dst)[STRIDE], const float* __restrict__ src, int first, int n_rows) {
  constexpr int kVecsPerRow = D / 4;
  for (int e = threadIdx.x; e < ROWS * kVecsPerRow; e += kThreads) {
    const int row = e / kVecsPerRow, col = (e % kVecsPerRow) * 4;
    float4 value = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (first + row < n_rows) value = *reinterpret_cast<const float4*>(src + std::size_t(first + row) * D + col);
    *reinterpret_cast<float4*>(&dst[row][col]) = value;
  }
}

// Max and sum over the 16 threads of a half-warp (the threads holding one row).
__device__ float half_warp_max(float v) {
  for (int offset = 8; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullWarp, v, offset));
  return v;
}
__device__ float half_warp_sum(float v) {
  for (int offset = 8; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullWarp, v, offset);
  return v;
}

// Block (x, h): queries [q0, q0 + 64) of head h (batch h / heads). Scores are kept in the
// log2 domain (scale_log2 = scale * log2 e), so every exp is one ex2 instruction:
// exp(scale * s - m) = 2^(scale_log2 * s - m'), with m' the max in the same units.
template <int D, int BN>
__global__ void __launch_bounds__(kThreads)
    flash_attention_kernel(const float* __restrict__ Q, const float* __restrict__ K, const float* __restrict__ V,
                           float* __restrict__ O, float* __restrict__ lse, int n_q, int n_k, int heads,
                           float scale_log2, bool causal, const int* __restrict__ key_lengths) {
  constexpr int kCols = BN / 16;  // keys per thread per tile
  constexpr int kGroups = D / 64; // float4 groups of output columns per thread
  extern __shared__ float4 shared[];
  Tiles<D, BN>& t = *reinterpret_cast<Tiles<D, BN>*>(shared);

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int head = blockIdx.y;
  const int batch = head / heads;
  // Causal blocks near the end of the sequence see the most keys: launch them first, so
  // the short ones fill in the tail of the grid instead of a long one running alone.
  const int q0 = (gridDim.x - 1 - blockIdx.x) * kQueryTile;
  Q += (std::size_t(head) * n_q) * D;
  K += (std::size_t(head) * n_k) * D;
  V += (std::size_t(head) * n_k) * D;

  // Each row's visible keys [0, visible[r]) (chapter 04), and the end of the walk: no row
  // of the block sees past what its last row sees (visible_keys grows with the query).
  const int key_length = key_lengths ? key_lengths[batch] : n_k;
  int visible[kRows];
  for (int r = 0; r < kRows; ++r) {
    const int row = q0 + kRows * ty + r;
    visible[r] = row < n_q ? course::visible_keys(row, n_q, n_k, causal, key_length) : 0;
  }
  const int last_row = min(q0 + kQueryTile, n_q) - 1;
  const int walk_end = course::visible_keys(last_row, n_q, n_k, causal, key_length);

  load_rows<D, kQueryTile>(t.q, Q, q0, n_q);

  float m[kRows], l[kRows];  // running max (log2 units) and this thread's part of the sum
  float acc[kRows][4 * kGroups] = {};  // unnormalized output: sum of 2^(s - m) v
  for (int r = 0; r < kRows; ++r) m[r] = -INFINITY, l[r] = 0.0f;

  for (int k0 = 0; k0 < walk_end; k0 += BN) {
    load_rows<D, BN>(t.k, K, k0, n_k);
    load_rows<D, BN>(t.v, V, k0, n_k);
    __syncthreads();  // the tiles (and, the first time, q) are complete

    // 1. Scores of the tile: s[r][c] = q[4ty + r] . k[tx + 16c], for r < kRows, c < kCols.
    float s[kRows][kCols] = {};
    // TODO(06.1): loop over d four at a time (kk = 0, 4, ... < D): read the float4s
    // t.q[4ty + r][kk..kk+3] and t.k[tx + 16c][kk..kk+3] once each, then add their four
    // products into every s[r][c].

    // 2. Mask, then fold the tile into (m, l) and rescale acc by the same factor as l.
    for (int r = 0; r < kRows; ++r) {
      // TODO(06.2): for row r:
      //   - mask: a key k0 + tx + 16c at or past visible[r] gets s = -inf; the others are
      //     multiplied by scale_log2 (log2 units: exp becomes course::exp2_approx);
      //   - the row's new max: m_new = max(m[r], the tile's max over the row's 16 threads,
      //     half_warp_max);
      //   - rescale what came before by 2^(m[r] - m_new): this thread's l[r] and acc[r][*];
      //   - replace each s[r][c] by p = 2^(s[r][c] - m_new) and add it to l[r];
      //   - m[r] = m_new.
      // A row that has seen no key has m_new = -inf, and -inf - (-inf) is NaN: shift by 0
      // then instead (every p and the rescale factor come out 0, as they should).
    }
    for (int c = 0; c < kCols; ++c)
      *reinterpret_cast<float4*>(&t.p[tx + 16 * c][kRows * ty]) = make_float4(s[0][c], s[1][c], s[2][c], s[3][c]);
    // A thread reads p[j][4ty..4ty+3] for every key j: values written by the 16 threads of
    // its own half-warp (row 4ty + r is theirs), so a warp barrier suffices here.
    __syncwarp();

    // 3. acc += P V over the tile's keys: a float4 of p (4 rows) and a float4 of v per group.
    // TODO(06.3): for each key j of the tile, read the float4 t.p[j][4ty..4ty+3] (the 4 rows'
    // probabilities) and, for each group g < kGroups, the float4 t.v[j][64g + 4tx..+3];
    // add p[r] * v[e] into acc[r][4g + e].
    __syncthreads();  // everyone is done with k, v and p before the next tile overwrites them
  }

  // 4. Normalize once: O = acc / l, lse = (m + log2 l) ln 2. l = 0 means the row saw no key.
  constexpr float kLn2 = 0.6931471805599453f;
  for (int r = 0; r < kRows; ++r) {
    const int row = q0 + kRows * ty + r;
    // TODO(06.4): the row's l is the sum of l[r] over its 16 threads (half_warp_sum: every
    // thread must call it, before any leaves the loop). Then, for rows below n_q only:
    // O[row][64g + 4tx + e] = acc[r][4g + e] / l (0 when l = 0: the row saw no key), and
    // thread tx = 0 writes lse[head * n_q + row] = (m[r] + log2 l) * ln 2, or -inf when l = 0.
    (void)row;
  }
}

template <int D, int BN>
void launch(const float* Q, const float* K, const float* V, float* O, float* lse, const AttentionShape& s,
            float scale, AttentionMask mask, cudaStream_t stream) {
  const auto kernel = flash_attention_kernel<D, BN>;
  constexpr int kShared = sizeof(Tiles<D, BN>);
  COURSE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kShared));
  const dim3 blocks((s.n_q + kQueryTile - 1) / kQueryTile, unsigned(s.heads_total()));
  kernel<<<blocks, kThreads, kShared, stream>>>(Q, K, V, O, lse, s.n_q, s.n_k, s.heads, scale * kLog2e, mask.causal,
                                                mask.key_lengths);
  COURSE_CHECK_LAUNCH();
}

void require(bool condition, const std::string& message) {
  if (!condition) throw std::invalid_argument("flash_attention: " + message);
}

}  // namespace

bool supports_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128; }
bool supports_key_tile(int key_tile) { return key_tile == 32 || key_tile == 64; }
int default_key_tile(int head_dim) { return head_dim <= 64 ? 64 : 32; }

void flash_attention(const float* Q, const float* K, const float* V, float* O, float* lse,
                     const AttentionShape& shape, float scale, AttentionMask mask, cudaStream_t stream,
                     int key_tile) {
  course::check_attention_args(shape, scale, "flash_attention");
  require(supports_head_dim(shape.head_dim),
          "head_dim " + std::to_string(shape.head_dim) + " is not supported (64 or 128)");
  if (key_tile == 0) key_tile = default_key_tile(shape.head_dim);
  require(supports_key_tile(key_tile), "key_tile " + std::to_string(key_tile) + " is not supported (32 or 64)");
  require(shape.heads_total() <= 65535, "batch * heads must be at most 65535 (grid y)");
  if (shape.head_dim == 64)
    key_tile == 64 ? launch<64, 64>(Q, K, V, O, lse, shape, scale, mask, stream)
                   : launch<64, 32>(Q, K, V, O, lse, shape, scale, mask, stream);
  else
    key_tile == 64 ? launch<128, 64>(Q, K, V, O, lse, shape, scale, mask, stream)
                   : launch<128, 32>(Q, K, V, O, lse, shape, scale, mask, stream);
}

}  // namespace ch06
