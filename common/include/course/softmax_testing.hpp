// The softmax checks that chapters 02, 03 and 04 share: the named edge cases of chapter
// 02, which every later softmax must pass too, and one check that runs a kernel on a
// case and compares it with the float64 reference.
#pragma once

#include "course/compare.hpp"
#include "course/random.hpp"
#include "course/softmax_bench.hpp"

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

namespace course::testing {

struct SoftmaxCase {
  std::string name;
  int rows;
  int cols;
  std::vector<float> x;  // [rows, cols]
};

// Huge logits (1e4), very negative rows (-1e4), constant rows, a single column, one
// dominant element, -inf entries, logits just past where a naive fp16 exp overflows, and
// rows of one finite value among -inf (whole threads and blocks that see only -inf).
std::vector<SoftmaxCase> softmax_edge_cases(Rng& rng);

// Random logits (with outliers) for lengths that break kernels: 1, around the warp, the
// block sizes (256, 1024) and beyond them, odd lengths, and rows of 256k and more.
std::vector<SoftmaxCase> softmax_length_cases(Rng& rng);

using course::SoftmaxFn;

// Rounds the case's x to T, runs `fn` with y poisoned, and checks y against the float64
// softmax of the rounded x (T's probability tolerance) and that every row sums to 1.
template <class T>
CompareReport check_softmax(SoftmaxFn<T> fn, const SoftmaxCase& c, const std::string& kernel);

}  // namespace course::testing
