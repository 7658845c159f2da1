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

std::vector<double> masked_softmax_row(const double* s, int query, int n_q, int n_k, double scale,
                                       bool causal, int key_length, const unsigned char* keep) {
  const double inf = std::numeric_limits<double>::infinity();
  // Masked keys become -inf, which softmax_rows turns into exactly 0 (and a row of nothing
  // but -inf into zeros); kept keys are scaled. A masked score is not looked at.
  std::vector<double> x(n_k, -inf);
  for (int j = 0; j < n_k; ++j) {
    const bool hidden_by_causal = causal && j > query + (n_k - n_q);
    const bool padding = j >= key_length;
    const bool dropped = keep != nullptr && keep[j] == 0;
    if (!hidden_by_causal && !padding && !dropped) x[j] = scale * s[j];
  }
  return softmax_rows(x, 1, n_k);
}

std::vector<double> masked_softmax(const std::vector<double>& S, int batch, int heads, int n_q, int n_k,
                                   double scale, bool causal, const std::vector<int>& key_lengths,
                                   const std::vector<unsigned char>& keep) {
  const std::size_t rows = std::size_t(batch) * heads * n_q;
  std::vector<double> y;
  y.reserve(rows * n_k);
  for (std::size_t r = 0; r < rows; ++r) {
    const int query = int(r % n_q);
    const int b = int(r / (std::size_t(heads) * n_q));
    const int key_length = key_lengths.empty() ? n_k : key_lengths[b];
    const unsigned char* keep_row = keep.empty() ? nullptr : &keep[std::size_t(query) * n_k];
    const std::vector<double> row =
        masked_softmax_row(&S[r * n_k], query, n_q, n_k, scale, causal, key_length, keep_row);
    y.insert(y.end(), row.begin(), row.end());
  }
  return y;
}

}  // namespace course::reference
