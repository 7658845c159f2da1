#include "course/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace course::reference {

double dot(const float* a, const float* b, std::size_t n) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += double(a[i]) * double(b[i]);
  return sum;
}

double dot_abs(const float* a, const float* b, std::size_t n) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += std::fabs(double(a[i]) * double(b[i]));
  return sum;
}

std::vector<double> query_scores(const std::vector<float>& q, const std::vector<float>& K,
                                 int n_keys, int d, double scale) {
  std::vector<double> s(n_keys);
  for (int j = 0; j < n_keys; ++j) s[j] = scale * dot(&K[std::size_t(j) * d], q.data(), d);
  return s;
}

std::vector<double> score_matrix(const std::vector<float>& Q, const std::vector<float>& K,
                                 int n_q, int n_k, int d, double scale) {
  std::vector<double> S(std::size_t(n_q) * n_k);
  for (int i = 0; i < n_q; ++i)
    for (int j = 0; j < n_k; ++j)
      S[std::size_t(i) * n_k + j] = scale * dot(&Q[std::size_t(i) * d], &K[std::size_t(j) * d], d);
  return S;
}

std::vector<double> softmax_rows(const std::vector<double>& x, int rows, int cols) {
  std::vector<double> y(x.size());
  for (int r = 0; r < rows; ++r) {
    const double* in = &x[std::size_t(r) * cols];
    double* out = &y[std::size_t(r) * cols];
    const double m = *std::max_element(in, in + cols);
    if (m == -std::numeric_limits<double>::infinity()) {
      std::fill(out, out + cols, 0.0);
      continue;
    }
    double l = 0.0;
    for (int c = 0; c < cols; ++c) l += std::exp(in[c] - m);
    for (int c = 0; c < cols; ++c) out[c] = std::exp(in[c] - m) / l;
  }
  return y;
}

}  // namespace course::reference
