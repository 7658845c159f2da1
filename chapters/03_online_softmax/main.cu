// Chapter 03 — online softmax: two reads, then one.
//
// Traces the running state (m, l) over one row, chunk by chunk, so the rescaling can be
// watched (--trace for a longer one, --csv to save it); then checks and times the
// three-pass softmax of chapter 02, the two-read online softmax and the one-read kernel
// side by side, for float32, float16 and bfloat16, against the copy bandwidth.
#include "online_softmax.hpp"
#include "softmax.hpp"  // chapter 02's three-pass kernel, for comparison

#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/gpu.hpp"
#include "course/random.hpp"
#include "course/softmax_bench.hpp"

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

// The state after each chunk of a row, through the chapter's merge (yours, in the
// exercises track): how m grows and how every new max rescales the sum.
bool trace(int cols, int chunk, const std::string& csv_path) {
  course::Rng rng(11);
  std::vector<float> row = rng.normal(cols, 0.0f, 2.0f);
  for (int i = 0; i < cols; ++i) row[i] += 6.0f * i / cols;  // a rising row: the max moves often
  std::FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
  if (!csv_path.empty() && !csv) {
    std::fprintf(stderr, "cannot write %s\n", csv_path.c_str());
    return false;
  }
  if (csv) std::fprintf(csv, "chunk,first_col,chunk_max,m,l,rescale\n");
  std::printf("Online softmax over a row of %d values in chunks of %d. After each chunk the\n"
              "state (m, l) = (max so far, sum of exp(x - m) so far); when the chunk holds a new\n"
              "max, the old sum is rescaled by exp(m_old - m_new) < 1 before the chunk is added.\n\n",
              cols, chunk);
  std::printf("  chunk  cols          chunk max           m           l   rescale of old l\n");
  ch03::MaxSum state{-INFINITY, 0.0f};
  for (int start = 0, k = 0; start < cols; start += chunk, ++k) {
    ch03::MaxSum part{-INFINITY, 0.0f};
    for (int i = start; i < std::min(cols, start + chunk); ++i) part = ch03::merge(part, {row[i], 1.0f});
    const float m_old = state.m;
    state = ch03::merge(state, part);
    const float rescale = m_old == -INFINITY ? 0.0f : std::exp(m_old - state.m);
    std::printf("  %5d  %5d-%-5d  %10.4f  %10.4f  %10.4f   %s\n", k, start, std::min(cols, start + chunk) - 1,
                part.m, state.m, state.l,
                m_old == -INFINITY ? "(first chunk)" : rescale < 1 ? std::to_string(rescale).c_str() : "1 (max unchanged)");
    if (csv) std::fprintf(csv, "%d,%d,%.9g,%.9g,%.9g,%.9g\n", k, start, part.m, state.m, state.l, rescale);
  }
  double m = -INFINITY, l = 0;
  for (float v : row) m = std::fmax(m, v);
  for (float v : row) l += std::exp(double(v) - m);
  std::printf("\n  direct, in double: m = %.4f, l = %.4f   (online: %.4f, %.4f)\n\n", m, l, state.m, state.l);
  if (csv) std::fclose(csv), std::printf("  trace written to %s\n\n", csv_path.c_str());
  return std::fabs(state.l - l) <= 1e-4 * l && state.m == float(m);
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 03 - online softmax: two reads, then one.\n"
                  "Traces the running (m, l) over a row, then checks and times 3-pass, 2-read and 1-read softmax.");
  const bool trace_only = cli.flag("--trace", "print the trace (of --trace-cols values) and stop");
  const long long trace_cols = cli.integer("--trace-cols", 64, "length of the traced row");
  const long long trace_chunk = cli.integer("--trace-chunk", 8, "chunk size of the trace");
  const std::string csv = cli.text("--csv", "", "also write the trace to this CSV file");
  const auto cols = cli.integers("--cols", {1024, 4096, 16384, 32768, 262144}, "row lengths to time");
  const long long elements = cli.integer("--elements", 1 << 27, "rows x cols of each fp32 problem (fp16/bf16: twice as many)");
  const long long repeats = cli.integer("--repeats", 20, "timed runs per kernel; the median is reported");
  cli.finish();
  cli.require(trace_cols >= 1 && trace_cols <= 1'000'000, "--trace-cols must be in [1, 10^6]");
  cli.require(trace_chunk >= 1 && trace_chunk <= trace_cols, "--trace-chunk must be in [1, --trace-cols]");
  for (long long c : cols) cli.require(c >= 1 && c <= elements, "every --cols must be in [1, --elements]");
  cli.require(elements >= 1 && elements <= (1LL << 30), "--elements must be in [1, 2^30]");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");

  return course::guarded_main([&] {
    if (!trace(int(trace_cols), int(trace_chunk), csv)) {
      std::fprintf(stderr, "the online state disagrees with the direct computation: check merge\n");
      return int(course::kExitWrongResult);
    }
    if (trace_only) return int(course::kExitOk);
    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    if (8.0 * elements > 0.8 * gpu.prop.totalGlobalMem) {
      std::fprintf(stderr, "--elements %lld needs %.1f GiB; %s has %.1f GiB\n", elements,
                   8.0 * elements / (1 << 30), gpu.prop.name, gpu.prop.totalGlobalMem / double(1 << 30));
      return int(course::kExitUnsupported);
    }
    std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
    std::printf("one read keeps rows of up to %d float32 or %d 16-bit values on chip here\n",
                ch03::one_read_max_cols(4), ch03::one_read_max_cols(2));
    const double copy_gbps = course::measure_copy_gbps();
    std::printf("device-to-device copy: %.0f GB/s (read + write), the ceiling\n\n", copy_gbps);

    course::Table table({"cols", "rows", "dtype", "kernel", "time", "bandwidth", "of copy", "check"});
    const course::SoftmaxBench f32{cols, std::size_t(elements), int(repeats), copy_gbps};
    const course::SoftmaxBench f16{cols, std::size_t(2 * elements), int(repeats), copy_gbps};
    bool ok = course::bench_softmax<float>(table, {{"3 passes (ch02)", ch02::softmax_safe},
                                                   {"2 reads (online)", ch03::softmax_online},
                                                   {"1 read", ch03::softmax_one_read}}, f32);
    ok &= course::bench_softmax<__half>(table, {{"3 passes (ch02)", ch02::softmax_safe},
                                                {"2 reads (online)", ch03::softmax_online},
                                                {"1 read", ch03::softmax_one_read}}, f16);
    ok &= course::bench_softmax<__nv_bfloat16>(table, {{"3 passes (ch02)", ch02::softmax_safe},
                                                       {"2 reads (online)", ch03::softmax_online},
                                                       {"1 read", ch03::softmax_one_read}}, f16);
    std::printf("\n");
    table.print();
    std::printf("\n%s; bandwidth counts one read and one write of the matrix; medians of %lld runs,\n"
                "L2 flushed before each.\n", gpu.prop.name, repeats);
    return int(ok ? course::kExitOk : course::kExitWrongResult);
  });
}
