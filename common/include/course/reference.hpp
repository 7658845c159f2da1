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

// Chapter 04's masked, scaled softmax of one row of scores. s: the row's n_k scores, the
// row of query `query` (0 <= query < n_q). Key j is kept when every mask given keeps it:
//   causal, aligned bottom-right (the last query sees every key):  j <= query + (n_k - n_q)
//   padding (pass key_length = n_k for none):                     j < key_length
//   explicit (keep: the row's n_k flags, or nullptr for none):     keep[j] != 0
//   y[j] = exp(scale * s[j] - m) / sum over kept j' of exp(scale * s[j'] - m)   for kept j,
//   y[j] = 0                                                                    for masked j,
// m the max of scale * s over the kept keys. A row with no kept key gives zeros. Masked
// scores are never read, so they may be anything (the tests put NaN there).
std::vector<double> masked_softmax_row(const double* s, int query, int n_q, int n_k, double scale,
                                       bool causal, int key_length, const unsigned char* keep);

// The same over a tensor: S, y: [batch * heads, n_q, n_k], row-major; row r is query
// r % n_q of batch r / (heads * n_q). key_lengths: [batch], or empty for no padding mask.
// keep: [n_q, n_k], one mask shared by every batch and head, or empty for none.
std::vector<double> masked_softmax(const std::vector<double>& S, int batch, int heads, int n_q, int n_k,
                                   double scale, bool causal, const std::vector<int>& key_lengths,
                                   const std::vector<unsigned char>& keep);

}  // namespace course::reference
