// Chapter 08 — decode attention over a KV cache: split-KV, grouped-query attention, FP8.
//
// Shows why one block per (sequence, kv head) starves the GPU at batch 1, then checks and
// times decode_attention over fp16 and FP8 caches of Llama-like heads (32 query heads, 8 kv
// heads of 128) for batch 1, 8 and 64 and cache lengths 1k to 128k, as bytes of cache read
// per second against the device-to-device copy, and against chapter 06's kernel run with
// one query (fp32, where its cache fits).
#include "decode_attention.hpp"

#include "flash_attention.hpp"  // chapter 06, to compare with

#include "course/attention.hpp"
#include "course/attention_bench.hpp"
#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/compare.hpp"
#include "course/cuda_check.hpp"
#include "course/device_random.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/table.hpp"
#include "course/timing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

constexpr double kGiB = double(1 << 30);

struct Cache {
  ch08::CacheShape shape;
  course::DeviceBuffer<__half> q, K, V, O;
  course::DeviceBuffer<std::uint8_t> K8, V8;
  course::DeviceBuffer<float> K_scale, V_scale, lse;
  course::DeviceBuffer<int> lengths;
  explicit Cache(const ch08::CacheShape& s)
      : shape(s),
        q(std::size_t(s.batch) * s.heads * s.head_dim),
        K(elements(s)),
        V(elements(s)),
        O(q.size()),
        K8(elements(s)),
        V8(elements(s)),
        K_scale(elements(s) / s.head_dim),
        V_scale(elements(s) / s.head_dim),
        lse(std::size_t(s.batch) * s.heads),
        lengths(std::vector<int>(s.batch, s.max_len)) {
    const std::uint64_t seed = course::pick_seed();
    course::fill_logits(q.data(), q.size(), seed);
    course::fill_logits(K.data(), K.size(), seed + 1, 0.5f);
    course::fill_logits(V.data(), V.size(), seed + 2, 0.5f);
    ch08::quantize_fp8(K.data(), K8.data(), K_scale.data(), K_scale.size(), s.head_dim, nullptr);
    ch08::quantize_fp8(V.data(), V8.data(), V_scale.data(), V_scale.size(), s.head_dim, nullptr);
  }
  static std::size_t elements(const ch08::CacheShape& s) {
    return std::size_t(s.batch) * s.kv_heads * s.max_len * s.head_dim;
  }
  ch08::Fp8Cache fp8() const { return {K8.data(), V8.data(), K_scale.data(), V_scale.data()}; }
};

// Checks O and lse of a few (sequence, head) pairs against the float64 reference on the
// cache as the kernel reads it (fp16 values, or E4M3 bytes times their row's scale).
bool check_pairs(const Cache& c, bool fp8, const std::string& what) {
  const ch08::CacheShape& s = c.shape;
  const int d = s.head_dim, L = s.max_len;
  const std::vector<std::size_t> pairs = course::sample_rows(std::size_t(s.batch) * s.heads, 4);
  const auto q = course::widen(c.q.download_rows(d, pairs));
  const auto O = course::widen(c.O.download_rows(d, pairs));
  const auto lse = c.lse.download_rows(1, pairs);
  std::vector<double> want_O(pairs.size() * d), want_lse(pairs.size()), got_lse(lse.begin(), lse.end());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const std::size_t head = (pairs[i] / s.heads) * s.kv_heads + (pairs[i] % s.heads) / s.group();
    const std::size_t rows = std::size_t(L) * d;
    std::vector<float> K(rows), V(rows), qf(q.begin() + i * d, q.begin() + (i + 1) * d);
    if (fp8) {
      const auto k8 = c.K8.download_rows(rows, {head}), v8 = c.V8.download_rows(rows, {head});
      const auto ks = c.K_scale.download_rows(L, {head}), vs = c.V_scale.download_rows(L, {head});
      for (std::size_t e = 0; e < rows; ++e) {
        K[e] = ch08::e4m3_to_float(k8[e]) * ks[e / d];
        V[e] = ch08::e4m3_to_float(v8[e]) * vs[e / d];
      }
    } else {
      const auto k = course::widen(c.K.download_rows(rows, {head})), v = course::widen(c.V.download_rows(rows, {head}));
      std::copy(k.begin(), k.end(), K.begin());
      std::copy(v.begin(), v.end(), V.begin());
    }
    want_lse[i] = course::reference::attention_row(qf.data(), K.data(), V.data(), L, d,
                                                   course::default_scale(d), &want_O[i * d]);
  }
  auto report = course::compare(O, want_O, course::tolerance::attention_fp16_mma, {pairs.size(), std::size_t(d)},
                                what + ", O (sampled heads)");
  if (report.ok)
    report = course::compare(got_lse, want_lse, course::tolerance::lse_mma, {pairs.size(), 1}, what + ", lse");
  if (!report.ok) std::fprintf(stderr, "%s\n", report.message.c_str());
  return report.ok;
}

// The split counts choose_splits picks for the heads of `unit` at a few batches and lengths,
// with fp16_blocks / fp8_blocks split blocks fitting on an SM.
void explain_splits(int sm_count, const ch08::CacheShape& unit, int fp16_blocks, int fp8_blocks) {
  const int kv_heads = unit.kv_heads;
  std::printf("Decoding: one query per head against the whole cache. Without splitting, a block per\n"
              "(sequence, kv head) gives batch * %d blocks for %d kv heads: %d at batch 1, on %d SMs.\n"
              "Split-KV cuts each cache into chunks that different blocks score, then merges their\n"
              "(max, sum, output) states. Splits chosen here (one wave of as many blocks as fit on each\n"
              "SM: %d for fp16, %d for FP8, whose tiles take half the shared memory; chunks of at\n"
              "least 256), fp16 / FP8:\n",
              kv_heads, kv_heads, kv_heads, sm_count, fp16_blocks, fp8_blocks);
  for (int batch : {1, 8, 64}) {
    std::printf("  batch %2d:", batch);
    for (int L : {1024, 4096, 32768, 131072}) {
      const ch08::CacheShape s{batch, unit.heads, kv_heads, L, unit.head_dim};
      std::printf("  %6d positions -> %2d / %2d", L, ch08::choose_splits(s, sm_count, fp16_blocks),
                  ch08::choose_splits(s, sm_count, fp8_blocks));
    }
    std::printf("\n");
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 08 - decode attention over a KV cache: split-KV, grouped-query attention and an\n"
                  "FP8 cache. Checks and times one decoding step as bytes of cache read per second.");
  const auto batches = cli.integers("--batch", {1, 8, 64}, "batch sizes (sequences decoding at once)");
  const auto lengths = cli.integers("--len", {1024, 4096, 16384, 32768, 131072}, "cache lengths (positions)");
  const long long heads = cli.integer("--heads", 32, "query heads");
  const long long kv_heads = cli.integer("--kv-heads", 8, "key/value heads (heads / kv_heads: 1, 2, 4 or 8)");
  const long long head_dim = cli.integer("--head-dim", 128, "head dimension (64 or 128)");
  const long long splits_flag = cli.integer("--splits", 0, "split count (0: choose_splits)");
  const long long repeats = cli.integer("--repeats", 20, "timed runs per version; the median is reported");
  cli.finish();
  for (long long b : batches) cli.require(b >= 1 && b <= 4096, "every --batch must be in [1, 4096]");
  for (long long L : lengths) cli.require(L >= 1 && L <= (1 << 22), "every --len must be in [1, 2^22]");
  cli.require(heads >= 1 && kv_heads >= 1 && heads <= 1024, "--heads and --kv-heads must be in [1, 1024]");
  cli.require(ch08::supports({1, int(heads), int(kv_heads), 1, int(head_dim)}),
              "unsupported --heads / --kv-heads / --head-dim: head_dim 64 or 128, heads / kv_heads 1, 2, 4 or 8");
  cli.require(splits_flag >= 0 && splits_flag <= ch08::kMaxSplits, "--splits must be in [0, 128]");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");

  return course::guarded_main([&] {
    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    if (gpu.prop.major < ch08::kMinMajor) {  // exit 3; ctest reports the tour as skipped, not failed
      std::printf("[course] SKIPPED the GPU part: this GPU is sm_%d%d\n", gpu.prop.major, gpu.prop.minor);
      std::fprintf(stderr, "chapter 08 needs a GPU of sm_80 or newer (mma.sync, ldmatrix, cp.async); this one is "
                           "sm_%d%d\n", gpu.prop.major, gpu.prop.minor);
      return int(course::kExitUnsupported);
    }
    // Split blocks per SM depend on the heads and the cache type, not on batch or length.
    const int sm_count = gpu.prop.multiProcessorCount;
    const ch08::CacheShape unit{1, int(heads), int(kv_heads), 1, int(head_dim)};
    const int fp16_blocks = ch08::resident_blocks(unit, false), fp8_blocks = ch08::resident_blocks(unit, true);
    explain_splits(sm_count, unit, fp16_blocks, fp8_blocks);
    std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
    const double copy_gbps = course::measure_copy_gbps();
    std::printf("device-to-device copy: %.0f GB/s (read + write), the ceiling\n\n", copy_gbps);

    course::Table table({"batch", "positions", "fp16 cache", "splits fp16 / FP8", "fp16", "fp16 BW", "of copy",
                         "FP8", "FP8 BW", "of copy", "FP8 speedup", "ch06, n_q = 1", "check"});
    bool all_ok = true;
    double worst_big = 1e9, worst_batch1 = 1e9, worst_fp8_speedup = 1e9;
    const course::TimingConfig timing{3, int(repeats), true};
    for (long long batch : batches)
      for (long long L : lengths) {
        const ch08::CacheShape s{int(batch), int(heads), int(kv_heads), int(L), int(head_dim)};
        const double fp16_bytes = 2.0 * Cache::elements(s) * sizeof(__half);
        const double fp8_bytes = 2.0 * Cache::elements(s) * (1 + 4.0 / s.head_dim);  // bytes + scales
        std::size_t free_bytes = 0, total_bytes = 0;
        COURSE_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
        if (fp16_bytes + fp8_bytes > 0.9 * double(free_bytes)) {
          table.add_row({std::to_string(batch), std::to_string(L), course::fmt(fp16_bytes / kGiB, 2) + " GiB",
                         "does not fit", "", "", "", "", "", "", "", "", "-"});
          continue;
        }
        std::printf("  batch %lld, %lld positions\n", batch, L);
        std::fflush(stdout);
        Cache c(s);
        // Splits for each cache type: FP8's smaller tiles fit more blocks on an SM.
        const int splits16 = splits_flag ? int(splits_flag) : ch08::choose_splits(s, sm_count, fp16_blocks);
        const int splits8 = splits_flag ? int(splits_flag) : ch08::choose_splits(s, sm_count, fp8_blocks);
        course::DeviceBuffer<unsigned char> workspace(ch08::workspace_bytes(s, std::max(splits16, splits8)));
        const float scale = course::default_scale(s.head_dim);
        auto run_fp16 = [&](cudaStream_t st) {
          ch08::decode_attention(c.q.data(), c.K.data(), c.V.data(), c.lengths.data(), c.O.data(), c.lse.data(), s,
                                 scale, splits16, workspace.data(), st);
        };
        auto run_fp8 = [&](cudaStream_t st) {
          ch08::decode_attention(c.q.data(), c.fp8(), c.lengths.data(), c.O.data(), c.lse.data(), s, scale, splits8,
                                 workspace.data(), st);
        };
        c.O.poison();
        run_fp16(nullptr);
        bool ok = check_pairs(c, false, "decode_attention fp16, batch " + std::to_string(batch) + ", " +
                                            std::to_string(L) + " positions");
        c.O.poison();
        run_fp8(nullptr);
        ok = check_pairs(c, true, "decode_attention FP8, batch " + std::to_string(batch) + ", " + std::to_string(L) +
                                      " positions") && ok;
        const double fp16_ms = course::time_gpu(run_fp16, timing).median_ms;
        const double fp8_ms = course::time_gpu(run_fp8, timing).median_ms;
        const double fp16_gbps = course::gb_per_s(fp16_bytes, fp16_ms), fp8_gbps = course::gb_per_s(fp8_bytes, fp8_ms);

        // Chapter 06 with one query per head: fp32, the kv heads repeated for every query head.
        std::string ch06 = "-";
        const course::AttentionShape flash_shape{int(batch), int(heads), 1, int(L), int(head_dim)};
        if (double(course::attention_io_bytes(flash_shape)) < std::min(8 * kGiB, 0.3 * double(free_bytes))) {
          course::AttentionProblem problem(flash_shape, false, course::pick_seed());
          const auto flash = course::bench_attention(
              problem,
              [&](cudaStream_t st) {
                ch06::flash_attention(problem.Q.data(), problem.K.data(), problem.V.data(), problem.O.data(),
                                      problem.lse.data(), flash_shape, problem.scale, problem.mask(), st);
              },
              int(repeats), "chapter 06 flash_attention, one query");
          ok = ok && flash.ok;
          ch06 = course::fmt_us(flash.ms) + " (" + course::fmt(flash.ms / fp16_ms, 0) + "x)";
        }
        all_ok = all_ok && ok;
        const double pct16 = 100 * fp16_gbps / copy_gbps;
        if (fp16_bytes >= 256e6) worst_big = std::min(worst_big, pct16);
        if (batch == 1 && L >= 32768) worst_batch1 = std::min(worst_batch1, pct16);
        if (L >= 32768) worst_fp8_speedup = std::min(worst_fp8_speedup, fp16_ms / fp8_ms);
        table.add_row({std::to_string(batch), std::to_string(L), course::fmt(fp16_bytes / (1 << 20), 0) + " MiB",
                       std::to_string(splits16) + " / " + std::to_string(splits8), course::fmt_us(fp16_ms),
                       course::fmt(fp16_gbps, 0) + " GB/s", course::fmt(pct16, 0) + "%", course::fmt_us(fp8_ms),
                       course::fmt(fp8_gbps, 0) + " GB/s",
                       course::fmt_pct(fp8_gbps, copy_gbps), course::fmt(fp16_ms / fp8_ms, 2) + "x", ch06,
                       ok ? "ok" : "WRONG"});
      }
    std::printf("\n");
    table.print();
    std::printf("\n%s; heads %lld, kv heads %lld, head_dim %lld; medians of %lld runs, L2 flushed before each.\n"
                "BW counts the cache bytes read (K and V; FP8 with its scales) over the time of one step.\n",
                gpu.prop.name, heads, kv_heads, head_dim, repeats);
    if (worst_big < 1e9) std::printf("fp16, caches of 256 MB and more: at least %.0f%% of copy (target 85%%)\n", worst_big);
    if (worst_batch1 < 1e9) std::printf("fp16, batch 1, 32k+ positions: at least %.0f%% of copy (target 70%%)\n", worst_batch1);
    if (worst_fp8_speedup < 1e9)
      std::printf("FP8 over fp16, 32k+ positions: at least %.2fx faster (target 1.8x)\n", worst_fp8_speedup);
    return int(all_ok ? course::kExitOk : course::kExitWrongResult);
  });
}
