// Chapter 01 — dot products: measuring relevance.
//
// Shows what a score is (q . k, scaled by 1/sqrt(d)), then runs every kernel of the
// chapter on GPT-2-sized shapes: checks each against the float64 CPU reference and
// times it against a ceiling measured in the same run (device-to-device copy for the
// memory-bound kernels, cuBLAS SGEMM for the score matrix).
#include "dot_product.hpp"

#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/compare.hpp"
#include "course/device_buffer.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/reference.hpp"
#include "course/table.hpp"
#include "course/timing.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Options {
  long long n, n_keys, d, seq, repeats;
};

// The CPU part: what the numbers mean, before any GPU is involved.
void explain(const Options& o) {
  std::printf("A score s = q . k / sqrt(d) says how relevant a key is to a query: large when\n"
              "they point the same way. Attention computes one for every (query, key) pair:\n"
              "S = Q K^T / sqrt(d), an N x N matrix per head. Dividing by sqrt(d) keeps the\n"
              "scores' spread near 1 whatever d is (a sum of d products of unit-variance\n"
              "numbers has variance d).\n\n");
  course::Rng rng(7);
  const int tokens = 4, d = 8;
  const auto Q = rng.normal(tokens * d), K = rng.normal(tokens * d);
  const auto S = course::reference::score_matrix(Q, K, tokens, tokens, d, 1.0 / std::sqrt(d));
  std::printf("Scores of %d random queries against %d random keys (d = %d):\n", tokens, tokens, d);
  for (int i = 0; i < tokens; ++i) {
    std::printf("  q%d:", i);
    for (int j = 0; j < tokens; ++j) std::printf(" %7.3f", S[i * tokens + j]);
    std::printf("\n");
  }
  std::printf("\nGPT-2 small has 12 heads of d = 64. One head's score matrix in fp32:\n");
  for (long long n : {1024LL, 4096LL, 16384LL, o.seq})
    std::printf("  N = %6lld: %9.1f MiB per head, %9.1f MiB for 12 heads; %.2f GFLOP per head\n",
                n, 4.0 * n * n / (1 << 20), 12 * 4.0 * n * n / (1 << 20), 2.0 * n * n * 64 / 1e9);
  std::printf("Each score is d = %lld multiply-adds over %lld bytes of K: the score matrix does\n"
              "d/2 = %.0f FLOP per byte it writes, a decode step (one query) 0.5 FLOP per byte\n"
              "it reads - it can only go as fast as memory.\n\n",
              o.d, 4 * o.d, o.d / 2.0);
}

// Checks a sample of rows (all of them when there are few): enough to catch a wrong
// kernel without a minutes-long CPU reference at N = 16k.
course::CompareReport check_rows(const std::vector<float>& got, const std::vector<float>& Q,
                                 const std::vector<float>& K, int n_q, int n_k, int d,
                                 double scale, const std::string& what) {
  const std::vector<std::size_t> rows = course::sample_rows(n_q, 48);
  std::vector<double> g, ref;
  double abs_max = 0;
  for (std::size_t r : rows) {
    const std::vector<float> q(Q.begin() + r * d, Q.begin() + (r + 1) * d);
    const auto row = course::reference::query_scores(q, K, n_k, d, scale);
    for (int j = 0; j < n_k; ++j) {
      ref.push_back(row[j]);
      g.push_back(got[r * n_k + j]);
      abs_max = std::max(abs_max, course::reference::dot_abs(q.data(), &K[std::size_t(j) * d], d));
    }
  }
  return course::compare(g, ref, {1e-5 * scale * abs_max, 1e-5, "fp32"},
                         {rows.size(), std::size_t(n_k)}, what + " (sampled rows)");
}

int run(const Options& o) {
  explain(o);
  const course::GpuStatus gpu = course::query_gpu();
  if (!gpu.usable) {
    std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
    return course::kExitOk;
  }
  const double s_bytes = 4.0 * o.seq * o.seq;
  const double needed = 4.0 * o.n * 2 + 4.0 * o.n_keys * o.d + 2 * 4.0 * o.seq * o.d + 2 * s_bytes;
  if (needed > 0.8 * gpu.prop.totalGlobalMem) {
    std::fprintf(stderr, "these sizes need %.1f GiB of GPU memory; %s has %.1f GiB\n",
                 needed / (1 << 30), gpu.prop.name, gpu.prop.totalGlobalMem / double(1 << 30));
    return course::kExitUnsupported;
  }
  std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
  std::printf("measuring the ceilings ...\n");
  const double copy_gbps = course::measure_copy_gbps();
  const double sgemm_tflops = course::measure_sgemm_tflops();
  std::printf("  device-to-device copy: %.0f GB/s (read + write)   cuBLAS SGEMM 4096^3: %.1f TFLOP/s\n\n",
              copy_gbps, sgemm_tflops);

  const course::TimingConfig timing{3, int(o.repeats), true};
  course::Rng rng(course::pick_seed());
  course::Table table({"kernel", "shape", "time", "throughput", "of ceiling", "check"});
  bool all_ok = true;
  auto verdict = [&](const course::CompareReport& r) {
    if (!r.ok) std::fprintf(stderr, "%s\n", r.message.c_str());
    all_ok = all_ok && r.ok;
    return std::string(r.ok ? "ok" : "WRONG");
  };

  {  // 1. dot
    std::printf("[1/3] dot, n = %lld\n", o.n);
    const auto a = rng.normal(o.n), b = rng.normal(o.n);
    course::DeviceBuffer<float> d_a(a), d_b(b), partials(ch01::kDotMaxBlocks), result(1);
    result.poison();
    const auto t = course::time_gpu([&](cudaStream_t s) {
      ch01::dot(d_a.data(), d_b.data(), int(o.n), partials.data(), result.data(), s);
    }, timing);
    const double ref = course::reference::dot(a.data(), b.data(), o.n);
    const double tol = 1e-5 * course::reference::dot_abs(a.data(), b.data(), o.n);
    const double gbps = course::gb_per_s(8.0 * o.n, t.median_ms);
    table.add_row({"dot", "n=" + std::to_string(o.n), course::fmt_us(t.median_ms),
                   course::fmt(gbps, 0) + " GB/s", course::fmt_pct(gbps, copy_gbps) + " of copy",
                   verdict(course::compare(result.download(), {ref}, {tol, 0, "fp32 dot"}, {1, 1}, "dot"))});
  }
  {  // 2. one query against a cache of keys
    std::printf("[2/3] query_scores, %lld keys of d = %lld\n", o.n_keys, o.d);
    const int n_keys = int(o.n_keys), d = int(o.d);
    const double scale = 1.0 / std::sqrt(double(d));
    const auto q = rng.normal(d), K = rng.logits(std::size_t(n_keys) * d);
    course::DeviceBuffer<float> d_q(q), d_K(K), scores(n_keys);
    const auto ref = course::reference::query_scores(q, K, n_keys, d, scale);
    double abs_max = 0;
    for (int j = 0; j < n_keys; ++j)
      abs_max = std::max(abs_max, course::reference::dot_abs(&K[std::size_t(j) * d], q.data(), d));
    const double bytes = 4.0 * (double(n_keys) * d + d + n_keys);
    for (const auto& version : {std::pair{"query_scores_naive", ch01::query_scores_naive},
                                std::pair{"query_scores", ch01::query_scores}}) {
      const char* name = version.first;
      const auto fn = version.second;
      scores.poison();
      const auto t = course::time_gpu([&](cudaStream_t s) {
        fn(d_q.data(), d_K.data(), n_keys, d, float(scale), scores.data(), s);
      }, timing);
      const double gbps = course::gb_per_s(bytes, t.median_ms);
      table.add_row({name, std::to_string(n_keys) + " x " + std::to_string(d),
                     course::fmt_us(t.median_ms), course::fmt(gbps, 0) + " GB/s",
                     course::fmt_pct(gbps, copy_gbps) + " of copy",
                     verdict(course::compare(scores.download(), ref,
                                             {1e-5 * scale * abs_max, 1e-5, "fp32"},
                                             {1, std::size_t(n_keys)}, name))});
    }
  }
  {  // 3. the score matrix
    std::printf("[3/3] score matrix, N = %lld, d = %lld (CPU check on sampled rows)\n", o.seq, o.d);
    const int n = int(o.seq), d = int(o.d);
    const double scale = 1.0 / std::sqrt(double(d));
    const auto Q = rng.logits(std::size_t(n) * d), K = rng.logits(std::size_t(n) * d);
    course::DeviceBuffer<float> d_Q(Q), d_K(K), S(std::size_t(n) * n);
    const double flops = 2.0 * n * double(n) * d;
    const std::string shape = std::to_string(n) + " x " + std::to_string(n) + " x " + std::to_string(d);
    auto add = [&](const char* name, const std::function<void(cudaStream_t)>& work) {
      S.poison();
      const auto t = course::time_gpu(work, timing);
      const double tflops = course::tflop_per_s(flops, t.median_ms);
      table.add_row({name, shape, course::fmt_us(t.median_ms), course::fmt(tflops, 2) + " TFLOP/s",
                     course::fmt_pct(tflops, sgemm_tflops) + " of SGEMM",
                     verdict(check_rows(S.download(), Q, K, n, n, d, scale, name))});
    };
    add("score_matrix_naive", [&](cudaStream_t s) {
      ch01::score_matrix_naive(d_Q.data(), d_K.data(), n, n, d, float(scale), S.data(), s);
    });
    add("score_matrix", [&](cudaStream_t s) {
      ch01::score_matrix(d_Q.data(), d_K.data(), n, n, d, float(scale), S.data(), s);
    });
    // cuBLAS is column-major: S (row-major n_q x n_k) is the column-major n_k x n_q matrix
    // K Q^T, where K and Q, read column-major, are d x n_k and d x n_q.
    course::CublasHandle cublas;
    COURSE_CUBLAS_CHECK(cublasSetMathMode(cublas, CUBLAS_PEDANTIC_MATH));  // fp32, no TF32
    const float alpha = float(scale), beta = 0.0f;
    add("cuBLAS SGEMM (baseline)", [&](cudaStream_t s) {
      COURSE_CUBLAS_CHECK(cublasSetStream(cublas, s));
      COURSE_CUBLAS_CHECK(cublasSgemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, d, &alpha, d_K.data(),
                                      d, d_Q.data(), d, &beta, S.data(), n));
    });
  }
  std::printf("\n");
  table.print();
  std::printf("\n%s; medians of %lld runs, L2 flushed before each.\n", gpu.prop.name, o.repeats);
  return all_ok ? course::kExitOk : course::kExitWrongResult;
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 01 - dot products: measuring relevance.\n"
                  "Checks and times a dot product, one query against a key cache, and the score matrix.");
  Options o;
  o.n = cli.integer("--n", 1 << 26, "length of the two vectors of the dot product");
  o.n_keys = cli.integer("--keys", 1 << 20, "number of cached keys one query is scored against");
  o.d = cli.integer("--d", 64, "head dimension (GPT-2 small: 64)");
  o.seq = cli.integer("--seq", 4096, "sequence length N of the N x N score matrix");
  o.repeats = cli.integer("--repeats", 30, "timed runs per kernel; the median is reported");
  cli.finish();
  cli.require(o.n >= 1 && o.n <= (1LL << 30), "--n must be in [1, 2^30]");
  cli.require(o.n_keys >= 1 && o.n_keys <= (1LL << 28), "--keys must be in [1, 2^28]");
  cli.require(o.d >= 1 && o.d <= 1024, "--d must be in [1, 1024]");
  cli.require(o.seq >= 1 && o.seq <= 65536, "--seq must be in [1, 65536]");
  cli.require(o.n_keys * o.d <= (1LL << 31) - 1, "--keys * --d must stay below 2^31 elements");
  cli.require(o.repeats >= 1 && o.repeats <= 10000, "--repeats must be in [1, 10000]");
  return course::guarded_main([&] { return run(o); });
}
