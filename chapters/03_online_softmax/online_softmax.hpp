// Chapter 03 — online softmax: two reads, then one.
//
// The contract between the chapter's kernels (exercises/03_online_softmax/online_softmax.cu,
// yours; solutions/03_online_softmax/online_softmax.cu), its suite and its executable.
// Every pointer is a device pointer; x, y: [rows, cols], row-major. The launch functions
// check rows, cols >= 1 (std::invalid_argument), enqueue on `stream` and return.
#pragma once

#include "course/hd.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace ch03 {

// The state of softmax after seeing part of a row:
//   m = the largest value of the part,   l = sum over the part of exp(x - m).
// The empty part is (-inf, 0); a single value x is (x, 1).
struct MaxSum {
  float m;
  float l;
};

// The state of two parts together (yours):
//   m = max(m_a, m_b),   l = l_a * exp(m_a - m) + l_b * exp(m_b - m).
// Associative and commutative, with (-inf, 0) as identity: any split of a row, merged in
// any order or tree, gives the same state up to rounding. Runs on host and device.
COURSE_HD MaxSum merge(MaxSum a, MaxSum b);

// For the reduction tests: out[g] = the merge of states[g * group_size, (g + 1) * group_size),
// one block of `threads` threads (a multiple of 32, at most 1024) per group, reduced
// with the warp and block reductions the softmax kernels use.
void reduce_states(const MaxSum* states, int groups, int group_size, int threads, MaxSum* out,
                   cudaStream_t stream);

// Two reads (yours): read 1 folds every value into a running (m, l) per thread and merges
// them over the block; read 2 writes y = exp(x - m) / l. One block per row, any length.
void softmax_online(const float* x, float* y, int rows, int cols, cudaStream_t stream);
void softmax_online(const __half* x, __half* y, int rows, int cols, cudaStream_t stream);
void softmax_online(const __nv_bfloat16* x, __nv_bfloat16* y, int rows, int cols, cudaStream_t stream);

// One read (yours): the row stays in registers between the statistics and the output,
// so it is read once and written once. A short row is one warp's; a longer one a block's;
// longer still, it is split over a cluster of blocks (sm_90+), which merge their states
// through distributed shared memory. Rows longer than one_read_max_cols() fall back to
// softmax_online. x and y need not be aligned (unaligned rows are read value by value).
void softmax_one_read(const float* x, float* y, int rows, int cols, cudaStream_t stream);
void softmax_one_read(const __half* x, __half* y, int rows, int cols, cudaStream_t stream);
void softmax_one_read(const __nv_bfloat16* x, __nv_bfloat16* y, int rows, int cols, cudaStream_t stream);

// The longest row softmax_one_read keeps on chip on the current GPU, for values of
// `value_bytes` bytes (4: float, 2: half and bfloat16).
int one_read_max_cols(int value_bytes);

}  // namespace ch03
