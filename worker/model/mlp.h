// Mlp: a multi-layer perceptron (ReLU hidden layers, softmax cross-entropy) computed on
// a ComputeBackend, with its parameters as dense tables "fc<i>.w" [in, out] and
// "fc<i>.b" [out].
//
// The worker pulls into host_params() and pushes from host_grads(); on a GPU these are
// pinned-size host copies moved by Upload/Download, on the CPU they are the compute
// buffers themselves, so no bytes are copied.
//
// Thread safety: one thread at a time.
#ifndef PS_WORKER_MODEL_MLP_H_
#define PS_WORKER_MODEL_MLP_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"

namespace ps {

class Mlp {
 public:
  // `sizes` = {input, hidden..., classes}; at least two entries, all positive.
  static absl::StatusOr<std::unique_ptr<Mlp>> Create(const std::vector<int>& sizes,
                                                     int max_batch,
                                                     kernels::ComputeBackend* backend);

  // Table specs for every parameter, initialised as PyTorch's nn.Linear does
  // (U(-1/sqrt(in), 1/sqrt(in)) for weights and biases), with the given optimizer and mode.
  std::vector<v1::TableSpec> TableSpecs(const v1::OptimizerSpec& optimizer,
                                        v1::ConsistencyMode mode, uint64_t seed) const;

  // Views of the host-side parameters and gradients, one per table, for PsClient.
  const std::vector<DenseTensor>& host_params() const { return host_params_; }
  const std::vector<DenseTensor>& host_grads() const { return host_grads_; }
  int64_t num_parameters() const { return num_params_; }

  // Layers, and the host views of layer i's tables (weights, then bias): a part of
  // host_params() and host_grads().
  int num_layers() const { return static_cast<int>(sizes_.size()) - 1; }
  std::vector<DenseTensor> LayerParams(int layer) const;
  std::vector<DenseTensor> LayerGrads(int layer) const;

  // Copies host_params() to the backend (no-op on the CPU).
  absl::Status Upload();
  // Called during backward with each layer, last first, once that layer's gradient is
  // complete and the step no longer reads its parameters: from then on the layer's
  // host gradient and parameters may be sent and overwritten (after
  // DownloadLayerGrads on a GPU) while backward goes on.
  using LayerReady = std::function<void(int layer)>;
  // Forward and backward on `batch` rows. The mean gradient over the batch replaces the
  // backend's gradient buffer, or is added to it with `accumulate` (buffered gradients
  // stay on the device until DownloadGrads).
  absl::StatusOr<kernels::ComputeBackend::LossResult> TrainStep(
      const float* x, const int32_t* y, int batch, bool accumulate = false,
      const LayerReady& layer_ready = nullptr);
  // Scales the gradient buffer by `scale` and makes it visible in host_grads().
  absl::Status DownloadGrads(float scale = 1.0f);
  // Makes layer i's gradient visible in LayerGrads(i), unscaled (no-op on the CPU).
  absl::Status DownloadLayerGrads(int layer);
  // Forward only, in batches of at most max_batch; returns summed loss and correct count.
  absl::StatusOr<kernels::ComputeBackend::LossResult> Evaluate(const float* x,
                                                               const int32_t* y, int64_t n);
  // FLOPs of one forward+backward pass at `batch` (GEMMs only).
  double TrainFlops(int batch) const;

 private:
  Mlp(std::vector<int> sizes, int max_batch, kernels::ComputeBackend* backend);
  absl::Status Init();
  absl::StatusOr<kernels::ComputeBackend::LossResult> Forward(const float* x, const int32_t* y,
                                                              int batch, bool backward,
                                                              bool accumulate,
                                                              const LayerReady& layer_ready);

  const std::vector<int> sizes_;
  const int max_batch_;
  kernels::ComputeBackend* const backend_;
  int64_t num_params_ = 0;

  // Device (backend) memory: all parameters in one buffer, all gradients in another.
  kernels::FloatBuffer params_, grads_;
  std::vector<float*> w_, b_, dw_, db_;             // per layer, into params_/grads_
  std::vector<kernels::FloatBuffer> act_;           // act_[0] = input, act_[i+1] = layer i out
  std::vector<kernels::FloatBuffer> dact_;          // gradients w.r.t. act_[i+1]
  kernels::IntBuffer labels_;
  // Host copies (GPU only); on the CPU the views point into params_/grads_.
  kernels::FloatBuffer host_params_buf_, host_grads_buf_;
  std::vector<DenseTensor> host_params_, host_grads_;
};

// Parses "512,256" into {512, 256}; INVALID_ARGUMENT names a bad entry.
absl::StatusOr<std::vector<int>> ParseLayerSizes(const std::string& text);

}  // namespace ps

#endif  // PS_WORKER_MODEL_MLP_H_
