// Timing GPU work with CUDA events: warm up, repeat, take the median, and start every
// timed run with a cold L2 (a buffer twice the L2's size is written between runs), so
// a kernel whose inputs fit in L2 is not credited with L2 bandwidth.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>

namespace course {

struct TimingConfig {
  int warmup = 3;
  int repeats = 30;
  bool cold_l2 = true;
};

struct Timing {
  double median_ms;
  double min_ms;
  double max_ms;
};

// Times `work(stream)`; only what `work` enqueues lies between the two events.
Timing time_gpu(const std::function<void(cudaStream_t)>& work, TimingConfig config = {});

}  // namespace course
