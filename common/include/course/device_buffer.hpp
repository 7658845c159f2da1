// DeviceBuffer<T>: device memory owned by an object (freed when it goes out of scope,
// also when a check throws), with the copies and fills that tests and benchmarks need.
#pragma once

#include "course/cuda_check.hpp"

#include <cuda_runtime_api.h>

#include <cstddef>
#include <stdexcept>
#include <utility>
#include <vector>

namespace course {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    if (count_ > 0) COURSE_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), bytes()));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);  // no check: a destructor must not throw
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ptr_(std::exchange(other.ptr_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(count_, other.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::invalid_argument("DeviceBuffer::upload: size mismatch");
    if (count_ > 0) COURSE_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    if (count_ > 0) COURSE_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  // Rows `which` of this buffer read as a [rows, cols] matrix, one after another: for
  // checking a sample of an output too large to check whole.
  std::vector<T> download_rows(std::size_t cols, const std::vector<std::size_t>& which) const {
    std::vector<T> host(which.size() * cols);
    for (std::size_t i = 0; i < which.size(); ++i)
      COURSE_CUDA_CHECK(cudaMemcpy(host.data() + i * cols, ptr_ + which[i] * cols, cols * sizeof(T),
                                   cudaMemcpyDeviceToHost));
    return host;
  }
  // Every byte 0xFF: NaN in float, half and bfloat16, so an element the kernel never
  // writes is caught by the comparison (zeros would pass wherever the answer is 0).
  void poison() {
    if (count_ > 0) COURSE_CUDA_CHECK(cudaMemset(ptr_, 0xFF, bytes()));
  }

 private:
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace course
