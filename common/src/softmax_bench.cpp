#include "course/softmax_bench.hpp"

#include "course/compare.hpp"
#include "course/device_buffer.hpp"
#include "course/device_random.hpp"
#include "course/random.hpp"
#include "course/reference.hpp"
#include "course/timing.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>

namespace course {

template <class T>
bool bench_softmax(Table& table, const std::vector<SoftmaxVersion<T>>& versions, const SoftmaxBench& bench) {
  bool all_ok = true;
  DeviceBuffer<T> x(bench.elements), y(bench.elements);
  fill_logits(x.data(), x.size(), pick_seed(), 2.0f);
  for (long long cols : bench.cols) {
    const std::size_t rows = bench.elements / cols;
    const std::vector<std::size_t> which = sample_rows(rows, 8);
    const std::vector<double> ref =
        reference::softmax_rows(widen(x.download_rows(cols, which)), int(which.size()), int(cols));
    for (const auto& version : versions) {
      std::printf("  %s %s, %zu rows x %lld cols\n", version.name.c_str(), DType<T>::name, rows, cols);
      std::fflush(stdout);
      y.poison();
      version.fn(x.data(), y.data(), int(rows), int(cols), nullptr);
      const CompareReport report = compare(widen(y.download_rows(cols, which)), ref, DType<T>::prob,
                                           {which.size(), std::size_t(cols)}, version.name + " (sampled rows)");
      if (!report.ok) std::fprintf(stderr, "%s\n", report.message.c_str());
      all_ok = all_ok && report.ok;
      const Timing t = time_gpu([&](cudaStream_t s) { version.fn(x.data(), y.data(), int(rows), int(cols), s); },
                                {3, bench.repeats, true});
      const double gbps = gb_per_s(2.0 * rows * cols * sizeof(T), t.median_ms);
      table.add_row({std::to_string(cols), std::to_string(rows), DType<T>::name, version.name,
                     fmt_us(t.median_ms), fmt(gbps, 0) + " GB/s", fmt_pct(gbps, bench.copy_gbps),
                     report.ok ? "ok" : "WRONG"});
    }
  }
  return all_ok;
}

template bool bench_softmax<float>(Table&, const std::vector<SoftmaxVersion<float>>&, const SoftmaxBench&);
template bool bench_softmax<__half>(Table&, const std::vector<SoftmaxVersion<__half>>&, const SoftmaxBench&);
template bool bench_softmax<__nv_bfloat16>(Table&, const std::vector<SoftmaxVersion<__nv_bfloat16>>&,
                                           const SoftmaxBench&);

}  // namespace course
