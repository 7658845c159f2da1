// Chapter 05 — attention, the straightforward way.
//
// Prints what the materialized path holds (S and P: [batch * heads, N, N]) for GPT-2 small
// at growing N, its arithmetic intensity against this GPU's balance point, then checks and
// times the in-house path (chapter 01's scores, chapter 04's softmax, your P V) and the
// cuBLAS path on B * N = 16k tokens of a 2048-wide model, head_dim 64 and 128, causal and
// not. Sizes whose S and P do not fit in GPU memory are shown as such, not run.
#include "attention.hpp"

#include "course/attention_bench.hpp"
#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/cuda_check.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/table.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr double kGiB = double(1 << 30);

// What S and P take for GPT-2 small (12 heads of 64) with one sequence of N tokens.
void print_memory_table() {
  std::printf("What the materialized path holds, GPT-2 small (12 heads, d = 64), one sequence of N tokens:\n");
  course::Table table({"N", "Q, K, V, O", "S", "P", "S + P per layer"});
  for (int n : {1024, 4096, 16384, 65536}) {
    const course::AttentionShape s{1, 12, n, n, 64};
    const double io = double(course::attention_io_bytes(s)), scores = double(ch05::score_bytes(s));
    table.add_row({std::to_string(n), course::fmt(io / (1 << 20), 1) + " MiB", course::fmt(scores / kGiB, 2) + " GiB",
                   course::fmt(scores / kGiB, 2) + " GiB", course::fmt(2 * scores / kGiB, 2) + " GiB"});
  }
  table.print();
  std::printf("S and P grow as N^2: 4x the memory for every doubling of N, while Q, K, V and O grow as N.\n\n");
}

// FLOPs per byte of the materialized path, and the GPU's own balance point.
void print_intensity(double copy_gbps, double sgemm_tflops) {
  // Per head, 4 N^2 d FLOPs; S written once and read twice (lse, softmax), P written once
  // and read once: 5 * 4 N^2 bytes at least. Q, K, V, O are O(N d): negligible.
  std::printf("Arithmetic intensity: 4 N^2 d FLOPs over at least 5 * 4 N^2 bytes of S and P = d / 5 FLOP/byte\n"
              "(d = 64: %.1f, d = 128: %.1f). This GPU's balance point, SGEMM over copy bandwidth: %.1f FLOP/byte.\n"
              "Near or below it, the path waits on memory as much as it computes, and it pays for every\n"
              "masked score too. Chapter 07's tensor cores raise the balance point about 15x.\n\n",
              64 / 5.0, 128 / 5.0, sgemm_tflops * 1e12 / (copy_gbps * 1e9));
}

struct Config {
  int n;
  int head_dim;
  bool causal;
};

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 05 - attention, the straightforward way: S = scale Q K^T, P = masked softmax(S),\n"
                  "O = P V through global memory. Shows the memory S and P take, then checks and times the\n"
                  "in-house path and the cuBLAS path.");
  const auto seqs = cli.integers("--seq", {512, 1024, 4096, 16384, 65536}, "sequence lengths N (n_q = n_k = N)");
  const auto dims = cli.integers("--head-dim", {64, 128}, "head dimensions d");
  const long long tokens = cli.integer("--tokens", 16384, "batch * N: B = tokens / N (at least 1)");
  const long long hidden = cli.integer("--hidden", 2048, "model width: heads = hidden / d");
  const long long repeats = cli.integer("--repeats", 5, "timed runs per version; the median is reported");
  cli.finish();
  for (long long n : seqs) cli.require(n >= 1 && n <= (1 << 20), "every --seq must be in [1, 2^20]");
  for (long long d : dims) cli.require(d >= 1 && d <= 1024, "every --head-dim must be in [1, 1024]");
  cli.require(tokens >= 1 && tokens <= (1 << 24), "--tokens must be in [1, 2^24]");
  for (long long d : dims) cli.require(hidden % d == 0, "--hidden must be a multiple of every --head-dim");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");

  return course::guarded_main([&] {
    print_memory_table();
    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
    const double copy_gbps = course::measure_copy_gbps();
    const double sgemm_tflops = course::measure_sgemm_tflops();
    std::printf("ceilings: device-to-device copy %.0f GB/s, cuBLAS SGEMM 4096^3 %.1f TFLOP/s (fp32, no TF32)\n\n",
                copy_gbps, sgemm_tflops);
    print_intensity(copy_gbps, sgemm_tflops);

    std::vector<Config> configs;
    for (long long d : dims)
      for (long long n : seqs)
        for (bool causal : {false, true}) configs.push_back({int(n), int(d), causal});
    course::CublasHandle handle;
    course::Table table({"N", "d", "causal", "B x H", "S + P", "in-house", "TFLOP/s", "cuBLAS", "TFLOP/s",
                         "cuBLAS of SGEMM", "check"});
    bool all_ok = true;
    int skipped = 0;
    for (const Config& c : configs) {
      const int batch = int(std::max(1LL, tokens / c.n)), heads = int(hidden / c.head_dim);
      const course::AttentionShape shape{batch, heads, c.n, c.n, c.head_dim};
      const std::string bh = std::to_string(batch) + " x " + std::to_string(heads);
      const double scores = double(ch05::score_bytes(shape));
      const double need = 2 * scores + double(course::attention_io_bytes(shape));
      std::size_t free_bytes = 0, total_bytes = 0;
      COURSE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
      if (need > 0.95 * double(free_bytes)) {  // leave room for cuBLAS and the L2 flush buffer
        table.add_row({std::to_string(c.n), std::to_string(c.head_dim), c.causal ? "yes" : "no", bh,
                       course::fmt(2 * scores / kGiB, 1) + " GiB",
                       "does not fit: needs " + course::fmt(need / kGiB, 1) + " GiB, " +
                           course::fmt(free_bytes / kGiB, 1) + " GiB free",
                       "", "", "", "", "-"});
        ++skipped;
        continue;
      }
      std::printf("  N = %d, d = %d, %s, %s\n", c.n, c.head_dim, c.causal ? "causal" : "no mask",
                  course::describe(shape).c_str());
      std::fflush(stdout);
      course::AttentionProblem problem(shape, c.causal, course::pick_seed());
      course::DeviceBuffer<float> S(scores / sizeof(float)), P(scores / sizeof(float));
      const ch05::Workspace workspace{S.data(), P.data()};
      const auto in_house = course::bench_attention(
          problem,
          [&](cudaStream_t st) {
            ch05::attention(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                            problem.lse.data(), shape, problem.scale, problem.mask(), workspace, st);
          },
          int(repeats), "attention (in-house) " + course::describe(shape));
      const auto cublas = course::bench_attention(
          problem,
          [&](cudaStream_t st) {
            ch05::attention_cublas(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                                   problem.lse.data(), shape, problem.scale, problem.mask(), workspace, handle, st);
          },
          int(repeats), "attention_cublas " + course::describe(shape));
      const bool ok = in_house.ok && cublas.ok;
      all_ok = all_ok && ok;
      table.add_row({std::to_string(c.n), std::to_string(c.head_dim), c.causal ? "yes" : "no", bh,
                     course::fmt(2 * scores / kGiB, 1) + " GiB", course::fmt_us(in_house.ms),
                     course::fmt(in_house.tflops, 2), course::fmt_us(cublas.ms), course::fmt(cublas.tflops, 2),
                     course::fmt_pct(cublas.tflops, sgemm_tflops), ok ? "ok" : "WRONG"});
    }
    std::printf("\n");
    table.print();
    std::printf("\n%s; medians of %lld runs, L2 flushed before each. TFLOP/s credit 4 N^2 d per head, half\n"
                "when causal: the materialized path computes every masked score anyway, so causal halves its\n"
                "rate. %s\n",
                gpu.prop.name, repeats,
                skipped ? "Sizes marked 'does not fit' need more memory for S and P than this GPU has: chapter\n"
                          "06 runs them in O(N) memory."
                        : "");
    return int(all_ok ? course::kExitOk : course::kExitWrongResult);
  });
}
