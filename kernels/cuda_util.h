// What the CUDA backend needs around the CUDA runtime: cudaError_t and cublasStatus_t as
// absl::Status naming the failed call (with the RETURN_IF_ERROR macros), and the owning
// handles for the current device and the backend's stream.
//
// Thread safety: the functions are pure; ScopedDevice is per thread; a StreamOwner is
// shared (its stream is thread-safe as CUDA streams are).
#ifndef PS_KERNELS_CUDA_UTIL_H_
#define PS_KERNELS_CUDA_UTIL_H_

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {
namespace kernels {

// OK for success, else the code that fits (RESOURCE_EXHAUSTED for allocations,
// UNAVAILABLE for a missing device or driver, ...) with the call and CUDA's own text.
absl::Status FromCuda(cudaError_t e, absl::string_view call);
absl::Status FromCublas(cublasStatus_t s, absl::string_view call);
// INVALID_ARGUMENT "<op>: negative <what> <v>" for v < 0.
absl::Status CheckNonNegative(absl::string_view op, absl::string_view what, int64_t v);

// Evaluate a CUDA / cuBLAS / Status expression and return its error, naming the call.
#define PS_CUDA_RETURN_IF_ERROR(expr)                       \
  do {                                                      \
    absl::Status ps_cuda_status_ = FromCuda((expr), #expr); \
    if (!ps_cuda_status_.ok()) return ps_cuda_status_;      \
  } while (0)
#define PS_CUBLAS_RETURN_IF_ERROR(expr)                         \
  do {                                                          \
    absl::Status ps_cublas_status_ = FromCublas((expr), #expr); \
    if (!ps_cublas_status_.ok()) return ps_cublas_status_;      \
  } while (0)
#define PS_STATUS_RETURN_IF_ERROR(expr)      \
  do {                                       \
    absl::Status ps_status_ = (expr);        \
    if (!ps_status_.ok()) return ps_status_; \
  } while (0)

// Makes `device` current for the scope and restores the caller's device afterwards, for
// code (buffer deleters) that may run on any thread at any time. Errors are ignored:
// destructors have no way to report them.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) cudaSetDevice(device);
  }
  ~ScopedDevice() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;

 private:
  int previous_ = -1;
};

// The backend's stream. Shared by the backend and every device buffer it hands out:
// cudaFreeAsync needs a live stream, and buffers may outlive their backend. The stream is
// destroyed when the last of them goes.
class StreamOwner {
 public:
  StreamOwner(int device, bool use_pools) : device_(device), use_pools_(use_pools) {}
  ~StreamOwner() {
    if (stream_ == nullptr) return;
    ScopedDevice scoped(device_);
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  StreamOwner(const StreamOwner&) = delete;
  StreamOwner& operator=(const StreamOwner&) = delete;

  absl::Status Create() {
    // Non-blocking: no implicit ordering with the legacy default stream of other code.
    PS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    return absl::OkStatus();
  }
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  bool use_pools() const { return use_pools_; }

  // Stream-ordered free: later work on the stream may reuse the memory at once, and the
  // host does not wait (cudaFree would synchronise the whole device).
  void Free(void* p) {
    ScopedDevice scoped(device_);
    if (use_pools_) {
      cudaFreeAsync(p, stream_);
    } else {
      cudaFree(p);
    }
  }

 private:
  const int device_;
  const bool use_pools_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace kernels
}  // namespace ps

#endif  // PS_KERNELS_CUDA_UTIL_H_
