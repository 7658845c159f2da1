// The attention suites' shared check (course/attention_testing.hpp).
#include "course/attention_testing.hpp"

#include "course/cuda_check.hpp"
#include "course/device_buffer.hpp"

#include <cmath>
#include <sstream>

namespace course::testing {

AttentionCase make_attention_case(Rng& rng, std::string name, AttentionShape shape, bool causal, bool padded) {
  AttentionCase c;
  c.name = std::move(name);
  c.shape = shape;
  c.scale = default_scale(shape.head_dim);
  c.causal = causal;
  c.Q = rng.logits(shape.q_elements(), 1.0f, 4.0f);
  c.K = rng.logits(shape.kv_elements(), 1.0f, 4.0f);
  c.V = rng.normal(shape.kv_elements());
  if (padded) {
    for (int b = 0; b < shape.batch; ++b) c.key_lengths.push_back(rng.uniform_int(0, shape.n_k));
    const int named[] = {shape.n_k, 1, 0};
    for (int b = 0; b < shape.batch && b < 3; ++b) c.key_lengths[b] = named[b];
  }
  return c;
}

namespace {

std::string describe(const AttentionCase& c) {
  std::string masks = c.causal ? " causal" : "";
  if (!c.key_lengths.empty()) {
    masks += " key lengths {";
    for (std::size_t b = 0; b < c.key_lengths.size(); ++b) masks += (b ? "," : "") + std::to_string(c.key_lengths[b]);
    masks += "}";
  }
  return c.name + ", " + course::describe(c.shape) + ", masks:" + (masks.empty() ? " none" : masks);
}

// Row r of [batch, heads, n_q] as words.
std::string row_name(const AttentionShape& s, std::size_t r) {
  const std::size_t head = r / s.n_q;
  return "row " + std::to_string(r) + " (batch " + std::to_string(head / s.heads) + ", head " +
         std::to_string(head % s.heads) + ", query " + std::to_string(r % s.n_q) + ")";
}

}  // namespace

template <class T>
CompareReport check_attention(const AttentionRunnerOf<T>& run, const AttentionCase& c, const std::string& kernel,
                              Tolerance o_tolerance, Tolerance lse_tolerance) {
  const AttentionShape& s = c.shape;
  // The inputs as the GPU will hold them, and as float again for the reference.
  const std::vector<T> q = narrow<T>(c.Q), k = narrow<T>(c.K), v = narrow<T>(c.V);
  const auto want = reference::attention(as_float(q), as_float(k), as_float(v), s, c.scale, c.causal, c.key_lengths);

  // Every buffer is followed by a tail of NaN (inputs) or poison (outputs): a kernel that
  // reads past the last key of the last head (a missing bounds check on a partial tile)
  // meets NaN, and one that writes past the last row leaves the tail changed.
  const std::size_t tail = std::size_t(128) * s.head_dim;
  const auto with_nan_tail = [&](const std::vector<T>& values) {
    std::vector<T> padded(values);
    padded.resize(values.size() + tail, DType<T>::narrow(std::nanf("")));
    return padded;
  };
  DeviceBuffer<T> Q(with_nan_tail(q)), K(with_nan_tail(k)), V(with_nan_tail(v));
  DeviceBuffer<T> O(s.q_elements() + tail);
  DeviceBuffer<float> lse(s.lse_elements() + tail);
  DeviceBuffer<int> lengths(c.key_lengths);  // empty: nullptr, no padding mask
  O.poison();
  lse.poison();
  run(Q.data(), K.data(), V.data(), O.data(), lse.data(), s, c.scale, AttentionMask{c.causal, lengths.data()},
      nullptr);
  COURSE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> got_O = widen(O.download());
  std::vector<double> got_lse = widen(lse.download());
  const std::string what = kernel + ", " + describe(c);
  for (const auto* out : {&got_O, &got_lse}) {
    const std::size_t changed = count_written(*out, out->size() - tail, out->size());
    if (changed > 0)
      return {false, what + ": wrote " + std::to_string(changed) + " elements past the end of " +
                         (out == &got_O ? "O" : "lse") + " (a store without a bounds check on the last, partial tile)"};
  }
  got_O.resize(got_O.size() - tail);
  got_lse.resize(got_lse.size() - tail);
  std::vector<double> want_lse = want.lse;

  // Rows that see no key: O = 0 and lse = -inf exactly, never NaN. Then set their lse to 0
  // on both sides, so compare() (for which -inf never passes) checks the others.
  const int d = s.head_dim;
  for (std::size_t r = 0; r < want_lse.size(); ++r) {
    if (!std::isinf(want_lse[r])) continue;
    bool zeros = true;
    for (int k = 0; k < d; ++k) zeros = zeros && got_O[r * d + k] == 0.0;
    if (!zeros || !(std::isinf(got_lse[r]) && got_lse[r] < 0)) {
      std::ostringstream msg;
      msg << what << ": " << row_name(s, r) << " sees no key (every key masked): expected O = 0 and lse = -inf, got O[0] = "
          << got_O[r * d] << ", lse = " << got_lse[r]
          << ". Likely cause: the row's max stayed -inf and exp(-inf - (-inf)) or 0/0 made NaN; decide from m = -inf.";
      return {false, msg.str()};
    }
    got_lse[r] = want_lse[r] = 0.0;
  }
  const Shape2D o_shape{s.heads_total() * s.n_q, std::size_t(d)};
  CompareReport o = compare(got_O, want.O, o_tolerance, o_shape, what + ", O [rows = batch*heads*n_q, d]",
                            "check the rescale of the output accumulator when the running max grows, and the masks");
  if (!o.ok) return o;
  return compare(got_lse, want_lse, lse_tolerance, {s.heads_total(), std::size_t(s.n_q)},
                 what + ", lse [batch*heads, n_q]", "lse = m + ln l, with m and l of the scaled scores (natural log)");
}

template CompareReport check_attention<float>(const AttentionRunnerOf<float>&, const AttentionCase&,
                                              const std::string&, Tolerance, Tolerance);
template CompareReport check_attention<__half>(const AttentionRunnerOf<__half>&, const AttentionCase&,
                                               const std::string&, Tolerance, Tolerance);
template CompareReport check_attention<__nv_bfloat16>(const AttentionRunnerOf<__nv_bfloat16>&, const AttentionCase&,
                                                      const std::string&, Tolerance, Tolerance);

CompareReport check_attention(const AttentionRunner& run, const AttentionCase& c, const std::string& kernel) {
  return check_attention<float>(run, c, kernel, tolerance::attention_fp32, tolerance::lse_fp32);
}

}  // namespace course::testing
