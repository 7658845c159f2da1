#include "course/timing.hpp"

#include "course/cuda_check.hpp"
#include "course/device_buffer.hpp"

#include <algorithm>
#include <vector>

namespace course {

namespace {

// One event pair, destroyed on every path.
struct EventPair {
  cudaEvent_t start{}, stop{};
  EventPair() {
    COURSE_CUDA_CHECK(cudaEventCreate(&start));
    COURSE_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
};

DeviceBuffer<unsigned char>& l2_flush_buffer() {
  static DeviceBuffer<unsigned char> buffer = [] {
    int device = 0, l2_bytes = 0;
    COURSE_CUDA_CHECK(cudaGetDevice(&device));
    COURSE_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, device));
    return DeviceBuffer<unsigned char>(2 * std::size_t(std::max(l2_bytes, 1 << 20)));
  }();
  return buffer;
}

}  // namespace

Timing time_gpu(const std::function<void(cudaStream_t)>& work, TimingConfig config) {
  cudaStream_t stream = nullptr;  // the default stream: chapter kernels are timed alone
  EventPair events;
  for (int i = 0; i < config.warmup; ++i) work(stream);
  COURSE_CHECK_LAUNCH();
  std::vector<double> ms;
  for (int i = 0; i < config.repeats; ++i) {
    if (config.cold_l2) {
      auto& flush = l2_flush_buffer();
      COURSE_CUDA_CHECK(cudaMemsetAsync(flush.data(), i & 0xFF, flush.bytes(), stream));
    }
    COURSE_CUDA_CHECK(cudaEventRecord(events.start, stream));
    work(stream);
    COURSE_CUDA_CHECK(cudaEventRecord(events.stop, stream));
    COURSE_CUDA_CHECK(cudaEventSynchronize(events.stop));
    COURSE_CHECK_LAUNCH();
    float elapsed = 0;
    COURSE_CUDA_CHECK(cudaEventElapsedTime(&elapsed, events.start, events.stop));
    ms.push_back(elapsed);
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front(), ms.back()};
}

}  // namespace course
