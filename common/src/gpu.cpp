#include "course/gpu.hpp"

#include "course/cuda_check.hpp"

#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

namespace course {

void throw_cuda_error(cudaError_t code, const char* expr, const char* file, int line) {
  const char* base = file;
  for (const char* p = file; *p; ++p)
    if (*p == '/' || *p == '\\') base = p + 1;
  throw CudaError(code, std::string(expr) + " failed: " + cudaGetErrorName(code) + " (" +
                            cudaGetErrorString(code) + ") at " + base + ":" + std::to_string(line));
}

int require_compute_capability(int min_major, const std::string& who, const std::string& why) {
  int device = 0, major = 0, minor = 0;
  COURSE_CUDA_CHECK(cudaGetDevice(&device));
  COURSE_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  COURSE_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (major < min_major)
    throw std::runtime_error(who + ": needs a GPU of sm_" + std::to_string(min_major) + "0 or newer (" + why +
                             "); this one is sm_" + std::to_string(major) + std::to_string(minor));
  return major;
}

GpuStatus query_gpu(int min_major, int min_minor) {
  GpuStatus status;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky "no device" so later checks start clean
    status.reason = err != cudaSuccess
                        ? std::string("no CUDA device (") + cudaGetErrorString(err) + ")"
                        : std::string("no CUDA device");
    return status;
  }
  if (cudaGetDeviceProperties(&status.prop, 0) != cudaSuccess) {
    status.reason = "cannot read the properties of CUDA device 0";
    return status;
  }
  const cudaDeviceProp& p = status.prop;
  if (p.major < min_major || (p.major == min_major && p.minor < min_minor)) {
    status.reason = std::string(p.name) + " is sm_" + std::to_string(p.major) +
                    std::to_string(p.minor) + "; this needs sm_" + std::to_string(min_major) +
                    std::to_string(min_minor) + " or newer";
    return status;
  }
  status.usable = true;
  return status;
}

std::string describe(const cudaDeviceProp& p) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %d SMs, %.1f GiB, L2 %d MiB)", p.name, p.major,
                p.minor, p.multiProcessorCount, p.totalGlobalMem / double(1 << 30),
                p.l2CacheSize >> 20);
  return buf;
}

int guarded_main(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitWrongResult;
  }
}

}  // namespace course
