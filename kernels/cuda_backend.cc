// The CUDA backend: cuBLAS SGEMM plus the custom kernels of cuda_kernels.cu, all enqueued
// on one stream that the backend owns, with one cuBLAS handle per backend (no globals).
// Every cudaError_t and cublasStatus_t becomes an absl::Status naming the failed call.
//
// Index and label validation: the host cannot check indices that live in device memory
// without copying them back, so a kernel checks them on the device and records the first
// bad position in a small DeviceRecord; the call copies that record back and waits for
// it (one stream sync), so Gather, ScatterAdd and SoftmaxCrossEntropy return
// INVALID_ARGUMENT themselves, as the CPU backend does. Gather and ScatterAdd then touch
// no memory at all for an invalid batch.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kernels/backend.h"
#include "kernels/cuda_kernels.h"
#include "kernels/cuda_util.h"

namespace ps {
namespace kernels {
namespace {

class CudaBackend final : public ComputeBackend {
 public:
  static absl::StatusOr<std::unique_ptr<ComputeBackend>> Create(int device, bool allow_tf32) {
    std::unique_ptr<CudaBackend> backend(new CudaBackend(device, allow_tf32));
    PS_STATUS_RETURN_IF_ERROR(backend->Init());
    return std::unique_ptr<ComputeBackend>(std::move(backend));
  }

  ~CudaBackend() override {
    if (stream_ != nullptr) {
      cudaSetDevice(device_);
      cudaStreamSynchronize(stream_);
    }
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    // record_ and host_record_ are freed next; the stream goes with the last buffer.
  }

  std::string name() const override { return name_; }
  bool is_gpu() const override { return true; }

  absl::StatusOr<FloatBuffer> AllocFloat(int64_t n) override { return AllocDevice<float>(n); }
  absl::StatusOr<IntBuffer> AllocInt(int64_t n) override { return AllocDevice<int32_t>(n); }

  absl::StatusOr<FloatBuffer> AllocHostPinned(int64_t n) override {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("AllocHostPinned", "size", n));
    if (n == 0) return FloatBuffer();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    void* p = nullptr;
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    PS_CUDA_RETURN_IF_ERROR(cudaMallocHost(&p, bytes));
    std::memset(p, 0, bytes);
    return FloatBuffer(static_cast<float*>(p), n, [](void* q) { cudaFreeHost(q); });
  }

  absl::Status CopyToDevice(const float* host, float* dst, int64_t n) override {
    return CopyIn(host, dst, n, sizeof(float));
  }
  absl::Status CopyToDeviceInt(const int32_t* host, int32_t* dst, int64_t n) override {
    return CopyIn(host, dst, n, sizeof(int32_t));
  }
  absl::Status CopyToHost(const float* src, float* host, int64_t n) override {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("CopyToHost", "size", n));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    if (n > 0) {
      PS_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }
  absl::Status Synchronize() override {
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }

  absl::Status Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                    const float* b, float beta, float* c) override {
    if (m < 0 || n < 0 || k < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("Gemm: negative size m=", m, " n=", n, " k=", k));
    }
    if (m == 0 || n == 0) return absl::OkStatus();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    // cuBLAS is column-major, and a row-major matrix is its transpose seen column-major.
    // So compute C^T (n x m) = op(B)^T op(A)^T: swap the operands, keep the op flags.
    const int lda = std::max(trans_a ? m : k, 1);
    const int ldb = std::max(trans_b ? k : n, 1);
    PS_CUBLAS_RETURN_IF_ERROR(cublasSgemm(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b,
                                          ldb, a, lda, &beta, c, n));
    return absl::OkStatus();
  }

  absl::Status AddBias(float* y, const float* bias, int rows, int cols) override {
    PS_STATUS_RETURN_IF_ERROR(CheckShape("AddBias", rows, cols));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchAddBias(y, bias, rows, cols, stream_));
    return absl::OkStatus();
  }

  absl::Status ColumnSum(const float* x, int rows, int cols, bool accumulate, float* out) override {
    PS_STATUS_RETURN_IF_ERROR(CheckShape("ColumnSum", rows, cols));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchColumnSum(x, rows, cols, accumulate, out, stream_));
    return absl::OkStatus();
  }

  absl::Status Relu(float* y, int64_t n) override {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("Relu", "size", n));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchRelu(y, n, stream_));
    return absl::OkStatus();
  }

  absl::Status ReluBackward(const float* y, float* dy, int64_t n) override {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("ReluBackward", "size", n));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchReluBackward(y, dy, n, stream_));
    return absl::OkStatus();
  }

  absl::StatusOr<LossResult> SoftmaxCrossEntropy(const float* logits, const int32_t* labels,
                                                 int rows, int cols, float grad_scale,
                                                 float* dlogits) override {
    PS_STATUS_RETURN_IF_ERROR(CheckShape("SoftmaxCrossEntropy", rows, cols));
    if (rows == 0) return LossResult();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(ResetRecord());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchSoftmaxCrossEntropy(logits, labels, rows, cols, grad_scale,
                                                            dlogits, record_.data(), stream_));
    absl::StatusOr<cuda::DeviceRecord> record = FetchRecord();
    if (!record.ok()) return record.status();
    const int64_t bad = cuda::FirstBadPosition(*record);
    if (bad >= 0) {
      absl::StatusOr<int32_t> label = FetchInt(labels + bad);
      if (!label.ok()) return label.status();
      return absl::InvalidArgumentError(
          absl::StrCat("label ", *label, " at row ", bad, " outside [0, ", cols, ")"));
    }
    LossResult result;
    result.loss_sum = record->loss_sum;
    result.correct = static_cast<int64_t>(record->correct);
    return result;
  }

  absl::Status Gather(const float* table, int64_t table_rows, int width, const int32_t* idx,
                      int64_t n, float* out) override {
    PS_STATUS_RETURN_IF_ERROR(CheckIndexedShape("Gather", table_rows, width, n));
    if (n == 0) return absl::OkStatus();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(ResetRecord());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchCheckIndices(idx, n, table_rows, record_.data(), stream_));
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchGather(table, width, idx, n, out, record_.data(), stream_));
    return CheckIndicesRecord("Gather", idx, table_rows);
  }

  absl::Status ScatterAdd(const float* g, const int32_t* idx, int64_t n, int width, float* table,
                          int64_t table_rows) override {
    PS_STATUS_RETURN_IF_ERROR(CheckIndexedShape("ScatterAdd", table_rows, width, n));
    if (n == 0) return absl::OkStatus();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(ResetRecord());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchCheckIndices(idx, n, table_rows, record_.data(), stream_));
    PS_CUDA_RETURN_IF_ERROR(
        cuda::LaunchScatterAdd(g, idx, n, width, table, record_.data(), stream_));
    return CheckIndicesRecord("ScatterAdd", idx, table_rows);
  }

  absl::Status Axpy(float alpha, const float* x, float* y, int64_t n) override {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("Axpy", "size", n));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchAxpy(alpha, x, y, n, stream_));
    return absl::OkStatus();
  }

  absl::Status Scale(float alpha, float* x, int64_t n) override {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("Scale", "size", n));
    PS_STATUS_RETURN_IF_ERROR(Activate());
    PS_CUDA_RETURN_IF_ERROR(cuda::LaunchScale(alpha, x, n, stream_));
    return absl::OkStatus();
  }

 private:
  CudaBackend(int device, bool allow_tf32) : device_(device), allow_tf32_(allow_tf32) {}

  absl::Status Init() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();  // Clear it, so later CUDA calls in this process do not see it.
      return absl::UnavailableError(
          absl::StrCat("no usable CUDA device: cudaGetDeviceCount: ", cudaGetErrorName(e), " (",
                       cudaGetErrorString(e), ")"));
    }
    if (count == 0) return absl::UnavailableError("no CUDA device present");
    if (device_ < 0 || device_ >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("CUDA device ordinal ", device_, " outside [0, ", count, ")"));
    }
    PS_STATUS_RETURN_IF_ERROR(Activate());
    cudaDeviceProp prop;
    PS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_));
    name_ = absl::StrCat("cuda:", device_, " (", prop.name, ")");

    int pools = 0;
    PS_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device_));
    if (pools != 0) {
      // Keep freed memory in the pool instead of returning it to the driver at every
      // synchronisation, so per-step buffers cost no cudaMalloc after the first step.
      cudaMemPool_t pool;
      PS_CUDA_RETURN_IF_ERROR(cudaDeviceGetDefaultMemPool(&pool, device_));
      uint64_t threshold = UINT64_MAX;
      PS_CUDA_RETURN_IF_ERROR(
          cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    }
    streams_ = std::make_shared<StreamOwner>(device_, pools != 0);
    PS_STATUS_RETURN_IF_ERROR(streams_->Create());
    stream_ = streams_->stream();

    PS_CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas_));
    PS_CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, stream_));
    // FP32 unless asked: TF32 tensor cores round the inputs to a 10-bit mantissa.
    PS_CUBLAS_RETURN_IF_ERROR(
        cublasSetMathMode(cublas_, allow_tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));

    absl::StatusOr<Buffer<cuda::DeviceRecord>> record = AllocDevice<cuda::DeviceRecord>(1);
    if (!record.ok()) return record.status();
    record_ = *std::move(record);
    void* host = nullptr;
    PS_CUDA_RETURN_IF_ERROR(cudaMallocHost(&host, sizeof(cuda::DeviceRecord)));
    host_record_ = Buffer<cuda::DeviceRecord>(static_cast<cuda::DeviceRecord*>(host), 1,
                                              [](void* q) { cudaFreeHost(q); });
    return absl::OkStatus();
  }

  // Makes this backend's device current on the calling thread (cheap when it already is).
  absl::Status Activate() {
    PS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<Buffer<T>> AllocDevice(int64_t n) {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("Alloc", "size", n));
    if (n == 0) return Buffer<T>();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    const size_t bytes = static_cast<size_t>(n) * sizeof(T);
    void* p = nullptr;
    if (streams_->use_pools()) {
      PS_CUDA_RETURN_IF_ERROR(cudaMallocAsync(&p, bytes, stream_));
    } else {
      PS_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
    }
    std::shared_ptr<StreamOwner> owner = streams_;
    Buffer<T> buffer(static_cast<T*>(p), n, [owner](void* q) { owner->Free(q); });
    // Stream-ordered, so every later use on this stream sees zeros.
    PS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(p, 0, bytes, stream_));
    return buffer;
  }

  absl::Status CopyIn(const void* host, void* dst, int64_t n, size_t elem) {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative("CopyToDevice", "size", n));
    if (n == 0) return absl::OkStatus();
    PS_STATUS_RETURN_IF_ERROR(Activate());
    // From pageable memory this returns once the source has been staged, so the caller
    // may reuse it at once; from AllocHostPinned memory it is truly asynchronous.
    PS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, host, n * elem, cudaMemcpyHostToDevice, stream_));
    return absl::OkStatus();
  }

  static absl::Status CheckShape(absl::string_view op, int rows, int cols) {
    if (rows >= 0 && cols >= 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(op, ": negative shape ", rows, " x ", cols));
  }

  static absl::Status CheckIndexedShape(absl::string_view op, int64_t table_rows, int width,
                                        int64_t n) {
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative(op, "table rows", table_rows));
    PS_STATUS_RETURN_IF_ERROR(CheckNonNegative(op, "width", width));
    return CheckNonNegative(op, "index count", n);
  }

  cudaError_t ResetRecord() {
    return cudaMemsetAsync(record_.data(), 0, sizeof(cuda::DeviceRecord), stream_);
  }

  // Copies the device record back, waiting for all work enqueued so far.
  absl::StatusOr<cuda::DeviceRecord> FetchRecord() {
    PS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_record_.data(), record_.data(),
                                            sizeof(cuda::DeviceRecord), cudaMemcpyDeviceToHost,
                                            stream_));
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return *host_record_.data();
  }

  // Reads one int32 from device memory (error paths only).
  absl::StatusOr<int32_t> FetchInt(const int32_t* device_value) {
    int32_t value = 0;
    PS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(&value, device_value, sizeof(value), cudaMemcpyDeviceToHost, stream_));
    PS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return value;
  }

  // Turns the record of LaunchCheckIndices into the CPU backend's error.
  absl::Status CheckIndicesRecord(absl::string_view op, const int32_t* idx, int64_t table_rows) {
    absl::StatusOr<cuda::DeviceRecord> record = FetchRecord();
    if (!record.ok()) return record.status();
    const int64_t bad = cuda::FirstBadPosition(*record);
    if (bad < 0) return absl::OkStatus();
    absl::StatusOr<int32_t> index = FetchInt(idx + bad);
    if (!index.ok()) return index.status();
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": index ", *index, " at ", bad, " outside [0, ", table_rows, ")"));
  }

  const int device_;
  const bool allow_tf32_;
  std::string name_;
  std::shared_ptr<StreamOwner> streams_;
  cudaStream_t stream_ = nullptr;  // streams_->stream(), cached.
  cublasHandle_t cublas_ = nullptr;
  Buffer<cuda::DeviceRecord> record_;       // Device memory.
  Buffer<cuda::DeviceRecord> host_record_;  // Pinned host memory, the copy target.
};

#undef PS_CUDA_RETURN_IF_ERROR
#undef PS_CUBLAS_RETURN_IF_ERROR
#undef PS_STATUS_RETURN_IF_ERROR

}  // namespace

absl::StatusOr<std::unique_ptr<ComputeBackend>> NewCudaBackend(int device_ordinal,
                                                               bool allow_tf32) {
  return CudaBackend::Create(device_ordinal, allow_tf32);
}

}  // namespace kernels
}  // namespace ps
