// The benchmark harness of the softmax chapters (02, 03, 04): runs several versions of a
// row-wise softmax over a list of row lengths, checks sampled rows of each result against
// the float64 reference, and times each against the copy bandwidth measured in the run.
#pragma once

#include "course/table.hpp"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <vector>

namespace course {

// y = softmax over each row of x: [rows, cols], row-major, device pointers.
template <class T>
using SoftmaxFn = void (*)(const T* x, T* y, int rows, int cols, cudaStream_t stream);

template <class T>
struct SoftmaxVersion {
  std::string name;
  SoftmaxFn<T> fn;
};

struct SoftmaxBench {
  std::vector<long long> cols;  // row lengths; rows = elements / cols
  std::size_t elements;         // rows * cols of each problem
  int repeats;
  double copy_gbps;             // the ceiling, measured in the same run
};

// Adds one table row per (cols, version): cols, rows, dtype, version, time, GB/s (one
// read and one write of the matrix), % of copy, check. False if any check failed.
template <class T>
bool bench_softmax(Table& table, const std::vector<SoftmaxVersion<T>>& versions,
                   const SoftmaxBench& bench);

}  // namespace course
