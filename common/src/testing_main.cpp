// The suites' main (doctest's), and the GPU gate the GPU cases open with.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "course/testing.hpp"

#include <cstdio>

namespace course::testing {

bool gpu_ready(int min_major, int min_minor) {
  const GpuStatus status = query_gpu(min_major, min_minor);
  if (!status.usable) std::printf("[course] SKIPPED: %s\n", status.reason.c_str());
  return status.usable;
}

}  // namespace course::testing
