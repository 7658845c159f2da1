// Attention's shared definitions and its float64 reference (course/attention.hpp).
#include "course/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace course {

float default_scale(int head_dim) { return float(1.0 / std::sqrt(double(head_dim))); }

double attention_flops(const AttentionShape& s, bool causal) {
  const double full = 4.0 * double(s.heads_total()) * s.n_q * double(s.n_k) * s.head_dim;
  return causal ? full / 2 : full;
}

void check_attention_args(const AttentionShape& s, float scale, const char* who) {
  const auto fail = [&](const std::string& why) { throw std::invalid_argument(std::string(who) + ": " + why); };
  if (s.batch < 1 || s.heads < 1 || s.n_q < 1 || s.n_k < 1 || s.head_dim < 1)
    fail("batch, heads, n_q, n_k and head_dim must each be at least 1 (got " + describe(s) + ")");
  constexpr double kIntMax = double(std::numeric_limits<int>::max());
  if (double(s.heads_total()) * s.n_q > kIntMax || double(s.kv_elements()) > kIntMax ||
      double(s.q_elements()) > kIntMax)
    fail("the tensors of " + describe(s) + " have more than 2^31 elements");
  if (!(scale > 0.0f) || !std::isfinite(scale)) fail("scale must be positive and finite");
}

std::string describe(const AttentionShape& s) {
  return "[B=" + std::to_string(s.batch) + ", H=" + std::to_string(s.heads) + ", n_q=" + std::to_string(s.n_q) +
         ", n_k=" + std::to_string(s.n_k) + ", d=" + std::to_string(s.head_dim) + "]";
}

namespace reference {

double attention_row(const float* q, const float* K, const float* V, int visible, int d, double scale,
                     double* o) {
  std::fill(o, o + d, 0.0);
  if (visible <= 0) return -std::numeric_limits<double>::infinity();
  std::vector<double> s(visible);
  for (int j = 0; j < visible; ++j) {
    double dot = 0;
    for (int k = 0; k < d; ++k) dot += double(q[k]) * K[std::size_t(j) * d + k];
    s[j] = scale * dot;
  }
  const double m = *std::max_element(s.begin(), s.end());
  double l = 0;
  for (int j = 0; j < visible; ++j) {
    const double p = std::exp(s[j] - m);
    l += p;
    for (int k = 0; k < d; ++k) o[k] += p * V[std::size_t(j) * d + k];
  }
  for (int k = 0; k < d; ++k) o[k] /= l;
  return m + std::log(l);
}

Attention attention(const std::vector<float>& Q, const std::vector<float>& K, const std::vector<float>& V,
                    const AttentionShape& s, double scale, bool causal, const std::vector<int>& key_lengths) {
  if (Q.size() != s.q_elements() || K.size() != s.kv_elements() || V.size() != s.kv_elements() ||
      (!key_lengths.empty() && key_lengths.size() != std::size_t(s.batch)))
    throw std::invalid_argument("reference::attention: the inputs' sizes do not match " + describe(s));
  const int d = s.head_dim;
  Attention out{std::vector<double>(s.q_elements()), std::vector<double>(s.lse_elements())};
  for (std::size_t head = 0; head < s.heads_total(); ++head) {
    const int b = int(head / s.heads);
    const int length = key_lengths.empty() ? s.n_k : std::clamp(key_lengths[b], 0, s.n_k);
    const float* Kh = &K[head * s.n_k * d];
    const float* Vh = &V[head * s.n_k * d];
    for (int i = 0; i < s.n_q; ++i) {
      // The masks hide a suffix of the keys: count the kept prefix key by key, from the
      // definitions (causal: j - i <= n_k - n_q; padding: j < length).
      int visible = 0;
      while (visible < s.n_k && visible < length && !(causal && visible - i > s.n_k - s.n_q)) ++visible;
      const std::size_t row = head * s.n_q + i;
      out.lse[row] = attention_row(&Q[row * d], Kh, Vh, visible, d, scale, &out.O[row * d]);
    }
  }
  return out;
}

}  // namespace reference
}  // namespace course
