// Chapter 07 — flash attention on tensor cores: the ladder.
//
// Draws which lane of a warp holds which element of an mma accumulator and what the XOR
// swizzle does to a tile's 16-byte chunks, then checks and times every rung of the ladder
// on B * N = 16k tokens of a 2048-wide model, head_dim 64 and 128, causal and not, against
// a cuBLAS bf16 GEMM measured in the same run.
#include "tc_attention.hpp"

#include "course/attention_bench.hpp"
#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/cuda_check.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/table.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace {

// The 16 x 8 accumulator of one mma: the lane holding each element (lane = 4g + t holds
// rows g and g + 8, columns 2t and 2t + 1).
void draw_accumulator() {
  std::printf("Who holds what: the 16 x 8 fp32 accumulator of one mma.sync.m16n8k16, by lane\n"
              "(lane 4g + t holds rows g and g + 8, columns 2t and 2t + 1; a row lives in one quad):\n        ");
  for (int col = 0; col < 8; ++col) std::printf("  col%d", col);
  std::printf("\n");
  for (int row = 0; row < 16; ++row) {
    std::printf("  row %2d", row);
    for (int col = 0; col < 8; ++col) std::printf(" %5d", 4 * (row % 8) + col / 2);
    std::printf("\n");
  }
  std::printf("\n");
}

// Which 16-byte column of shared memory chunk c of row r lands in, plain and swizzled; the
// 8 rows ldmatrix reads at once share one logical chunk (a column of this picture).
void draw_swizzle() {
  std::printf("The swizzle: the 16-byte column where chunk c of row r is stored (rows are 128 or 256 bytes,\n"
              "so a column is the same 4 banks in every row). ldmatrix reads one chunk of 8 rows at once:\n"
              "                plain             swizzled (c ^ r %% 8)\n  row  chunk: ");
  for (int c = 0; c < 8; ++c) std::printf("%d ", c);
  std::printf("   ");
  for (int c = 0; c < 8; ++c) std::printf("%d ", c);
  std::printf("\n");
  for (int r = 0; r < 8; ++r) {
    std::printf("  %d           ", r);
    for (int c = 0; c < 8; ++c) std::printf("%d ", c);
    std::printf("   ");
    for (int c = 0; c < 8; ++c) std::printf("%d ", c ^ r);
    std::printf("\n");
  }
  std::printf("  plain: chunk 0 of the 8 rows is 8 reads of the same 4 banks (an 8-way conflict);\n"
              "  swizzled: 8 different columns, all 32 banks, one pass. Rung 5 pads each row by one chunk\n"
              "  instead: row r then starts 4 banks after row r - 1, as conflict-free, with simpler addresses.\n\n");
}

std::string rung_column(ch07::Rung rung) { return std::string("rung ") + ch07::rung_name(rung); }

template <class T>
int run_ladder(const std::vector<long long>& seqs, const std::vector<long long>& dims, long long tokens,
               long long hidden, const std::vector<ch07::Rung>& wanted, int repeats, const char* dtype,
               course::Tolerance o_tolerance) {
  const course::GpuStatus gpu = course::query_gpu();
  if (!gpu.usable) {
    std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
    return int(course::kExitOk);
  }
  std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
  if (gpu.prop.major < ch07::kMinMajor) {  // exit 3; ctest reports the tour as skipped, not failed
    std::printf("[course] SKIPPED the GPU part: this GPU is sm_%d%d\n", gpu.prop.major, gpu.prop.minor);
    std::fprintf(stderr, "chapter 07 needs a GPU of sm_80 or newer (mma.sync on bf16, ldmatrix, cp.async); this one "
                         "is sm_%d%d\n", gpu.prop.major, gpu.prop.minor);
    return int(course::kExitUnsupported);
  }
  std::vector<ch07::Rung> rungs;  // those this GPU and this build can run
  for (ch07::Rung rung : wanted) {
    if (ch07::rung_available(rung))
      rungs.push_back(rung);
    else
      std::printf("rung %s left out: it needs compute capability 9.0 (H100, H200) and a build naming 90 in "
                  "CMAKE_CUDA_ARCHITECTURES\n", ch07::rung_name(rung));
  }
  if (rungs.empty()) {
    std::fprintf(stderr, "no rung asked for (--rungs) runs here\n");
    return int(course::kExitUnsupported);
  }
  const double gemm = course::measure_gemm_bf16_tflops();
  std::printf("ceiling: cuBLAS bf16 GEMM 8192^3 %.0f TFLOP/s (tensor cores, fp32 accumulation)\n\n", gemm);

  std::vector<std::string> header = {"d", "N", "causal", "B x H"};
  for (ch07::Rung rung : rungs) header.push_back(rung_column(rung));
  header.insert(header.end(), {"best of GEMM", "check"});
  course::Table table(header);
  std::map<std::pair<long long, long long>, double> non_causal_best;  // (d, N) -> TFLOP/s
  bool all_ok = true;
  double best_overall = 0, worst_causal_ratio = 1e9;
  for (long long d : dims)
    for (long long n : seqs)
      for (bool causal : {false, true}) {
        const int batch = int(std::max(1LL, tokens / n)), heads = int(hidden / d);
        const course::AttentionShape shape{batch, heads, int(n), int(n), int(d)};
        std::printf("  N = %lld, d = %lld, %s, %s\n", n, d, causal ? "causal" : "no mask",
                    course::describe(shape).c_str());
        std::fflush(stdout);
        course::AttentionProblemOf<T> problem(shape, causal, course::pick_seed(), o_tolerance,
                                              course::tolerance::lse_mma);
        std::vector<std::string> row = {std::to_string(d), std::to_string(n), causal ? "yes" : "no",
                                        std::to_string(batch) + " x " + std::to_string(heads)};
        bool ok = true;
        double best = 0;
        for (ch07::Rung rung : rungs) {
          const auto result = course::bench_attention(
              problem,
              [&](cudaStream_t st) {
                ch07::flash_attention(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                                      problem.lse.data(), shape, problem.scale, problem.mask(), rung, st);
              },
              repeats, rung_column(rung) + " " + course::describe(shape));
          ok = ok && result.ok;
          best = std::max(best, result.tflops);
          row.push_back(course::fmt(result.tflops, 0));
        }
        if (!causal) non_causal_best[{d, n}] = best;
        if (causal && non_causal_best.count({d, n}))
          worst_causal_ratio = std::min(worst_causal_ratio, best / non_causal_best[{d, n}]);
        best_overall = std::max(best_overall, best);
        all_ok = all_ok && ok;
        row.push_back(course::fmt(100.0 * best / gemm, 0) + "%");
        row.push_back(ok ? "ok" : "WRONG");
        table.add_row(row);
      }
  std::printf("\n");
  table.print();
  std::printf("\n%s, %s; TFLOP/s of each rung: medians of up to %d runs, L2 flushed before each, crediting\n"
              "4 N^2 d per head (half when causal); GEMM: cuBLAS bf16 8192^3 in this run, %.0f TFLOP/s.\n"
              "Best: %.0f TFLOP/s (%.0f%% of the GEMM)",
              gpu.prop.name, dtype, repeats, gemm, best_overall, 100.0 * best_overall / gemm);
  if (worst_causal_ratio < 1e9) std::printf("; causal at least %.0f%% of non-causal", 100.0 * worst_causal_ratio);
  std::printf(".\n");
  return int(all_ok ? course::kExitOk : course::kExitWrongResult);
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 07 - flash attention on tensor cores (mma.sync, fp16/bf16 inputs, fp32 accumulation):\n"
                  "checks and times each rung of the optimization ladder against a cuBLAS bf16 GEMM.");
  const auto seqs = cli.integers("--seq", {512, 1024, 4096, 16384}, "sequence lengths N (n_q = n_k = N)");
  const auto dims = cli.integers("--head-dim", {64, 128}, "head dimensions d (64 or 128)");
  const long long tokens = cli.integer("--tokens", 16384, "batch * N: B = tokens / N (at least 1)");
  const long long hidden = cli.integer("--hidden", 2048, "model width: heads = hidden / d");
  const auto rung_numbers =
      cli.integers("--rungs", {1, 2, 3, 4, 5, 6}, "rungs of the ladder to time (1 to 6; 6 on an H100/H200 only)");
  const std::string dtype = cli.text("--dtype", "bf16", "storage type of Q, K, V and O: bf16 or fp16");
  const long long repeats = cli.integer("--repeats", 5, "timed runs per rung; the median is reported");
  cli.finish();
  for (long long n : seqs) cli.require(n >= 1 && n <= (1 << 20), "every --seq must be in [1, 2^20]");
  for (long long d : dims)
    cli.require(ch07::supports_head_dim(int(d)), "every --head-dim must be one the kernel supports: 64 or 128");
  cli.require(tokens >= 1 && tokens <= (1 << 24), "--tokens must be in [1, 2^24]");
  for (long long d : dims) cli.require(hidden % d == 0, "--hidden must be a multiple of every --head-dim");
  for (long long r : rung_numbers) cli.require(r >= 1 && r <= 6, "every --rungs must be in [1, 6]");
  cli.require(dtype == "bf16" || dtype == "fp16", "--dtype must be bf16 or fp16");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");
  std::vector<ch07::Rung> rungs;
  for (long long r : rung_numbers) rungs.push_back(ch07::Rung(r));

  return course::guarded_main([&] {
    draw_accumulator();
    draw_swizzle();
    if (dtype == "fp16")
      return run_ladder<__half>(seqs, dims, tokens, hidden, rungs, int(repeats), "fp16",
                                course::tolerance::attention_fp16_mma);
    return run_ladder<__nv_bfloat16>(seqs, dims, tokens, hidden, rungs, int(repeats), "bf16",
                                     course::tolerance::attention_bf16_mma);
  });
}
