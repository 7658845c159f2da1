// Chapter 04 — masked softmax, and fusing scale + mask + softmax into one pass.
//
// Draws the causal and padding masks of a few small shapes (bottom-right alignment: the
// last query sees every key), shows the fully-masked-row NaN trap on the CPU, then checks
// and times the unfused pipeline (scale, mask, row max, normalise: four kernels) against
// the fused kernel on GPT-2-like score tensors [B * 12, N, N] and a long decoding row
// [B * 12, 1, 65536], with and without masks, against the copy bandwidth.
#include "masked_softmax.hpp"

#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/compare.hpp"
#include "course/device_buffer.hpp"
#include "course/device_random.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/reference.hpp"
#include "course/table.hpp"
#include "course/timing.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

// One small shape's mask, drawn from the float64 reference (x: kept, .: masked), next to
// the chapter's visible_end (yours, in the exercises track). False if they disagree.
bool draw_mask(const char* title, int n_q, int n_k, bool causal, int key_length) {
  std::printf("  %s: n_q = %d, n_k = %d%s, key length %d\n       key:", title, n_q, n_k,
              causal ? ", causal" : "", key_length);
  for (int j = 0; j < n_k; ++j) std::printf(" %d", j % 10);
  std::printf("   visible_end\n");
  const std::vector<double> zeros(n_k, 0.0);  // equal scores: y is uniform over the kept keys
  bool agree = true;
  for (int i = 0; i < n_q; ++i) {
    const auto y = course::reference::masked_softmax_row(zeros.data(), i, n_q, n_k, 1.0, causal, key_length, nullptr);
    const int kept = int(std::count_if(y.begin(), y.end(), [](double p) { return p > 0; }));
    const int end = ch04::visible_end(i, n_q, n_k, causal, key_length);
    std::printf("  query %2d:", i);
    for (double p : y) std::printf(" %c", p > 0 ? 'x' : '.');
    std::printf("   %d%s%s\n", end, kept == 0 ? "  (sees nothing: y = 0)" : "",
                end == kept ? "" : "  <- the reference keeps a different number of keys");
    agree = agree && end == kept;
  }
  std::printf("\n");
  return agree;
}

bool explain_masks() {
  std::printf("Masked softmax: y = softmax(scale * S) over the keys each query may see, and exactly 0\n"
              "at every other key. The causal mask is aligned bottom-right: query i of n_q sees keys\n"
              "j <= i + (n_k - n_q), so the last query sees every key, the way new tokens line up with\n"
              "the end of a KV cache. Padding hides keys j >= key_length of the row's batch. Both\n"
              "hide a suffix of the row: keys [0, visible_end) are all a kernel has to read.\n\n");
  bool ok = draw_mask("causal + padding", 6, 6, true, 4);
  ok &= draw_mask("decoding, causal", 1, 6, true, 6);
  ok &= draw_mask("n_q > n_k, causal", 6, 4, true, 4);
  if (!ok) std::fprintf(stderr, "visible_end disagrees with the reference's masks: check TODO(04.1)\n");
  return ok;
}

std::string show(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  return course::fmt(v, 4);
}

// The trap, computed in float on the CPU as a kernel would.
void show_nan_trap() {
  std::vector<float> row(4, -INFINITY);  // a row whose every key is masked
  float m = -INFINITY, l = 0.0f;
  for (float x : row) m = std::fmax(m, x);
  for (float x : row) l += std::exp(x - m);
  const float y0 = l == 0.0f ? 0.0f : std::exp(row[0] - m) / l;
  std::printf("The fully masked row: every logit is -inf. Chapter 02's safe softmax, in float:\n"
              "  m = max(x) = %s;  x - m = -inf - (-inf) = %s;  l = sum exp(x - m) = %s\n"
              "  a guard 'if (l == 0) write 0' never fires (l is %s, not 0): y[0] = %s\n"
              "Decide from the state instead: m == -inf means the row sees nothing, so y = 0,\n"
              "before any x - m is formed.\n\n",
              show(m).c_str(), show(row[0] - m).c_str(), show(l).c_str(), show(l).c_str(), show(y0).c_str());
}

struct Config {
  ch04::ScoreShape shape;
  bool causal;
  bool padded;  // random key lengths in [1, n_k]
};

std::string mask_name(const Config& c) {
  return c.causal && c.padded ? "causal+pad" : c.causal ? "causal" : c.padded ? "padding" : "none";
}

// Checks rows `which` of y against the float64 reference of the same rows of S.
template <class T>
course::CompareReport check_rows(const course::DeviceBuffer<T>& S, const course::DeviceBuffer<T>& y,
                                 const Config& c, float scale, const std::vector<int>& key_lengths,
                                 const std::string& what) {
  const ch04::ScoreShape& s = c.shape;
  const std::size_t rows = std::size_t(s.batch) * s.heads * s.n_q;
  const std::vector<std::size_t> which = course::sample_rows(rows, 8);
  const std::vector<double> x = course::widen(S.download_rows(s.n_k, which));
  const std::vector<double> got = course::widen(y.download_rows(s.n_k, which));
  std::vector<double> ref;
  for (std::size_t i = 0; i < which.size(); ++i) {
    const int query = int(which[i] % s.n_q), batch = int(which[i] / (std::size_t(s.n_q) * s.heads));
    const auto want = course::reference::masked_softmax_row(&x[i * s.n_k], query, s.n_q, s.n_k, scale, c.causal,
                                                            key_lengths.empty() ? s.n_k : key_lengths[batch], nullptr);
    ref.insert(ref.end(), want.begin(), want.end());
  }
  return course::compare(got, ref, course::DType<T>::prob, {which.size(), std::size_t(s.n_k)}, what + " (sampled rows)");
}

struct Results {
  double copy_gbps;
  int repeats;
  bool all_ok = true;
  double worst_pct = 1e9, best_pct = 0, worst_speedup = 1e9, best_speedup = 0;
};

template <class T>
void run_config(course::Table& table, const Config& c, Results& results) {
  const ch04::ScoreShape& s = c.shape;
  const std::size_t rows = std::size_t(s.batch) * s.heads * s.n_q, count = rows * s.n_k;
  const float scale = 0.125f;  // 1/sqrt(d), d = 64
  const std::string shape = "[" + std::to_string(s.batch) + "*" + std::to_string(s.heads) + ", " +
                            std::to_string(s.n_q) + ", " + std::to_string(s.n_k) + "]";
  std::printf("  %s %s, mask %s\n", shape.c_str(), course::DType<T>::name, mask_name(c).c_str());
  std::fflush(stdout);

  course::DeviceBuffer<T> S(count), y(count);
  course::DeviceBuffer<float> scaled(count), row_max(rows);
  course::fill_logits(S.data(), count, course::pick_seed(), 8.0f);  // q.k over d = 64: spread ~8, x20 outliers
  std::vector<int> key_lengths;
  if (c.padded) {
    course::Rng rng(course::pick_seed());
    for (int b = 0; b < s.batch; ++b) key_lengths.push_back(rng.uniform_int(1, s.n_k));
  }
  course::DeviceBuffer<int> d_lengths(key_lengths);
  const ch04::Mask mask{c.causal, d_lengths.data(), nullptr};

  auto run_fused = [&](cudaStream_t st) { ch04::masked_softmax(S.data(), y.data(), s, scale, mask, st); };
  auto run_unfused = [&](cudaStream_t st) {
    ch04::masked_softmax_unfused(S.data(), y.data(), s, scale, mask, scaled.data(), row_max.data(), st);
  };
  y.poison();
  run_unfused(nullptr);
  const auto unfused_report = check_rows(S, y, c, scale, key_lengths, "unfused");
  y.poison();
  run_fused(nullptr);
  const auto fused_report = check_rows(S, y, c, scale, key_lengths, "fused");
  for (const auto* r : {&unfused_report, &fused_report})
    if (!r->ok) std::fprintf(stderr, "%s\n", r->message.c_str());
  const bool ok = unfused_report.ok && fused_report.ok;

  const course::TimingConfig timing{3, results.repeats, true};
  const double unfused_ms = course::time_gpu(run_unfused, timing).median_ms;
  const double fused_ms = course::time_gpu(run_fused, timing).median_ms;
  double unfused_bytes = 0;
  for (const auto& k : ch04::unfused_traffic(s, sizeof(T), c.causal, c.padded, false)) unfused_bytes += k.bytes;
  const double fused_bytes = ch04::fused_traffic(s, sizeof(T), c.causal, key_lengths, false);
  const double fused_gbps = course::gb_per_s(fused_bytes, fused_ms);
  const double speedup = unfused_ms / fused_ms;

  results.all_ok = results.all_ok && ok;
  results.worst_pct = std::min(results.worst_pct, 100 * fused_gbps / results.copy_gbps);
  results.best_pct = std::max(results.best_pct, 100 * fused_gbps / results.copy_gbps);
  results.worst_speedup = std::min(results.worst_speedup, speedup);
  results.best_speedup = std::max(results.best_speedup, speedup);
  table.add_row({shape, course::DType<T>::name, mask_name(c), course::fmt(unfused_bytes / 1e6, 0) + " MB",
                 course::fmt(fused_bytes / 1e6, 0) + " MB", course::fmt_us(unfused_ms), course::fmt_us(fused_ms),
                 course::fmt(speedup, 1) + "x",
                 course::fmt(course::gb_per_s(unfused_bytes, unfused_ms), 0) + " GB/s",
                 course::fmt(fused_gbps, 0) + " GB/s", course::fmt_pct(fused_gbps, results.copy_gbps),
                 ok ? "ok" : "WRONG"});
}

void print_traffic(const ch04::ScoreShape& s, int value_bytes, const char* dtype) {
  std::printf("What each kernel moves, [%d*%d, %d, %d] %s, causal (MB; every buffer once per kernel):\n",
              s.batch, s.heads, s.n_q, s.n_k, dtype);
  double total = 0;
  for (const auto& k : ch04::unfused_traffic(s, value_bytes, true, false, false)) {
    std::printf("  unfused %-41s %10.0f\n", k.kernel.c_str(), k.bytes / 1e6);
    total += k.bytes;
  }
  const double fused = ch04::fused_traffic(s, value_bytes, true, {}, false);
  std::printf("  unfused, total %44.0f\n  fused: the visible part read once, y written once %10.0f   (%.1fx less)\n\n",
              total / 1e6, fused / 1e6, total / fused);
}

// B so that B * heads * n_q * n_k is close to `elements` (at least 1).
int batch_for(long long elements, int heads, int n_q, int n_k) {
  return int(std::max(1.0, std::round(double(elements) / (double(heads) * n_q * n_k))));
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 04 - masked softmax, and fusing scale + mask + softmax into one pass.\n"
                  "Draws the masks, shows the fully-masked-row NaN trap, then checks and times the\n"
                  "unfused pipeline (4 kernels) against the fused kernel.");
  const auto seqs = cli.integers("--seq", {512, 1024, 4096}, "N of the [B * heads, N, N] score tensors");
  const long long decode_keys = cli.integer("--decode-keys", 65536, "n_k of the decoding shape [B * heads, 1, n_k]");
  const long long heads = cli.integer("--heads", 12, "heads (GPT-2 small: 12)");
  const long long elements = cli.integer("--elements", 1 << 27, "about how many scores each tensor holds (B follows)");
  const long long repeats = cli.integer("--repeats", 20, "timed runs per version; the median is reported");
  cli.finish();
  for (long long n : seqs) cli.require(n >= 1 && n <= 65536, "every --seq must be in [1, 65536]");
  cli.require(decode_keys >= 1 && decode_keys <= (1 << 24), "--decode-keys must be in [1, 2^24]");
  cli.require(heads >= 1 && heads <= 1024, "--heads must be in [1, 1024]");
  cli.require(elements >= 1 && elements <= (1LL << 30), "--elements must be in [1, 2^30]");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");

  return course::guarded_main([&] {
    if (!explain_masks()) return int(course::kExitWrongResult);
    show_nan_trap();

    std::vector<std::pair<Config, bool>> configs;  // (config, fp32?)
    for (long long n : seqs) {
      const int N = int(n), B = batch_for(elements, int(heads), N, N);
      for (bool causal : {false, true}) configs.push_back({{{B, int(heads), N, N}, causal, false}, false});
    }
    {  // fp32 for one shape: the middle one
      const int N = int(seqs[seqs.size() / 2]), B = batch_for(elements, int(heads), N, N);
      for (bool causal : {false, true}) configs.push_back({{{B, int(heads), N, N}, causal, false}, true});
    }
    {  // decoding: one query over a long cache; causal changes nothing (bottom-right), padding does
      const int K = int(decode_keys), B = batch_for(elements, int(heads), 1, K);
      for (Config c : {Config{{B, int(heads), 1, K}, false, false}, Config{{B, int(heads), 1, K}, true, false},
                       Config{{B, int(heads), 1, K}, false, true}})
        configs.push_back({c, false});
    }
    double most_bytes = 0;
    for (const auto& [c, fp32] : configs) {
      const double count = double(c.shape.batch) * c.shape.heads * c.shape.n_q * c.shape.n_k;
      most_bytes = std::max(most_bytes, count * (2 * (fp32 ? 4 : 2) + 4));  // S, y, the fp32 workspace
    }
    print_traffic(configs.front().first.shape, 2, "fp16");

    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    if (most_bytes > 0.8 * gpu.prop.totalGlobalMem) {
      std::fprintf(stderr, "these sizes need %.1f GiB of GPU memory; %s has %.1f GiB (lower --elements)\n",
                   most_bytes / (1 << 30), gpu.prop.name, gpu.prop.totalGlobalMem / double(1 << 30));
      return int(course::kExitUnsupported);
    }
    std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
    std::printf("the fused kernel keeps rows of up to %d fp32 or %d fp16/bf16 scores on chip here\n",
                ch04::fused_max_cols(4), ch04::fused_max_cols(2));
    Results results;
    results.copy_gbps = course::measure_copy_gbps();
    results.repeats = int(repeats);
    std::printf("device-to-device copy: %.0f GB/s (read + write), the ceiling\n\n", results.copy_gbps);

    course::Table table({"shape", "dtype", "mask", "unfused moves", "fused moves", "unfused", "fused", "speedup",
                         "unfused BW", "fused BW", "fused of copy", "check"});
    for (const auto& [c, fp32] : configs) {
      if (fp32)
        run_config<float>(table, c, results);
      else
        run_config<__half>(table, c, results);
    }
    std::printf("\n");
    table.print();
    std::printf("\n%s; medians of %lld runs, L2 flushed before each. Bandwidth counts the bytes each\n"
                "version must move: fused, the visible scores read once and every output written once;\n"
                "unfused, the sum over its kernels (every buffer once per kernel).\n"
                "fused: %.0f%% to %.0f%% of copy (target: 90%%); %.1fx to %.1fx faster than unfused (target: 6x).\n",
                gpu.prop.name, repeats, results.worst_pct, results.best_pct, results.worst_speedup,
                results.best_speedup);
    return int(results.all_ok ? course::kExitOk : course::kExitWrongResult);
  });
}
