// Chapter 04 — masked softmax, and fusing scale + mask + softmax into one pass.
//
// The contract between the chapter's kernels (exercises/04_masked_softmax/masked_softmax.cu,
// yours; solutions/04_masked_softmax/masked_softmax.cu), its suite and its executable.
//
//   y[r][j] = exp(scale * S[r][j] - m_r) / sum over kept j' of exp(scale * S[r][j'] - m_r)
//             for every kept key j of row r, m_r the max over the kept keys;
//   y[r][j] = 0 exactly, for every masked key j.
//   S, y: [batch * heads, n_q, n_k], row-major, fp32, fp16 or bf16 storage, fp32 math.
//   Row r is query i = r % n_q of head (r / n_q) % heads of batch b = r / (heads * n_q).
//
// A row whose every key is masked gives zeros, never NaN. Every pointer is a device
// pointer. The launch functions check their arguments (std::invalid_argument naming the
// one that failed), enqueue on `stream` and return without waiting.
#pragma once

#include "course/hd.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ch04 {

// The shape of the scores: [batch * heads, n_q, n_k]; each at least 1, and
// batch * heads * n_q below 2^31.
struct ScoreShape {
  int batch;
  int heads;
  int n_q;  // queries: rows per head
  int n_k;  // keys: the length of every row
};

// Which scores take part. Masks combine: a position is kept only if every mask given keeps it.
struct Mask {
  // Causal, aligned bottom-right: query i sees keys j <= i + (n_k - n_q). The last query
  // sees every key, so the n_q new tokens of a prompt or a decoding step line up with the
  // end of the n_k cached keys: n_q = n_k is the usual j <= i; n_q = 1 (decoding one
  // token) sees all n_k keys; n_q > n_k leaves the first n_q - n_k queries seeing nothing.
  bool causal = false;
  // Padding, or nullptr for none: [batch] ints; keys j >= key_lengths[b] are masked for every
  // query of every head of batch b. 0 is allowed (every row of that batch fully masked);
  // values are clamped to [0, n_k].
  const int* key_lengths = nullptr;
  // An explicit mask, or nullptr for none: [n_q, n_k] bytes, keep[i * n_k + j] != 0 keeps
  // (i, j). One mask shared by every batch and head (a [n_q, n_k] mask broadcast over them).
  const std::uint8_t* keep = nullptr;
};

// The end of query `query`'s visible prefix under the causal and padding masks (yours):
// keys [0, visible_end) pass both, keys from visible_end on are masked. In [0, n_k].
//   visible_end = min(n_k, key_length, query + (n_k - n_q) + 1 if causal), at least 0.
// key_length: the row's batch's key length, or n_k without a padding mask. Both masks
// only ever hide a suffix of the row, which is what lets a kernel skip reading it; the
// explicit mask can hide any key, so it cannot shorten the read.
COURSE_HD int visible_end(int query, int n_q, int n_k, bool causal, int key_length);

// ---- Unfused (given): the pipeline a framework runs op by op --------------------------
// Four kernels, each a full trip through global memory:
//   1 scale       t = scale * S, widened to float32     S: [rows, n_k]  ->  t: [rows, n_k] fp32
//   2 mask        t = -inf where any mask drops (r, j), in place (skipped without masks)
//   3 row max     m[r] = max_j t[r][j]                  t  ->  m: [rows] fp32
//   4 normalise   l = sum_j exp(t - m[r]), y = exp(t - m[r]) / l; y = 0 where m[r] = -inf
// The workspace: `scaled` holds rows * n_k floats, `row_max` rows floats. The intermediate
// is float32 (as `scores.float()` before a softmax): rounding scaled scores to fp16 would
// cost more accuracy than the output's own rounding.
void masked_softmax_unfused(const float* S, float* y, ScoreShape shape, float scale, Mask mask,
                            float* scaled, float* row_max, cudaStream_t stream);
void masked_softmax_unfused(const __half* S, __half* y, ScoreShape shape, float scale, Mask mask,
                            float* scaled, float* row_max, cudaStream_t stream);
void masked_softmax_unfused(const __nv_bfloat16* S, __nv_bfloat16* y, ScoreShape shape, float scale,
                            Mask mask, float* scaled, float* row_max, cudaStream_t stream);

// ---- Fused (yours): one launch -----------------------------------------------------------
// Each row's visible prefix [0, visible_end) is read once, y is written once (0 past the
// prefix, and where the explicit mask drops a key). Scores past the prefix are never read,
// so they may hold anything, NaN included; scores the explicit mask drops are read but
// never used. Chapter 03's one-read design: the row stays in registers (one warp per row
// up to 4 KiB of scores, else a block, or a cluster of blocks on sm_90+). Rows longer than
// fused_max_cols(), and rows longer than a warp's 4 KiB that are not whole 16-byte vectors
// (n_k not a multiple of 16 bytes of scores, or S, y, keep not 16-byte aligned), take a
// two-read online loop. scale: positive and finite (1/sqrt(d) in attention).
void masked_softmax(const float* S, float* y, ScoreShape shape, float scale, Mask mask, cudaStream_t stream);
void masked_softmax(const __half* S, __half* y, ScoreShape shape, float scale, Mask mask, cudaStream_t stream);
void masked_softmax(const __nv_bfloat16* S, __nv_bfloat16* y, ScoreShape shape, float scale, Mask mask,
                    cudaStream_t stream);

// The longest row masked_softmax keeps on chip on the current GPU, for scores of
// `value_bytes` bytes (4: float, 2: half and bfloat16).
int fused_max_cols(int value_bytes);

// ---- What each version must move through global memory (for the executable) -----------
// Each buffer counted once per kernel that touches it: a re-read that the kernel's own
// code makes (normalise reads t twice) is served by L2 and not counted again.
struct Traffic {
  std::string kernel;
  double bytes;
};
// The unfused pipeline, kernel by kernel, for scores of `value_bytes` bytes.
std::vector<Traffic> unfused_traffic(ScoreShape shape, int value_bytes, bool causal, bool has_key_lengths,
                                     bool has_keep);
// The fused kernel: every row's visible prefix read once (with its explicit-mask bytes),
// every output written once. key_lengths: a host copy of the padding mask, [batch], or empty.
double fused_traffic(ScoreShape shape, int value_bytes, bool causal, const std::vector<int>& key_lengths,
                     bool has_keep);

}  // namespace ch04
