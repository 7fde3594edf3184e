#include "worker/model/mlp.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ps {

#define PS_RETURN_IF_ERROR(expr)            \
  do {                                      \
    if (absl::Status _s = (expr); !_s.ok()) \
      return _s;                            \
  } while (0)

absl::StatusOr<std::vector<int>> ParseLayerSizes(const std::string& text) {
  std::vector<int> sizes;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer size '", part, "' in '", text, "' is not a positive integer"));
    }
    sizes.push_back(v);
  }
  return sizes;
}

absl::StatusOr<std::unique_ptr<Mlp>> Mlp::Create(const std::vector<int>& sizes, int max_batch,
                                                 kernels::ComputeBackend* backend) {
  if (sizes.size() < 2) {
    return absl::InvalidArgumentError("an MLP needs at least an input and an output size");
  }
  for (int s : sizes) {
    if (s <= 0) return absl::InvalidArgumentError(absl::StrCat("layer size ", s, " <= 0"));
  }
  if (max_batch <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("batch size ", max_batch, " <= 0"));
  }
  std::unique_ptr<Mlp> m(new Mlp(sizes, max_batch, backend));
  PS_RETURN_IF_ERROR(m->Init());
  return m;
}

Mlp::Mlp(std::vector<int> sizes, int max_batch, kernels::ComputeBackend* backend)
    : sizes_(std::move(sizes)), max_batch_(max_batch), backend_(backend) {}

absl::Status Mlp::Init() {
  const int layers = static_cast<int>(sizes_.size()) - 1;
  for (int i = 0; i < layers; ++i) {
    num_params_ += static_cast<int64_t>(sizes_[i]) * sizes_[i + 1] + sizes_[i + 1];
  }
  absl::StatusOr<kernels::FloatBuffer> p = backend_->AllocFloat(num_params_);
  if (!p.ok()) return p.status();
  params_ = *std::move(p);
  absl::StatusOr<kernels::FloatBuffer> g = backend_->AllocFloat(num_params_);
  if (!g.ok()) return g.status();
  grads_ = *std::move(g);
  for (int i = 0; i <= layers; ++i) {
    absl::StatusOr<kernels::FloatBuffer> a =
        backend_->AllocFloat(static_cast<int64_t>(max_batch_) * sizes_[i]);
    if (!a.ok()) return a.status();
    act_.push_back(*std::move(a));
    if (i > 0) {
      absl::StatusOr<kernels::FloatBuffer> d =
          backend_->AllocFloat(static_cast<int64_t>(max_batch_) * sizes_[i]);
      if (!d.ok()) return d.status();
      dact_.push_back(*std::move(d));
    }
  }
  absl::StatusOr<kernels::IntBuffer> l = backend_->AllocInt(max_batch_);
  if (!l.ok()) return l.status();
  labels_ = *std::move(l);

  float* hp = params_.data();
  float* hg = grads_.data();
  if (backend_->is_gpu()) {
    // Pinned host memory: the copies to and from the device run at full speed. (A
    // temporary CPU backend here would also reset OpenBLAS's thread count.)
    absl::StatusOr<kernels::FloatBuffer> a = backend_->AllocHostPinned(num_params_);
    absl::StatusOr<kernels::FloatBuffer> b = backend_->AllocHostPinned(num_params_);
    if (!a.ok()) return a.status();
    if (!b.ok()) return b.status();
    host_params_buf_ = *std::move(a);
    host_grads_buf_ = *std::move(b);
    hp = host_params_buf_.data();
    hg = host_grads_buf_.data();
  }
  int64_t at = 0;
  for (int i = 0; i < layers; ++i) {
    const int64_t nw = static_cast<int64_t>(sizes_[i]) * sizes_[i + 1], nb = sizes_[i + 1];
    w_.push_back(params_.data() + at);
    dw_.push_back(grads_.data() + at);
    host_params_.push_back({absl::StrCat("fc", i, ".w"), nw, hp + at});
    host_grads_.push_back({absl::StrCat("fc", i, ".w"), nw, hg + at});
    at += nw;
    b_.push_back(params_.data() + at);
    db_.push_back(grads_.data() + at);
    host_params_.push_back({absl::StrCat("fc", i, ".b"), nb, hp + at});
    host_grads_.push_back({absl::StrCat("fc", i, ".b"), nb, hg + at});
    at += nb;
  }
  return absl::OkStatus();
}

std::vector<v1::TableSpec> Mlp::TableSpecs(const v1::OptimizerSpec& optimizer,
                                           v1::ConsistencyMode mode, uint64_t seed) const {
  std::vector<v1::TableSpec> specs;
  const int layers = static_cast<int>(sizes_.size()) - 1;
  for (int i = 0; i < layers; ++i) {
    const float bound = 1.0f / std::sqrt(static_cast<float>(sizes_[i]));
    for (int part = 0; part < 2; ++part) {
      v1::TableSpec s;
      s.set_name(absl::StrCat("fc", i, part == 0 ? ".w" : ".b"));
      s.set_kind(v1::DENSE);
      if (part == 0) s.add_shape(sizes_[i]);
      s.add_shape(sizes_[i + 1]);
      s.mutable_initializer()->set_kind(v1::Initializer::UNIFORM);
      s.mutable_initializer()->set_low(-bound);
      s.mutable_initializer()->set_high(bound);
      s.mutable_initializer()->set_seed(seed + 2 * i + part);
      *s.mutable_optimizer() = optimizer;
      s.set_consistency(mode);
      specs.push_back(std::move(s));
    }
  }
  return specs;
}

absl::Status Mlp::Upload() {
  if (!backend_->is_gpu()) return absl::OkStatus();
  return backend_->CopyToDevice(host_params_buf_.data(), params_.data(), num_params_);
}

std::vector<DenseTensor> Mlp::LayerParams(int layer) const {
  return {host_params_.at(2 * layer), host_params_.at(2 * layer + 1)};
}

std::vector<DenseTensor> Mlp::LayerGrads(int layer) const {
  return {host_grads_.at(2 * layer), host_grads_.at(2 * layer + 1)};
}

absl::StatusOr<kernels::ComputeBackend::LossResult> Mlp::Forward(const float* x, const int32_t* y,
                                                                 int batch, bool backward,
                                                                 bool accumulate,
                                                                 const LayerReady& layer_ready) {
  if (batch <= 0 || batch > max_batch_) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch ", batch, " outside [1, ", max_batch_, "]"));
  }
  const int layers = static_cast<int>(sizes_.size()) - 1;
  PS_RETURN_IF_ERROR(
      backend_->CopyToDevice(x, act_[0].data(), static_cast<int64_t>(batch) * sizes_[0]));
  PS_RETURN_IF_ERROR(backend_->CopyToDeviceInt(y, labels_.data(), batch));
  for (int i = 0; i < layers; ++i) {
    float* out = act_[i + 1].data();
    PS_RETURN_IF_ERROR(backend_->Gemm(false, false, batch, sizes_[i + 1], sizes_[i], 1.0f,
                                      act_[i].data(), w_[i], 0.0f, out));
    PS_RETURN_IF_ERROR(backend_->AddBias(out, b_[i], batch, sizes_[i + 1]));
    if (i + 1 < layers) {
      PS_RETURN_IF_ERROR(backend_->Relu(out, static_cast<int64_t>(batch) * sizes_[i + 1]));
    }
  }
  absl::StatusOr<kernels::ComputeBackend::LossResult> loss = backend_->SoftmaxCrossEntropy(
      act_[layers].data(), labels_.data(), batch, sizes_[layers], 1.0f / batch,
      dact_[layers - 1].data());
  if (!loss.ok() || !backward) return loss;
  for (int i = layers - 1; i >= 0; --i) {
    float* dz = dact_[i].data();  // gradient w.r.t. layer i's pre-activation output
    PS_RETURN_IF_ERROR(backend_->Gemm(true, false, sizes_[i], sizes_[i + 1], batch, 1.0f,
                                      act_[i].data(), dz, accumulate ? 1.0f : 0.0f, dw_[i]));
    PS_RETURN_IF_ERROR(backend_->ColumnSum(dz, batch, sizes_[i + 1], accumulate, db_[i]));
    if (i > 0) {
      float* dprev = dact_[i - 1].data();
      PS_RETURN_IF_ERROR(backend_->Gemm(false, true, batch, sizes_[i], sizes_[i + 1], 1.0f, dz,
                                        w_[i], 0.0f, dprev));
      PS_RETURN_IF_ERROR(backend_->ReluBackward(act_[i].data(), dprev,
                                                static_cast<int64_t>(batch) * sizes_[i]));
    }
    if (layer_ready) layer_ready(i);
  }
  return loss;
}

absl::StatusOr<kernels::ComputeBackend::LossResult> Mlp::TrainStep(const float* x, const int32_t* y,
                                                                   int batch, bool accumulate,
                                                                   const LayerReady& layer_ready) {
  return Forward(x, y, batch, /*backward=*/true, accumulate, layer_ready);
}

absl::Status Mlp::DownloadGrads(float scale) {
  if (scale != 1.0f) PS_RETURN_IF_ERROR(backend_->Scale(scale, grads_.data(), num_params_));
  if (!backend_->is_gpu()) return absl::OkStatus();
  return backend_->CopyToHost(grads_.data(), host_grads_buf_.data(), num_params_);
}

absl::Status Mlp::DownloadLayerGrads(int layer) {
  if (!backend_->is_gpu()) return absl::OkStatus();
  // A layer's weights and bias lie side by side, on the device as on the host.
  const DenseTensor& w = host_grads_.at(2 * layer);
  return backend_->CopyToHost(dw_.at(layer), w.data,
                              w.num_elements + host_grads_.at(2 * layer + 1).num_elements);
}

absl::StatusOr<kernels::ComputeBackend::LossResult> Mlp::Evaluate(const float* x,
                                                                  const int32_t* y, int64_t n) {
  kernels::ComputeBackend::LossResult total;
  for (int64_t at = 0; at < n; at += max_batch_) {
    const int b = static_cast<int>(std::min<int64_t>(max_batch_, n - at));
    absl::StatusOr<kernels::ComputeBackend::LossResult> r =
        Forward(x + at * sizes_[0], y + at, b, /*backward=*/false, /*accumulate=*/false,
                /*layer_ready=*/nullptr);
    if (!r.ok()) return r.status();
    total.loss_sum += r->loss_sum;
    total.correct += r->correct;
  }
  return total;
}

double Mlp::TrainFlops(int batch) const {
  double macs = 0;
  for (size_t i = 0; i + 1 < sizes_.size(); ++i) {
    const double layer = static_cast<double>(batch) * sizes_[i] * sizes_[i + 1];
    macs += (i == 0 ? 2 : 3) * layer;  // forward, dW, and dX except for the input layer
  }
  return 2 * macs;
}

}  // namespace ps
