// Float64 CPU references: what every GPU kernel in the course is checked against.
// Inputs are the exact values the GPU saw (float, or half/bfloat16 widened to float);
// all arithmetic is double, so the reference's own rounding is negligible next to the
// kernels' float32 rounding.
#pragma once

#include <cstddef>
#include <vector>

namespace course::reference {

// sum_i a[i] * b[i]
double dot(const float* a, const float* b, std::size_t n);
// sum_i |a[i] * b[i]|: the scale of a dot product's rounding error (its condition).
double dot_abs(const float* a, const float* b, std::size_t n);

// scores[j] = scale * sum_k K[j][k] * q[k]          K: [n_keys, d] row-major, q: [d]
std::vector<double> query_scores(const std::vector<float>& q, const std::vector<float>& K,
                                 int n_keys, int d, double scale);

// S[i][j] = scale * sum_k Q[i][k] * K[j][k]         Q: [n_q, d], K: [n_k, d], S: [n_q, n_k]
std::vector<double> score_matrix(const std::vector<float>& Q, const std::vector<float>& K,
                                 int n_q, int n_k, int d, double scale);

// Row-wise softmax: y[r][c] = exp(x[r][c] - m_r) / sum_c' exp(x[r][c'] - m_r), m_r the
// row's max. x, y: [rows, cols]. A row whose every entry is -inf (fully masked) gives
// zeros: the convention from chapter 04 on.
std::vector<double> softmax_rows(const std::vector<double>& x, int rows, int cols);

}  // namespace course::reference
