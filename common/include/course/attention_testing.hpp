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

// A kernel under test, with the chapters' argument order. All pointers are device pointers.
using AttentionRunner = std::function<void(const float* Q, const float* K, const float* V, float* O, float* lse,
                                           const AttentionShape& shape, float scale, AttentionMask mask,
                                           cudaStream_t stream)>;

// Runs `run` on c and checks O (tolerance::attention_fp32) and lse (tolerance::lse_fp32).
// The report names the kernel, the case and the first wrong (row, col).
CompareReport check_attention(const AttentionRunner& run, const AttentionCase& c, const std::string& kernel);

}  // namespace course::testing
