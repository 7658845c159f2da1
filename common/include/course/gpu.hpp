// Is there a GPU this program can use, and what is it?
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <string>

namespace course {

struct GpuStatus {
  bool usable = false;
  std::string reason;  // why not, in one line, when !usable
  cudaDeviceProp prop{};
};

// Device 0, usable when present and of compute capability >= min_major.min_minor.
// Never throws: "no driver" and "no device" are answers, not errors.
GpuStatus query_gpu(int min_major = 7, int min_minor = 5);

// For a launch function whose kernels need a newer GPU: the current device's compute
// capability major, or std::runtime_error "<who>: needs a GPU of sm_<min_major>0 or newer
// (<why>); this one is sm_XY" when it is older.
int require_compute_capability(int min_major, const std::string& who, const std::string& why);

// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB, L2 50 MiB)"
std::string describe(const cudaDeviceProp& prop);

// The exit codes of every chapter executable.
enum ExitCode : int {
  kExitOk = 0,           // also: no GPU here, the CPU part ran and the GPU part was skipped
  kExitWrongResult = 1,  // a kernel's result did not match the CPU reference, or CUDA failed
  kExitBadUsage = 2,     // bad flag or impossible size
  kExitUnsupported = 3,  // this GPU cannot run the chapter (too old, too little memory)
};

// Runs a chapter executable's body; an exception (a failed CUDA call, a rejected size)
// becomes one line on stderr and kExitWrongResult instead of a crash.
int guarded_main(const std::function<int()>& body);

}  // namespace course
