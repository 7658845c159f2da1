// Chapter 06 — flash attention, tiled, fp32 on CUDA cores (solutions).
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

    // 1. Scores of the tile: s[r][c] = q[4ty + r] . k[tx + 16c], four d at a time.
    float s[kRows][kCols] = {};
    for (int kk = 0; kk < D; kk += 4) {
      float4 q4[kRows], k4[kCols];
      for (int r = 0; r < kRows; ++r) q4[r] = *reinterpret_cast<const float4*>(&t.q[kRows * ty + r][kk]);
      for (int c = 0; c < kCols; ++c) k4[c] = *reinterpret_cast<const float4*>(&t.k[tx + 16 * c][kk]);
      for (int r = 0; r < kRows; ++r)
        for (int c = 0; c < kCols; ++c)
          s[r][c] += q4[r].x * k4[c].x + q4[r].y * k4[c].y + q4[r].z * k4[c].z + q4[r].w * k4[c].w;
    }

    // 2. Mask, then fold the tile into (m, l) and rescale acc by the same factor as l.
    for (int r = 0; r < kRows; ++r) {
      float tile_max = -INFINITY;
      for (int c = 0; c < kCols; ++c) {
        s[r][c] = k0 + tx + 16 * c < visible[r] ? s[r][c] * scale_log2 : -INFINITY;
        tile_max = fmaxf(tile_max, s[r][c]);
      }
      const float m_new = fmaxf(m[r], half_warp_max(tile_max));
      // A row that has seen no key yet has m_new = -inf: shift by 0 instead, so every
      // 2^(x - shift) below is 2^-inf = 0, never 2^(-inf + inf) = NaN.
      const float shift = m_new == -INFINITY ? 0.0f : m_new;
      const float rescale = course::exp2_approx(m[r] - shift);  // 2^(m_old - m_new): 0 when m_old = -inf
      m[r] = m_new;
      l[r] *= rescale;
      for (int e = 0; e < 4 * kGroups; ++e) acc[r][e] *= rescale;
      for (int c = 0; c < kCols; ++c) {
        s[r][c] = course::exp2_approx(s[r][c] - shift);  // now p, unnormalized
        l[r] += s[r][c];
      }
    }
    for (int c = 0; c < kCols; ++c)
      *reinterpret_cast<float4*>(&t.p[tx + 16 * c][kRows * ty]) = make_float4(s[0][c], s[1][c], s[2][c], s[3][c]);
    // A thread reads p[j][4ty..4ty+3] for every key j: values written by the 16 threads of
    // its own half-warp (row 4ty + r is theirs), so a warp barrier suffices here.
    __syncwarp();

    // 3. acc += P V over the tile's keys: a float4 of p (4 rows) and a float4 of v per group.
    for (int j = 0; j < BN; ++j) {
      const float4 p4 = *reinterpret_cast<const float4*>(&t.p[j][kRows * ty]);
      const float p[kRows] = {p4.x, p4.y, p4.z, p4.w};
      for (int g = 0; g < kGroups; ++g) {
        const float4 v4 = *reinterpret_cast<const float4*>(&t.v[j][64 * g + 4 * tx]);
        for (int r = 0; r < kRows; ++r) {
          acc[r][4 * g + 0] += p[r] * v4.x;
          acc[r][4 * g + 1] += p[r] * v4.y;
          acc[r][4 * g + 2] += p[r] * v4.z;
          acc[r][4 * g + 3] += p[r] * v4.w;
        }
      }
    }
    __syncthreads();  // everyone is done with k, v and p before the next tile overwrites them
  }

  // 4. Normalize once: O = acc / l, lse = (m + log2 l) ln 2. l = 0 means the row saw no key.
  constexpr float kLn2 = 0.6931471805599453f;
  for (int r = 0; r < kRows; ++r) {
    const int row = q0 + kRows * ty + r;
    const float l_row = half_warp_sum(l[r]);  // every thread calls: the shuffle needs the whole warp
    if (row >= n_q) continue;
    const float inv_l = l_row > 0.0f ? 1.0f / l_row : 0.0f;
    float* out = O + (std::size_t(head) * n_q + row) * D;
    for (int g = 0; g < kGroups; ++g)
      *reinterpret_cast<float4*>(out + 64 * g + 4 * tx) =
          make_float4(acc[r][4 * g] * inv_l, acc[r][4 * g + 1] * inv_l, acc[r][4 * g + 2] * inv_l,
                      acc[r][4 * g + 3] * inv_l);
    if (tx == 0) lse[std::size_t(head) * n_q + row] = l_row > 0.0f ? (m[r] + log2f(l_row)) * kLn2 : -INFINITY;
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
