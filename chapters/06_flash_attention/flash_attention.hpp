// Chapter 06 — flash attention, tiled, in fp32 on CUDA cores.
//
// The contract between the chapter's kernel (exercises/06_flash_attention/flash_attention.cu,
// yours; solutions/06_flash_attention/flash_attention.cu), its suite and its executable.
// Same inputs and outputs as chapter 05 (course/attention.hpp), without S and P:
//   Q, O: [batch, heads, n_q, d];  K, V: [batch, heads, n_k, d];  lse: [batch, heads, n_q].
// A block keeps kQueryTile queries on chip and walks over the keys one tile at a time,
// folding each tile into a running (max, sum, output) with chapter 03's rescaling, so the
// N x N matrices never exist: memory O(N), not O(N^2).
//
// fp32 throughout. Every pointer is a device pointer, 16-byte aligned (cudaMalloc's are).
// The launch checks its arguments (std::invalid_argument naming the one that failed),
// enqueues on `stream` and returns without waiting.
#pragma once

#include "course/attention.hpp"

#include <cuda_runtime_api.h>

namespace ch06 {

using course::AttentionMask;
using course::AttentionShape;

constexpr int kQueryTile = 64;  // queries per block, kept on chip for the whole walk

// The head dimensions the kernel is compiled for.
bool supports_head_dim(int head_dim);  // 64 and 128

// The key tiles the kernel is compiled for (keys per step of the walk), and the one
// flash_attention picks for a head dimension when asked for 0.
bool supports_key_tile(int key_tile);  // 32 and 64
int default_key_tile(int head_dim);

// O and lse for every query: rows that see no key get O = 0 and lse = -inf. Any n_q, n_k
// of at least 1 (tiles past the end are partial); head_dim 64 or 128; key_tile 32, 64, or
// 0 for default_key_tile(head_dim). The result does not depend on key_tile beyond rounding.
// Key tiles that causality hides from every query of a block are skipped, not read.
void flash_attention(const float* Q, const float* K, const float* V, float* O, float* lse,
                     const AttentionShape& shape, float scale, AttentionMask mask, cudaStream_t stream,
                     int key_tile = 0);

}  // namespace ch06
