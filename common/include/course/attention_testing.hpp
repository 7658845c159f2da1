// The attention suites' shared check (chapters 05 to 08): random Q, K, V; O and lse
// poisoned with NaN before the launch; both compared with the float64 reference
// (course::reference::attention); rows that see no key must give O = 0 and lse = -inf
// exactly.
#pragma once

#include "course/attention.hpp"
#include "course/compare.hpp"
#include "course/random.hpp"

#include <cuda_runtime_api.h>

#include <functional>
#include <string>
#include <vector>

namespace course::testing {

// One problem, on the host.
struct AttentionCase {
  std::string name;
  AttentionShape shape;
  float scale;
  bool causal = false;
  std::vector<int> key_lengths;  // [batch], or empty: no padding mask
  std::vector<float> Q, K, V;
};

// Q and K normal with ~1% of entries 4x larger (some rows' softmax peaked, most spread,
// so every key's weight matters); V normal. Padded: key lengths drawn in [0, n_k], with
// n_k, 1 and 0 for the first three batches (a batch whose rows see nothing). scale:
// 1/sqrt(head_dim).
AttentionCase make_attention_case(Rng& rng, std::string name, AttentionShape shape, bool causal, bool padded);

// A kernel under test, with the chapters' argument order, for inputs and output stored as
// T (float, or __half / __nv_bfloat16 for chapters 07-08). All pointers are device pointers.
template <class T>
using AttentionRunnerOf = std::function<void(const T* Q, const T* K, const T* V, T* O, float* lse,
                                             const AttentionShape& shape, float scale, AttentionMask mask,
                                             cudaStream_t stream)>;
using AttentionRunner = AttentionRunnerOf<float>;

// Runs `run` on c and checks O (tolerance::attention_fp32) and lse (tolerance::lse_fp32).
// The report names the kernel, the case and the first wrong (row, col).
CompareReport check_attention(const AttentionRunner& run, const AttentionCase& c, const std::string& kernel);

// The same with Q, K, V rounded to T first: the reference sees the rounded values, so the
// tolerances measure the kernel's own roundings, not the inputs'.
template <class T>
CompareReport check_attention(const AttentionRunnerOf<T>& run, const AttentionCase& c, const std::string& kernel,
                              Tolerance o_tolerance, Tolerance lse_tolerance);

}  // namespace course::testing
