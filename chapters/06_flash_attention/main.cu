// Chapter 06 — flash attention, tiled, in fp32 on CUDA cores.
//
// Draws the walk of a causal problem over its tiles (which are skipped, which are masked
// inside), counts the bytes flash attention and chapter 05 move, then checks and times
// flash_attention against chapter 05's two paths on B * N = 16k tokens of a 2048-wide
// model, head_dim 64 and 128, causal and not, up to N = 64k where chapter 05 cannot run.
#include "flash_attention.hpp"

#include "attention.hpp"  // chapter 05, to compare with

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

// The grid of (query tile, key tile) pairs of one head, as one causal block walks it:
// '#' every score visible, '\' the diagonal (masked inside), '.' never loaded.
void draw_walk(int n, int key_tile) {
  const int q_tiles = (n + ch06::kQueryTile - 1) / ch06::kQueryTile, k_tiles = (n + key_tile - 1) / key_tile;
  std::printf("The walk, causal, N = %d: one row per block of %d queries, one column per tile of %d keys\n"
              "('#' all visible, '\\' partly masked, '.' skipped: never read):\n",
              n, ch06::kQueryTile, key_tile);
  long visited = 0;
  for (int qt = 0; qt < q_tiles; ++qt) {
    const int first_q = qt * ch06::kQueryTile, last_q = std::min(n, first_q + ch06::kQueryTile) - 1;
    std::printf("  queries %5d..%-5d ", first_q, last_q);
    for (int kt = 0; kt < k_tiles; ++kt) {
      const int first_k = kt * key_tile, last_k = std::min(n, first_k + key_tile) - 1;
      const int first_end = course::visible_keys(first_q, n, n, true, n);  // the block's first query sees [0, this)
      const int last_end = course::visible_keys(last_q, n, n, true, n);
      const char cell = first_k >= last_end ? '.' : last_k < first_end ? '#' : '\\';
      visited += cell != '.';
      std::printf("%c", cell);
    }
    std::printf("\n");
  }
  std::printf("  %ld of %ld tiles visited: causal does about half the work.\n\n", visited, long(q_tiles) * k_tiles);
}

// What each version moves through global memory for one head (fp32), at least.
void print_traffic(int n, int d) {
  const double q_tiles = (n + ch06::kQueryTile - 1) / ch06::kQueryTile;
  // flash: Q read and O written once; K and V read once per query block.
  const double flash = 4.0 * (2.0 * n * d + q_tiles * 2.0 * n * d + n);
  // chapter 05: S written, read twice; P written, read once (Q, K, V, O aside).
  const double materialized = 4.0 * 5.0 * double(n) * n;
  std::printf("Bytes moved per head at N = %d, d = %d: chapter 05 at least %.0f MB (S and P), flash attention\n"
              "%.0f MB (K and V once per block of %d queries): %.1fx less. FLOPs are the same: 4 N^2 d = %.2f GFLOP.\n\n",
              n, d, materialized / 1e6, flash / 1e6, ch06::kQueryTile, materialized / flash,
              4.0 * n * double(n) * d / 1e9);
}

struct Row {
  std::string time, tflops, memory;
};

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 06 - flash attention, tiled, fp32 on CUDA cores: a block of queries stays on chip\n"
                  "and walks over the keys tile by tile with online softmax. Checks and times it against\n"
                  "chapter 05's materialized paths.");
  const auto seqs = cli.integers("--seq", {512, 1024, 4096, 16384, 65536}, "sequence lengths N (n_q = n_k = N)");
  const auto dims = cli.integers("--head-dim", {64, 128}, "head dimensions d (64 or 128)");
  const long long tokens = cli.integer("--tokens", 16384, "batch * N: B = tokens / N (at least 1)");
  const long long hidden = cli.integer("--hidden", 2048, "model width: heads = hidden / d");
  const long long key_tile = cli.integer("--key-tile", 0, "keys per tile (32 or 64; 0: the default for d)");
  const long long repeats = cli.integer("--repeats", 5, "timed runs per version; the median is reported");
  const bool flash_only = cli.flag("--flash-only", "time flash attention alone, not chapter 05");
  cli.finish();
  for (long long n : seqs) cli.require(n >= 1 && n <= (1 << 20), "every --seq must be in [1, 2^20]");
  for (long long d : dims)
    cli.require(ch06::supports_head_dim(int(d)), "every --head-dim must be one the kernel supports: 64 or 128");
  cli.require(key_tile == 0 || ch06::supports_key_tile(int(key_tile)), "--key-tile must be 0, 32 or 64");
  cli.require(tokens >= 1 && tokens <= (1 << 24), "--tokens must be in [1, 2^24]");
  for (long long d : dims) cli.require(hidden % d == 0, "--hidden must be a multiple of every --head-dim");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");

  return course::guarded_main([&] {
    draw_walk(512, key_tile ? int(key_tile) : ch06::default_key_tile(64));
    print_traffic(4096, 64);
    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
    const double sgemm_tflops = course::measure_sgemm_tflops();
    std::printf("ceiling: cuBLAS SGEMM 4096^3 %.1f TFLOP/s (fp32 on CUDA cores, no TF32)\n\n", sgemm_tflops);

    course::CublasHandle handle;
    course::Table table({"N", "d", "causal", "B x H", "flash", "TFLOP/s", "of SGEMM", "memory", "ch05 in-house",
                         "ch05 cuBLAS", "ch05 memory", "flash vs in-house", "check"});
    bool all_ok = true;
    double worst_pct = 1e9, best_pct = 0, worst_speedup = 1e9;
    for (long long d : dims)
      for (long long n : seqs)
        for (bool causal : {false, true}) {
          const int batch = int(std::max(1LL, tokens / n)), heads = int(hidden / d);
          const course::AttentionShape shape{batch, heads, int(n), int(n), int(d)};
          const double io = double(course::attention_io_bytes(shape));
          const double scores = double(ch05::score_bytes(shape));
          std::size_t free_bytes = 0, total_bytes = 0;
          COURSE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
          if (io > 0.9 * double(free_bytes))
            throw std::runtime_error("N = " + std::to_string(n) + " needs " + course::fmt(io / kGiB, 1) +
                                     " GiB for Q, K, V and O alone; lower --tokens or --seq");
          std::printf("  N = %lld, d = %lld, %s, %s\n", n, d, causal ? "causal" : "no mask",
                      course::describe(shape).c_str());
          std::fflush(stdout);
          course::AttentionProblem problem(shape, causal, course::pick_seed());
          const auto flash = course::bench_attention(
              problem,
              [&](cudaStream_t st) {
                ch06::flash_attention(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                                      problem.lse.data(), shape, problem.scale, problem.mask(), st, int(key_tile));
              },
              int(repeats), "flash_attention " + course::describe(shape));
          bool ok = flash.ok;
          const double pct = 100.0 * flash.tflops / sgemm_tflops;
          worst_pct = std::min(worst_pct, pct);
          best_pct = std::max(best_pct, pct);

          // Chapter 05, where its S and P fit (with room for cuBLAS and the L2 flush).
          std::string in_house = "-", cublas = "-", ch05_memory = "does not fit", speedup = "-";
          if (!flash_only && io + 2 * scores < 0.9 * double(free_bytes)) {
            course::DeviceBuffer<float> S(scores / sizeof(float)), P(scores / sizeof(float));
            const ch05::Workspace workspace{S.data(), P.data()};
            const auto a = course::bench_attention(
                problem,
                [&](cudaStream_t st) {
                  ch05::attention(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                                  problem.lse.data(), shape, problem.scale, problem.mask(), workspace, st);
                },
                int(repeats), "chapter 05 attention " + course::describe(shape));
            const auto b = course::bench_attention(
                problem,
                [&](cudaStream_t st) {
                  ch05::attention_cublas(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                                         problem.lse.data(), shape, problem.scale, problem.mask(), workspace,
                                         handle, st);
                },
                int(repeats), "chapter 05 attention_cublas " + course::describe(shape));
            ok = ok && a.ok && b.ok;
            in_house = course::fmt_us(a.ms);
            cublas = course::fmt_us(b.ms);
            ch05_memory = course::fmt((io + 2 * scores) / kGiB, 2) + " GiB";
            speedup = course::fmt(a.ms / flash.ms, 1) + "x";
            if (n >= 1024) worst_speedup = std::min(worst_speedup, a.ms / flash.ms);
          } else if (flash_only) {
            ch05_memory = "-";
          }
          all_ok = all_ok && ok;
          table.add_row({std::to_string(n), std::to_string(d), causal ? "yes" : "no",
                         std::to_string(batch) + " x " + std::to_string(heads), course::fmt_us(flash.ms),
                         course::fmt(flash.tflops, 2), course::fmt(pct, 0) + "%",
                         course::fmt(io / kGiB, 2) + " GiB", in_house, cublas, ch05_memory, speedup,
                         ok ? "ok" : "WRONG"});
        }
    std::printf("\n");
    table.print();
    std::printf("\n%s; medians of up to %lld runs, L2 flushed before each. TFLOP/s credit 4 N^2 d per head,\n"
                "half when causal; memory is what the version allocates on the GPU (Q, K, V, O, lse; chapter\n"
                "05 adds S and P). flash: %.0f%% to %.0f%% of SGEMM (target: 30%%)",
                gpu.prop.name, repeats, worst_pct, best_pct);
    if (worst_speedup < 1e9) std::printf("; at N >= 1024 at least %.1fx faster than chapter 05 in-house", worst_speedup);
    std::printf(".\n");
    return int(all_ok ? course::kExitOk : course::kExitWrongResult);
  });
}
