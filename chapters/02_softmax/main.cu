// Chapter 02 — softmax: naive, then safe.
//
// Shows the naive formula failing (overflow to inf, then NaN; underflow to 0 / 0) on the
// CPU and then live on the GPU, and times the three-pass safe softmax for float32, float16
// and bfloat16 rows of 1k to 256k values against the device-to-device copy bandwidth.
#include "softmax.hpp"

#include "course/ceilings.hpp"
#include "course/cli.hpp"
#include "course/device_buffer.hpp"
#include "course/gpu.hpp"
#include "course/softmax_bench.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

// The formula as written, in float (and with half exponentials): the failure on the CPU.
void show_naive_on_cpu() {
  std::printf("softmax(x)_i = exp(x_i) / sum_j exp(x_j). Computed as written:\n\n");
  const std::vector<std::vector<float>> rows = {{1, 2, 3}, {88, 89, 90}, {-110, -111, -112}};
  for (const auto& x : rows) {
    float sum = 0, m = -INFINITY, safe_sum = 0;
    for (float v : x) sum += std::exp(v), m = std::fmax(m, v);
    for (float v : x) safe_sum += std::exp(v - m);
    std::printf("  x = [%g, %g, %g]: exp(x) = [%g, %g, %g], sum = %g\n    naive: [", x[0], x[1], x[2],
                std::exp(x[0]), std::exp(x[1]), std::exp(x[2]), sum);
    for (float v : x) std::printf(" %g", std::exp(v) / sum);
    std::printf(" ]   safe (subtract max %g): [", m);
    for (float v : x) std::printf(" %.4f", std::exp(v - m) / safe_sum);
    std::printf(" ]\n");
  }
  std::printf("\n  float32 overflows past exp(88.72) = 3.4e38; inf / inf = NaN.\n"
              "  Underflow: exp(-110) = 1.7e-48 is below float32's smallest value, so every\n"
              "  term is 0 and 0 / 0 = NaN.\n");
  std::printf("  float16's largest value is 65504 ~ exp(11.09): a half exponential of 12 is already\n"
              "  inf (%g as half).\n\n", __half2float(__float2half(std::exp(12.0f))));
  std::printf("Safe softmax subtracts the row max m first: exp(x - m) / sum exp(x - m) is the same\n"
              "number (the factor exp(-m) cancels), every exponent is <= 0, every term is in (0, 1]\n"
              "and the largest is exactly 1, so the sum is in [1, n]. It costs a pass over the row\n"
              "to find m: three passes in all (max, sum, normalise) where one read would do.\n\n");
}

// The same rows through the GPU's naive kernels: the NaN is real.
bool show_naive_on_gpu() {
  std::printf("The naive kernel on the GPU (64 equal logits; the answer is 1/64 = 0.015625):\n");
  for (float logit : {80.0f, 89.0f}) {
    std::vector<float> x(64, logit);
    course::DeviceBuffer<float> d_x(x), d_y(64);
    ch02::softmax_naive(d_x.data(), d_y.data(), 1, 64, nullptr);
    std::printf("  fp32 logits = %4.0f: y[0] = %g\n", logit, d_y.download()[0]);
  }
  for (float logit : {10.0f, 12.0f}) {
    std::vector<__half> x(64, __float2half(logit));
    course::DeviceBuffer<__half> d_x(x), d_y(64);
    ch02::softmax_naive(d_x.data(), d_y.data(), 1, 64, nullptr);
    std::printf("  fp16 logits = %4.0f: y[0] = %g\n", logit, __half2float(d_y.download()[0]));
  }
  std::vector<float> x(64, 89.0f);
  course::DeviceBuffer<float> d_x(x), d_y(64);
  ch02::softmax_safe(d_x.data(), d_y.data(), 1, 64, nullptr);
  const float safe = d_y.download()[0];
  std::printf("  safe, fp32 logits = 89: y[0] = %g\n\n", safe);
  return std::fabs(safe - 1.0f / 64) < 1e-6f;
}

}  // namespace

int main(int argc, char** argv) {
  course::Cli cli(argc, argv,
                  "Chapter 02 - softmax: naive, then safe.\n"
                  "Shows the naive formula overflowing, then checks and times the three-pass safe softmax.");
  const auto cols = cli.integers("--cols", {1024, 4096, 16384, 32768, 262144}, "row lengths to time");
  const long long elements = cli.integer("--elements", 1 << 27,
                                         "rows x cols of each fp32 problem (fp16/bf16: twice as many)");
  const long long repeats = cli.integer("--repeats", 20, "timed runs per kernel; the median is reported");
  cli.finish();
  for (long long c : cols) cli.require(c >= 1 && c <= elements, "every --cols must be in [1, --elements]");
  cli.require(elements >= 1 && elements <= (1LL << 30), "--elements must be in [1, 2^30]");
  cli.require(repeats >= 1 && repeats <= 1000, "--repeats must be in [1, 1000]");

  return course::guarded_main([&] {
    show_naive_on_cpu();
    const course::GpuStatus gpu = course::query_gpu();
    if (!gpu.usable) {
      std::printf("[course] SKIPPED the GPU part: %s\n", gpu.reason.c_str());
      return int(course::kExitOk);
    }
    if (4.0 * elements * 2 > 0.8 * gpu.prop.totalGlobalMem) {
      std::fprintf(stderr, "--elements %lld needs %.1f GiB; %s has %.1f GiB\n", elements,
                   8.0 * elements / (1 << 30), gpu.prop.name, gpu.prop.totalGlobalMem / double(1 << 30));
      return int(course::kExitUnsupported);
    }
    std::printf("GPU: %s\n", course::describe(gpu.prop).c_str());
    bool ok = show_naive_on_gpu();
    const double copy_gbps = course::measure_copy_gbps();
    std::printf("device-to-device copy: %.0f GB/s (read + write), the ceiling\n\n", copy_gbps);

    course::Table table({"cols", "rows", "dtype", "kernel", "time", "bandwidth", "of copy", "check"});
    const course::SoftmaxBench f32{cols, std::size_t(elements), int(repeats), copy_gbps};
    const course::SoftmaxBench f16{cols, std::size_t(2 * elements), int(repeats), copy_gbps};
    ok &= course::bench_softmax<float>(table, {{"safe (3 passes)", ch02::softmax_safe}}, f32);
    ok &= course::bench_softmax<__half>(table, {{"safe (3 passes)", ch02::softmax_safe}}, f16);
    ok &= course::bench_softmax<__nv_bfloat16>(table, {{"safe (3 passes)", ch02::softmax_safe}}, f16);
    std::printf("\n");
    table.print();
    std::printf("\n%s; bandwidth counts one read and one write of the matrix; medians of %lld runs,\n"
                "L2 flushed before each. Passes 2 and 3 re-read the row: from L2 while it is there.\n",
                gpu.prop.name, repeats);
    return int(ok ? course::kExitOk : course::kExitWrongResult);
  });
}
