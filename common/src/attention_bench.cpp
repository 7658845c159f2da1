// The attention chapters' benchmark harness (course/attention_bench.hpp).
#include "course/attention_bench.hpp"

#include "course/compare.hpp"
#include "course/cuda_check.hpp"
#include "course/device_random.hpp"
#include "course/timing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

namespace course {

template <class T>
AttentionProblemOf<T>::AttentionProblemOf(const AttentionShape& s, bool causal_, std::uint64_t seed,
                                          Tolerance o_tolerance_, Tolerance lse_tolerance_)
    : shape(s),
      causal(causal_),
      scale(default_scale(s.head_dim)),
      Q(s.q_elements()),
      K(s.kv_elements()),
      V(s.kv_elements()),
      O(s.q_elements()),
      lse(s.lse_elements()),
      o_tolerance(o_tolerance_),
      lse_tolerance(lse_tolerance_) {
  // stddev 0.5: the x20 outliers then make scores up to ~10 and values up to ~10. Larger
  // (stddev 1: scores to ~35, values to ~20) makes the fp32 rounding of a large score,
  // times a near-tie between two keys, times a large value difference, exceed the output
  // tolerance for a correct kernel: the check would measure the data's condition, not the
  // kernel.
  fill_logits(Q.data(), Q.size(), seed, 0.5f);
  fill_logits(K.data(), K.size(), seed + 1, 0.5f);
  fill_logits(V.data(), V.size(), seed + 2, 0.5f);
}

std::size_t attention_io_bytes(const AttentionShape& s) {
  return (2 * s.q_elements() + 2 * s.kv_elements() + s.lse_elements()) * sizeof(float);
}

namespace {

// Checks rows `which` of O and lse (rows of [batch * heads * n_q]) against the reference,
// downloading only those rows' Q and their heads' K and V.
template <class T>
CompareReport check_sampled_rows(const AttentionProblemOf<T>& p, const std::string& what) {
  const AttentionShape& s = p.shape;
  const int d = s.head_dim;
  const std::vector<std::size_t> which = sample_rows(s.heads_total() * s.n_q, 8);
  const std::vector<float> q = as_float(p.Q.download_rows(d, which));
  const std::vector<T> o = p.O.download_rows(d, which);
  const std::vector<float> lse = p.lse.download_rows(1, which);
  std::vector<double> want_o(which.size() * d), want_lse(which.size()), got_lse(which.size());
  for (std::size_t w = 0; w < which.size(); ++w) {
    const std::size_t head = which[w] / s.n_q;
    const int query = int(which[w] % s.n_q);
    const std::size_t head_size = std::size_t(s.n_k) * d;  // K and V as [batch * heads, n_k * d]
    const std::vector<float> K = as_float(p.K.download_rows(head_size, {head}));
    const std::vector<float> V = as_float(p.V.download_rows(head_size, {head}));
    const int visible = visible_keys(query, s.n_q, s.n_k, p.causal, s.n_k);
    want_lse[w] = reference::attention_row(&q[w * d], K.data(), V.data(), visible, d, p.scale, &want_o[w * d]);
    got_lse[w] = lse[w];
    if (std::isinf(want_lse[w]) && std::isinf(got_lse[w]) && got_lse[w] < 0) want_lse[w] = got_lse[w] = 0;
  }
  const CompareReport report = compare(widen(o), want_o, p.o_tolerance, {which.size(), std::size_t(d)},
                                       what + ", O (sampled rows)");
  if (!report.ok) return report;
  return compare(got_lse, want_lse, p.lse_tolerance, {which.size(), 1}, what + ", lse (sampled rows)");
}

}  // namespace

template <class T>
AttentionRun bench_attention(AttentionProblemOf<T>& problem, const std::function<void(cudaStream_t)>& work,
                             int repeats, const std::string& what) {
  AttentionRun run;
  problem.O.poison();
  problem.lse.poison();
  const Timing once = time_gpu(work, {0, 1, false});  // the checked run
  const CompareReport report = check_sampled_rows(problem, what);
  if (!report.ok) std::fprintf(stderr, "%s\n", report.message.c_str());
  run.ok = report.ok;
  // A run of a second or more is timed 3 times at most, after one warm-up: the median of
  // a few long runs is as steady as that of many short ones, and the tour stays short.
  const bool long_run = once.median_ms > 1000.0;
  run.ms = time_gpu(work, {long_run ? 1 : 2, long_run ? std::min(repeats, 3) : repeats, true}).median_ms;
  run.tflops = attention_flops(problem.shape, problem.causal) / (run.ms * 1e-3) / 1e12;
  return run;
}

template struct AttentionProblemOf<float>;
template struct AttentionProblemOf<__half>;
template struct AttentionProblemOf<__nv_bfloat16>;
template AttentionRun bench_attention(AttentionProblemOf<float>&, const std::function<void(cudaStream_t)>&, int,
                                      const std::string&);
template AttentionRun bench_attention(AttentionProblemOf<__half>&, const std::function<void(cudaStream_t)>&, int,
                                      const std::string&);
template AttentionRun bench_attention(AttentionProblemOf<__nv_bfloat16>&, const std::function<void(cudaStream_t)>&,
                                      int, const std::string&);

}  // namespace course
