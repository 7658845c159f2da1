#include "course/reference.hpp"

#include <cmath>

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

}  // namespace course::reference
