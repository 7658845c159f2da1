// Chapter 08 — decode attention over a KV cache: split-KV, grouped-query attention, and an
// FP8 cache.
//
// The contract between the chapter's kernels (exercises/08_decode_attention/decode_attention.cu,
// yours; solutions/08_decode_attention/decode_attention.cu), its suite and its executable.
//
// One decoding step: every sequence b of the batch has one new query per head, attending to
// the first lengths[b] positions of its cache.
//   q, O:  [batch, heads, head_dim]              fp16 or bf16 (math in fp32)
//   K, V:  [batch, kv_heads, max_len, head_dim]  fp16 or bf16, or FP8 E4M3 with a scale per row
//   lse:   [batch, heads]                        fp32, natural log
// Grouped-query attention: query head h reads kv head h / group, group = heads / kv_heads
// (1: multi-head attention; heads: multi-query). A sequence of length 0 gives O = 0 and
// lse = -inf. Cache positions at or past a sequence's length are never read: they may hold
// anything, NaN included. Every pointer is a device pointer, 16-byte aligned (cudaMalloc's
// are). The launch functions check their arguments (std::invalid_argument naming the one
// that failed; std::runtime_error on a GPU older than sm_80), enqueue on `stream` and return
// without waiting.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ch08 {

struct CacheShape {
  int batch;
  int heads;     // query heads
  int kv_heads;  // key/value heads: heads is a multiple of it
  int max_len;   // cache positions allocated per sequence
  int head_dim;  // d: 64 or 128
  int group() const { return heads / kv_heads; }
};

// The kernels are compiled for head_dim 64 and 128 and groups 1, 2, 4 and 8.
bool supports(const CacheShape& shape);

// Both products run on tensor cores (chapter 07's mma.sync, ldmatrix, cp.async): sm_80 or newer.
constexpr int kMinMajor = 8;

// ---- Split-KV ----------------------------------------------------------------------------
// One block per (sequence, kv head) leaves most of the GPU idle at small batch: batch 1
// with 8 kv heads is 8 blocks on a 132-SM GPU. Split-KV cuts each cache into `splits`
// chunks, scored by different blocks; each leaves its chunk's (max, sum, unnormalized
// output) in the workspace, and a second kernel merges them (chapter 03's merge).
//
// How many splits this GPU wants for this shape (given): one wave, as many blocks as fit on
// every SM at once (blocks_per_sm, from resident_blocks); when even one split is more than
// a wave, enough splits to fill the waves to 95%; no chunk shorter than 256 positions, at
// most kMaxSplits.
constexpr int kMaxSplits = 128;
int choose_splits(const CacheShape& shape, int sm_count, int blocks_per_sm = 1);
// How many split blocks fit on one SM of the current GPU at once (given): shared memory
// decides it, so a cache of 1-byte FP8 values (fp8 = true) fits more blocks than fp16.
int resident_blocks(const CacheShape& shape, bool fp8);
// Bytes of workspace decode_attention needs for `splits` chunks.
std::size_t workspace_bytes(const CacheShape& shape, int splits);

// O and lse of one decoding step (yours: the split kernel and the combine kernel).
// splits: 1 to kMaxSplits; the result does not depend on it beyond rounding.
void decode_attention(const __half* q, const __half* K, const __half* V, const int* lengths, __half* O, float* lse,
                      const CacheShape& shape, float scale, int splits, void* workspace, cudaStream_t stream);
void decode_attention(const __nv_bfloat16* q, const __nv_bfloat16* K, const __nv_bfloat16* V, const int* lengths,
                      __nv_bfloat16* O, float* lse, const CacheShape& shape, float scale, int splits, void* workspace,
                      cudaStream_t stream);

// ---- FP8 cache ---------------------------------------------------------------------------
// E4M3: 1 sign bit, 4 exponent bits (bias 7), 3 mantissa bits; largest finite value 448.
// Each cached row of head_dim values is stored as bytes x8 with one float scale s:
// x ~ s * e4m3(x8), s = max |x| / 448 over the row (a row of zeros has s = 0).
// K8, V8: [batch, kv_heads, max_len, head_dim] bytes; K_scale, V_scale: [batch, kv_heads, max_len].
struct Fp8Cache {
  const std::uint8_t* K8;
  const std::uint8_t* V8;
  const float* K_scale;
  const float* V_scale;
};

// decode_attention over an FP8 cache (yours: the dequantizing loads).
void decode_attention(const __half* q, Fp8Cache cache, const int* lengths, __half* O, float* lse,
                      const CacheShape& shape, float scale, int splits, void* workspace, cudaStream_t stream);
void decode_attention(const __nv_bfloat16* q, Fp8Cache cache, const int* lengths, __nv_bfloat16* O, float* lse,
                      const CacheShape& shape, float scale, int splits, void* workspace, cudaStream_t stream);

// Quantize `rows` rows of head_dim values to E4M3 with a scale per row (given): what a
// server does when it appends a token's K and V to the cache. x: [rows, head_dim].
void quantize_fp8(const __half* x, std::uint8_t* x8, float* scale, std::size_t rows, int head_dim,
                  cudaStream_t stream);
void quantize_fp8(const __nv_bfloat16* x, std::uint8_t* x8, float* scale, std::size_t rows, int head_dim,
                  cudaStream_t stream);

// The value of an E4M3 byte, decoded bit by bit on the host (for the tests' reference):
// (-1)^sign * 2^(exponent - 7) * (1 + mantissa / 8), or 2^-6 * mantissa / 8 when the
// exponent field is 0; 0x7f and 0xff are NaN.
float e4m3_to_float(std::uint8_t byte);

}  // namespace ch08
