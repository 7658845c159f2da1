// What chapters 05 to 08 share about attention: the layout, the masks, the FLOP count,
// the argument checks, and the float64 reference every attention kernel is checked against.
//
//   O[b][h][i] = sum over kept j of p_ij V[b][h][j],   p_ij = exp(s_ij - m_i) / l_i
//   s_ij = scale * Q[b][h][i] . K[b][h][j],   m_i = max over kept j of s_ij,
//   l_i = sum over kept j of exp(s_ij - m_i),   lse[b][h][i] = m_i + ln l_i.
//   A row that keeps no key (fully masked) has O = 0 and lse = -inf.
//
// Layout: Q, O: [batch, heads, n_q, head_dim]; K, V: [batch, heads, n_k, head_dim];
// lse: [batch, heads, n_q]; all row-major and contiguous (GPT-2 small: 12 heads of 64).
// The masks are chapter 04's: causal aligned bottom-right (query i sees keys
// j <= i + (n_k - n_q)) and per-batch key lengths (padding).
#pragma once

#include "course/hd.hpp"

#include <cstddef>
#include <string>
#include <vector>

namespace course {

struct AttentionShape {
  int batch;
  int heads;
  int n_q;       // queries per head
  int n_k;       // keys (and values) per head
  int head_dim;  // d
  std::size_t heads_total() const { return std::size_t(batch) * heads; }
  std::size_t q_elements() const { return heads_total() * n_q * std::size_t(head_dim); }   // Q, O
  std::size_t kv_elements() const { return heads_total() * n_k * std::size_t(head_dim); }  // K, V
  std::size_t lse_elements() const { return heads_total() * n_q; }
};

struct AttentionMask {
  bool causal = false;               // bottom-right aligned, as chapter 04
  const int* key_lengths = nullptr;  // device pointer to [batch] ints, or nullptr for none;
                                     // keys j >= key_lengths[b] are masked, values clamped to [0, n_k]
};

// Chapter 04's visible_end: keys [0, visible_keys) of query `query` pass the causal and
// padding masks, the rest are masked; 0 means the row sees nothing. key_length: the
// row's batch's key length, or n_k without padding.
COURSE_HD inline int visible_keys(int query, int n_q, int n_k, bool causal, int key_length) {
  int end = key_length < n_k ? key_length : n_k;
  if (causal) {
    const int last_seen = query + (n_k - n_q);  // bottom-right: the last query sees key n_k - 1
    end = last_seen + 1 < end ? last_seen + 1 : end;
  }
  return end > 0 ? end : 0;
}

// 1/sqrt(head_dim): keeps the scores' spread near 1 whatever d is.
float default_scale(int head_dim);

// The FLOPs attention is credited with, the field's convention: 4 n_q n_k d per head
// (two matrix products of 2 n_q n_k d each), half of that when causal. Softmax's exps
// are not counted.
double attention_flops(const AttentionShape& shape, bool causal);

// Throws std::invalid_argument starting with `who` unless every size is at least 1,
// batch * heads * n_q and batch * heads * n_k * head_dim fit the int math kernels use,
// and scale is positive and finite.
void check_attention_args(const AttentionShape& shape, float scale, const char* who);

// "[B=4, H=32, n_q=1024, n_k=1024, d=64]"
std::string describe(const AttentionShape& shape);

namespace reference {

// One query's row of attention over keys [0, visible) of one head: K, V: [n_k, d] (only
// the first `visible` rows are read), q: [d]. Writes o: [d]; returns lse (-inf and o = 0
// when visible is 0).
double attention_row(const float* q, const float* K, const float* V, int visible, int d, double scale,
                     double* o);

struct Attention {
  std::vector<double> O;    // [batch, heads, n_q, d]
  std::vector<double> lse;  // [batch, heads, n_q]
};

// The whole tensor. key_lengths: [batch] (host), or empty for no padding. Each key is
// tested against the masks' definitions directly, not through visible_keys.
Attention attention(const std::vector<float>& Q, const std::vector<float>& K, const std::vector<float>& V,
                    const AttentionShape& shape, double scale, bool causal, const std::vector<int>& key_lengths);

}  // namespace reference
}  // namespace course
