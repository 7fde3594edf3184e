// ComputeBackend: the one interface through which models compute.
//
// Pointers passed to the compute methods refer to memory owned by the same backend
// (host memory for the CPU backend, device memory for CUDA); move data in and out with
// CopyToDevice / CopyToHost. Matrices are row-major. Methods may run asynchronously
// (CUDA enqueues on the backend's stream); CopyToHost and Synchronize wait for all
// earlier work. Every failure (bad sizes, CUDA or cuBLAS errors) is returned as a
// Status; nothing aborts.
//
// Thread safety: a backend instance is used by one thread at a time.
#ifndef PS_KERNELS_BACKEND_H_
#define PS_KERNELS_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ps {
namespace kernels {

// An owning, move-only buffer of `size` elements of T in a backend's memory.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(T* data, int64_t size, std::function<void(void*)> deleter)
      : data_(data), size_(size), deleter_(std::move(deleter)) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = other.data_;
      size_ = other.size_;
      deleter_ = std::move(other.deleter_);
      other.data_ = nullptr;
      other.size_ = 0;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Reset(); }

  T* data() const { return data_; }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  void Reset() {
    if (data_ != nullptr && deleter_) deleter_(data_);
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  int64_t size_ = 0;
  std::function<void(void*)> deleter_;
};

using FloatBuffer = Buffer<float>;
using IntBuffer = Buffer<int32_t>;

// Returns `n` zero-filled floats of 64-byte-aligned host memory (whole cache lines).
inline absl::StatusOr<FloatBuffer> AllocAlignedHost(int64_t n) {
  if (n < 0) return absl::InvalidArgumentError("negative allocation size " + std::to_string(n));
  if (n == 0) return FloatBuffer();
  const size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
  void* p = std::aligned_alloc(64, bytes);
  if (p == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate " + std::to_string(bytes) + " bytes");
  }
  std::memset(p, 0, bytes);
  return FloatBuffer(static_cast<float*>(p), n, [](void* q) { std::free(q); });
}

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;

  // "cpu" or "cuda:<ordinal> (<device name>)".
  virtual std::string name() const = 0;
  virtual bool is_gpu() const = 0;

  // Memory. Allocations are zero-filled.
  virtual absl::StatusOr<FloatBuffer> AllocFloat(int64_t n) = 0;
  virtual absl::StatusOr<IntBuffer> AllocInt(int64_t n) = 0;
  virtual absl::Status CopyToDevice(const float* host, float* dst, int64_t n) = 0;
  virtual absl::Status CopyToDeviceInt(const int32_t* host, int32_t* dst, int64_t n) = 0;
  virtual absl::Status CopyToHost(const float* src, float* host, int64_t n) = 0;
  virtual absl::Status Synchronize() = 0;

  // Host memory for staging copies, zero-filled. On CUDA it is page-locked, so
  // CopyToDevice/CopyToHost from it run at full PCIe/NVLink speed and CopyToDevice is
  // truly asynchronous: do not overwrite the source until Synchronize() or a later
  // CopyToHost has returned. Elsewhere it is plain 64-byte-aligned host memory. Free
  // pinned buffers outside hot loops: releasing page-locked memory synchronises the device.
  virtual absl::StatusOr<FloatBuffer> AllocHostPinned(int64_t n) { return AllocAlignedHost(n); }

  // C = alpha * op(A) * op(B) + beta * C with op(X) = X or X^T; op(A) is m x k, op(B)
  // is k x n, C is m x n, all row-major and densely packed.
  virtual absl::Status Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                            const float* a, const float* b, float beta, float* c) = 0;

  // y[r, :] += bias for every row r of the rows x cols matrix y.
  virtual absl::Status AddBias(float* y, const float* bias, int rows, int cols) = 0;
  // out[c] = (accumulate ? out[c] : 0) + sum_r x[r, c]: the bias gradient.
  virtual absl::Status ColumnSum(const float* x, int rows, int cols, bool accumulate,
                                 float* out) = 0;
  // y = max(y, 0) in place.
  virtual absl::Status Relu(float* y, int64_t n) = 0;
  // dy *= (y > 0), where y is the ReLU's output.
  virtual absl::Status ReluBackward(const float* y, float* dy, int64_t n) = 0;

  // Numerically stable softmax cross-entropy over the rows of `logits` (rows x cols).
  // Writes dlogits = (softmax - onehot(label)) * grad_scale, and returns on the host the
  // summed loss over rows and the number of rows whose arg-max equals the label.
  // Labels outside [0, cols) give INVALID_ARGUMENT.
  struct LossResult {
    double loss_sum = 0;
    int64_t correct = 0;
  };
  virtual absl::StatusOr<LossResult> SoftmaxCrossEntropy(const float* logits,
                                                         const int32_t* labels, int rows,
                                                         int cols, float grad_scale,
                                                         float* dlogits) = 0;

  // Embedding rows: out[i, :] = table[idx[i], :] (gather); table[idx[i], :] += g[i, :]
  // (scatter-add; duplicate indices accumulate). Indices must lie in [0, table_rows).
  virtual absl::Status Gather(const float* table, int64_t table_rows, int width,
                              const int32_t* idx, int64_t n, float* out) = 0;
  virtual absl::Status ScatterAdd(const float* g, const int32_t* idx, int64_t n, int width,
                                  float* table, int64_t table_rows) = 0;

  // y += alpha * x (gradient accumulation); x *= alpha.
  virtual absl::Status Axpy(float alpha, const float* x, float* y, int64_t n) = 0;
  virtual absl::Status Scale(float alpha, float* x, int64_t n) = 0;

};

// Returns the CPU backend (always available). `threads` <= 0 keeps BLAS single-threaded.
std::unique_ptr<ComputeBackend> NewCpuBackend(int threads = 1);

// Returns the CUDA backend on `device_ordinal`, or UNAVAILABLE when the build has no
// CUDA or no GPU is present.
absl::StatusOr<std::unique_ptr<ComputeBackend>> NewCudaBackend(int device_ordinal = 0,
                                                               bool allow_tf32 = false);

// Picks a backend by name: "cpu", "cuda", or "auto" (CUDA when a GPU is present).
absl::StatusOr<std::unique_ptr<ComputeBackend>> NewBackend(const std::string& device,
                                                           int cpu_threads = 1,
                                                           bool allow_tf32 = false);

}  // namespace kernels
}  // namespace ps

#endif  // PS_KERNELS_BACKEND_H_
