// Chapter 07 — flash attention on tensor cores (fp16 and bf16), and the optimization ladder.
//
// The contract between the chapter's kernel (exercises/07_tensor_core_attention/tc_attention.cu,
// yours; solutions/07_tensor_core_attention/tc_attention.cu), its suite and its executable.
// Chapter 06's algorithm and masks, with 16-bit inputs and the two products on tensor cores:
//   Q, O: [batch, heads, n_q, d]  fp16 or bf16;  K, V: [batch, heads, n_k, d]  same type;
//   lse:  [batch, heads, n_q]     fp32, natural log.
// Scores, the running max and sum, and the output accumulator are fp32; the probabilities
// are rounded to the input type once, to be the A operand of P V.
//
// The kernel is built as a ladder of rungs, each one idea on top of the one before. Every
// rung gives the same result (up to rounding) and runs every shape; they differ in speed.
// Every pointer is a device pointer, 16-byte aligned (cudaMalloc's are). The launch checks
// its arguments (std::invalid_argument naming the one that failed) and the GPU (sm_80 or
// newer, std::runtime_error otherwise), enqueues on `stream` and returns without waiting.
#pragma once

#include "course/attention.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace ch07 {

using course::AttentionMask;
using course::AttentionShape;

enum class Rung {
  mma = 1,        // mma.sync + online softmax in registers; 4 warps x 16 queries; each tile's copies waited for in the tile
  swizzle = 2,    // shared tiles XOR-swizzled: ldmatrix without bank conflicts
  pipelined = 3,  // cp.async double buffering: the next K and V tiles load while this one is used
  two_tiles = 4,  // each warp owns 32 queries: every K and V fragment feeds two mma (128-query blocks)
  tuned = 5,      // rows padded, not swizzled (fewer registers); the mask only on tiles that need it;
                  // no rescale while the maxima hold; causal blocks heaviest first
  wgmma = 6,      // Hopper only: warpgroup mma (wgmma) reads K and V from shared memory itself;
                  // 2 warpgroups x 64 queries, rung 5's walk and softmax
};
constexpr Rung kRungs[] = {Rung::mma, Rung::swizzle, Rung::pipelined, Rung::two_tiles, Rung::tuned, Rung::wgmma};

const char* rung_name(Rung rung);  // "1 mma", "2 swizzle", ...
int query_tile(Rung rung);         // queries per block: 64, or 128 from rung 4 on

// Rungs 1-5 run on every GPU the chapter supports. Rung 6 uses an arch-specific feature of
// compute capability 9.0 (sm_90a): it runs on an H100 or H200, from a build that names 90 in
// CMAKE_CUDA_ARCHITECTURES; elsewhere flash_attention refuses it (std::runtime_error).
bool rung_available(Rung rung);

// The head dimensions the kernel is compiled for: 64 and 128.
bool supports_head_dim(int head_dim);

// Tensor cores of this kind (mma.sync with bf16, ldmatrix, cp.async) need sm_80 or newer.
constexpr int kMinMajor = 8;

// O and lse for every query, as chapter 06: rows that see no key get O = 0 and lse = -inf.
// Any n_q, n_k of at least 1; head_dim 64 or 128; causal bottom-right, per-batch key lengths.
void flash_attention(const __half* Q, const __half* K, const __half* V, __half* O, float* lse,
                     const AttentionShape& shape, float scale, AttentionMask mask, Rung rung, cudaStream_t stream);
void flash_attention(const __nv_bfloat16* Q, const __nv_bfloat16* K, const __nv_bfloat16* V, __nv_bfloat16* O,
                     float* lse, const AttentionShape& shape, float scale, AttentionMask mask, Rung rung,
                     cudaStream_t stream);

}  // namespace ch07
