// Launchers for the CUDA backend's custom kernels (cuda_kernels.cu).
//
// A plain C++ API, free of Abseil, so nvcc compiles only the .cu file and the rest of
// the backend (cuda_backend.cc) is ordinary host code built by the C++ toolchain.
// Every launcher enqueues work on `stream`, checks the launch and returns its
// cudaError_t; none synchronises. Arguments are assumed valid (sizes non-negative,
// pointers in device memory): cuda_backend.cc validates them and turns errors into
// absl::Status.
//
// Thread safety: launchers are pure functions of their arguments; concurrent launches on
// one stream are ordered by the stream.
#ifndef PS_KERNELS_CUDA_KERNELS_H_
#define PS_KERNELS_CUDA_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ps {
namespace kernels {
namespace cuda {

// Results that kernels reduce on the device and the host copies back after one sync.
// Zero bytes mean "nothing yet", so a single cudaMemsetAsync resets the record.
struct DeviceRecord {
  double loss_sum;             // SoftmaxCrossEntropy: summed loss over rows.
  unsigned long long correct;  // SoftmaxCrossEntropy: rows whose arg-max is the label.
  // First (lowest) invalid position p, stored as ~p so that atomicMax keeps the lowest
  // one and 0 means "none"; decode with FirstBadPosition().
  unsigned long long bad_key;
};

// Returns the lowest invalid position recorded in `record`, or -1 if there is none.
inline int64_t FirstBadPosition(const DeviceRecord& record) {
  return record.bad_key == 0 ? -1 : static_cast<int64_t>(~record.bad_key);
}

// y[r, :] += bias.
cudaError_t LaunchAddBias(float* y, const float* bias, int rows, int cols, cudaStream_t stream);
// out[c] = (accumulate ? out[c] : 0) + sum_r x[r, c]; deterministic (no atomics).
cudaError_t LaunchColumnSum(const float* x, int rows, int cols, bool accumulate, float* out,
                            cudaStream_t stream);
// y = max(y, 0).
cudaError_t LaunchRelu(float* y, int64_t n, cudaStream_t stream);
// dy *= (y > 0).
cudaError_t LaunchReluBackward(const float* y, float* dy, int64_t n, cudaStream_t stream);

// Softmax cross-entropy, one warp per row. Adds the loss and correct count of the valid
// rows to `record`, and records the first row whose label is outside [0, cols); that
// row's dlogits are left untouched.
cudaError_t LaunchSoftmaxCrossEntropy(const float* logits, const int32_t* labels, int rows,
                                      int cols, float grad_scale, float* dlogits,
                                      DeviceRecord* record, cudaStream_t stream);

// Records in `record` the first i with idx[i] outside [0, limit).
cudaError_t LaunchCheckIndices(const int32_t* idx, int64_t n, int64_t limit, DeviceRecord* record,
                               cudaStream_t stream);
// out[i, :] = table[idx[i], :], and table[idx[i], :] += g[i, :] with atomicAdd. Both do
// nothing at all when `record` holds an invalid index (run LaunchCheckIndices first), so
// an invalid batch never touches memory out of bounds nor half-updates the table.
cudaError_t LaunchGather(const float* table, int width, const int32_t* idx, int64_t n, float* out,
                         const DeviceRecord* record, cudaStream_t stream);
cudaError_t LaunchScatterAdd(const float* g, const int32_t* idx, int64_t n, int width, float* table,
                             const DeviceRecord* record, cudaStream_t stream);

// y += alpha * x; x *= alpha.
cudaError_t LaunchAxpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t stream);
cudaError_t LaunchScale(float alpha, float* x, int64_t n, cudaStream_t stream);


}  // namespace cuda
}  // namespace kernels
}  // namespace ps

#endif  // PS_KERNELS_CUDA_KERNELS_H_
