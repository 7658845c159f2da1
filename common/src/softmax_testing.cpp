#include "course/softmax_testing.hpp"

#include "course/cuda_check.hpp"
#include "course/device_buffer.hpp"
#include "course/reference.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace course::testing {

namespace {

SoftmaxCase make(std::string name, int rows, int cols, std::vector<float> x) {
  return {std::move(name), rows, cols, std::move(x)};
}

std::vector<float> shifted(std::vector<float> v, float by) {
  for (float& x : v) x += by;
  return v;
}

}  // namespace

std::vector<SoftmaxCase> softmax_edge_cases(Rng& rng) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<SoftmaxCase> cases;
  cases.push_back(make("huge logits (1e4 + noise)", 4, 1000, shifted(rng.normal(4000), 1e4f)));
  cases.push_back(make("very negative rows (-1e4 + noise)", 4, 1000, shifted(rng.normal(4000), -1e4f)));
  cases.push_back(make("constant rows", 3, 777, std::vector<float>(3 * 777, 3.0f)));
  cases.push_back(make("constant huge rows (all 1e4)", 2, 1500, std::vector<float>(3000, 1e4f)));
  cases.push_back(make("a single column", 9, 1, rng.normal(9)));
  {
    auto x = rng.normal(5 * 2000);
    for (int r = 0; r < 5; ++r) x[r * 2000 + rng.uniform_int(0, 1999)] = 60.0f;
    cases.push_back(make("one dominant element per row", 5, 2000, x));
  }
  {
    auto x = rng.logits(6 * 3001, 2.0f);
    for (int r = 0; r < 6; ++r)
      for (int c = 0; c < 3001; ++c)
        if (c != r && rng.uniform_int(0, 9) == 0) x[r * 3001 + c] = -inf;
    cases.push_back(make("-inf entries (10% of each row)", 6, 3001, x));
  }
  cases.push_back(make("logits past fp16's exp overflow (11 to 13)", 3, 500, rng.uniform(1500, 11.0f, 13.0f)));
  // One finite value, every other -inf: whole threads, warps and blocks then see nothing
  // but -inf, and must contribute exactly 0 (exp(-inf - (-inf)) is NaN). The answer is 1
  // at the finite value. Lengths for a warp, a block and a cluster of blocks per row.
  for (int cols : {1000, 3001, 262144, 262147}) {
    const int rows = 3;
    std::vector<float> x(std::size_t(rows) * cols, -inf);
    for (int r = 0; r < rows; ++r) x[std::size_t(r) * cols + rng.uniform_int(0, cols - 1)] = rng.normal(1)[0];
    cases.push_back(make("one finite value, every other -inf", rows, cols, x));
  }
  return cases;
}

std::vector<SoftmaxCase> softmax_length_cases(Rng& rng) {
  std::vector<SoftmaxCase> cases;
  for (int cols : {1, 2, 31, 32, 33, 255, 256, 257, 1000, 1023, 1024, 1025, 2049, 4097, 8191,
                   33000, 65537, 262144, 262147}) {
    const int rows = std::clamp(1'500'000 / cols, 2, 40);
    cases.push_back(make("random logits", rows, cols, rng.logits(std::size_t(rows) * cols, 2.0f)));
  }
  return cases;
}

template <class T>
CompareReport check_softmax(SoftmaxFn<T> fn, const SoftmaxCase& c, const std::string& kernel) {
  const std::size_t n = std::size_t(c.rows) * c.cols;
  std::vector<T> x(n);
  std::transform(c.x.begin(), c.x.end(), x.begin(), DType<T>::narrow);
  const std::vector<double> ref = reference::softmax_rows(widen(x), c.rows, c.cols);

  // x and y are followed by a tail: NaN after x (a kernel that reads past the last row meets
  // it) and the poison after y (one that writes past the last row leaves the tail changed).
  constexpr std::size_t kTail = 1024;
  std::vector<T> x_tailed(x);
  x_tailed.resize(n + kTail, DType<T>::narrow(std::nanf("")));
  DeviceBuffer<T> d_x(x_tailed), d_y(n + kTail);
  d_y.poison();
  fn(d_x.data(), d_y.data(), c.rows, c.cols, nullptr);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> got = widen(d_y.download());

  const std::string what = kernel + " " + DType<T>::name + ", " + c.name + ", " +
                           std::to_string(c.rows) + " x " + std::to_string(c.cols);
  const std::size_t changed = count_written(got, n, got.size());
  if (changed > 0)
    return {false, what + ": wrote past the end of y (" + std::to_string(changed) + " of the " +
                       std::to_string(kTail) + " elements after it changed): a store without the bounds check of "
                       "the last row's end"};
  got.resize(n);
  CompareReport report = compare(got, ref, DType<T>::prob, {std::size_t(c.rows), std::size_t(c.cols)},
                                 what, "the row max and sum must cover every column of the row");
  if (!report.ok) return report;
  // Elementwise agreement implies this; it is here for the message a learner gets.
  const double slack = 2 * DType<T>::prob.rtol;
  for (int r = 0; r < c.rows; ++r) {
    double sum = 0;
    for (int col = 0; col < c.cols; ++col) sum += got[std::size_t(r) * c.cols + col];
    if (std::fabs(sum - 1.0) > slack) {
      report.ok = false;
      report.message = what + ": row " + std::to_string(r) + " sums to " + std::to_string(sum) +
                       ", not 1: the normaliser (the sum of exponentials) is wrong";
      break;
    }
  }
  return report;
}

template CompareReport check_softmax<float>(SoftmaxFn<float>, const SoftmaxCase&, const std::string&);
template CompareReport check_softmax<__half>(SoftmaxFn<__half>, const SoftmaxCase&, const std::string&);
template CompareReport check_softmax<__nv_bfloat16>(SoftmaxFn<__nv_bfloat16>, const SoftmaxCase&,
                                                    const std::string&);

}  // namespace course::testing
