#include "worker/model/sparse_model.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "worker/data/click_log.h"

namespace ps {
namespace {

#define PS_RETURN_IF_ERROR(expr)            \
  do {                                      \
    if (absl::Status _s = (expr); !_s.ok()) \
      return _s;                            \
  } while (0)

absl::Status CheckBatch(const SparseBatch& batch) {
  if (batch.data == nullptr || (batch.size > 0 && batch.examples == nullptr) || batch.size < 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad batch of ", batch.size, " examples"));
  }
  for (int i = 0; i < batch.size; ++i) {
    const int64_t e = batch.examples[i];
    if (e < 0 || e >= batch.data->size()) {
      return absl::OutOfRangeError(absl::StrCat("example ", e, " outside the data set's ",
                                                batch.data->size(), " examples"));
    }
  }
  return absl::OkStatus();
}

// Collects the distinct feature ids of `batch` into `keys` (first-seen order) and, for
// every feature entry of the batch in order, its position in `keys` into `slots`.
// Negative ids are reserved for model-internal keys (the bias).
absl::Status CollectKeys(const SparseBatch& batch, std::vector<int64_t>* keys,
                 std::vector<int32_t>* slots) {
  keys->clear();
  slots->clear();
  absl::flat_hash_map<int64_t, int32_t> where;
  const SparseDataset& d = *batch.data;
  for (int i = 0; i < batch.size; ++i) {
    const int64_t e = batch.examples[i];
    for (int64_t j = d.offsets[e]; j < d.offsets[e + 1]; ++j) {
      if (d.ids[j] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("example ", e, " has negative feature id ", d.ids[j]));
      }
      auto [it, inserted] = where.try_emplace(d.ids[j], static_cast<int32_t>(keys->size()));
      if (inserted) keys->push_back(d.ids[j]);
      slots->push_back(it->second);
    }
  }
  return absl::OkStatus();
}

double Sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

v1::TableSpec DenseSpec(const std::string& name, std::vector<int64_t> shape, float bound,
                        uint64_t seed, const v1::OptimizerSpec& optimizer,
                        v1::ConsistencyMode mode, int staleness_bound) {
  v1::TableSpec s;
  s.set_name(name);
  s.set_kind(v1::DENSE);
  for (int64_t d : shape) s.add_shape(d);
  s.mutable_initializer()->set_kind(v1::Initializer::UNIFORM);
  s.mutable_initializer()->set_low(-bound);
  s.mutable_initializer()->set_high(bound);
  s.mutable_initializer()->set_seed(seed);
  *s.mutable_optimizer() = optimizer;
  s.set_consistency(mode);
  if (mode == v1::SSP) s.set_staleness_bound(staleness_bound);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// LogisticRegression

std::vector<v1::TableSpec> LogisticRegression::TableSpecs(
    const v1::OptimizerSpec& sparse_optimizer, const v1::OptimizerSpec& /*dense_optimizer*/,
    v1::ConsistencyMode mode, int staleness_bound, uint64_t seed) const {
  v1::TableSpec s;
  s.set_name(kTable);
  s.set_kind(v1::SPARSE);
  s.set_row_width(1);
  s.mutable_initializer()->set_kind(v1::Initializer::ZEROS);
  s.mutable_initializer()->set_seed(seed);
  *s.mutable_optimizer() = sparse_optimizer;
  s.set_consistency(mode);
  if (mode == v1::SSP) s.set_staleness_bound(staleness_bound);
  return {s};
}

absl::StatusOr<double> LogisticRegression::TrainStep(PsClient* client, const SparseBatch& batch,
                                                     int worker) {
  return Step(client, batch, worker, /*backward=*/true);
}

absl::StatusOr<double> LogisticRegression::Loss(PsClient* client, const SparseBatch& batch,
                                                int worker) {
  return Step(client, batch, worker, /*backward=*/false);
}

absl::StatusOr<double> LogisticRegression::Step(PsClient* client, const SparseBatch& batch,
                                                int worker, bool backward) {
  PS_RETURN_IF_ERROR(CheckBatch(batch));
  if (batch.size == 0) return 0.0;
  PS_RETURN_IF_ERROR(CollectKeys(batch, &keys_, &slots_));
  const int32_t bias = static_cast<int32_t>(keys_.size());
  keys_.push_back(kBiasKey);
  w_.assign(keys_.size(), 0.0f);
  absl::StatusOr<int64_t> version = client->PullSparse(kTable, keys_, 1, w_.data(), worker);
  if (!version.ok()) return version.status();

  if (backward) g_.assign(keys_.size(), 0.0f);
  const SparseDataset& d = *batch.data;
  const double scale = 1.0 / batch.size;
  double loss = 0;
  size_t entry = 0;
  for (int i = 0; i < batch.size; ++i) {
    const int64_t e = batch.examples[i];
    const int64_t begin = d.offsets[e], end = d.offsets[e + 1];
    const size_t first_entry = entry;
    double z = w_[bias];
    for (int64_t j = begin; j < end; ++j, ++entry) {
      z += static_cast<double>(d.values[j]) * w_[slots_[entry]];
    }
    loss += LogLossFromLogit(z, d.labels[e]);
    if (!backward) continue;
    // d loss / d z = sigmoid(z) - y, averaged over the batch.
    const double dz = (Sigmoid(z) - d.labels[e]) * scale;
    g_[bias] += static_cast<float>(dz);
    entry = first_entry;
    for (int64_t j = begin; j < end; ++j, ++entry) {
      g_[slots_[entry]] += static_cast<float>(dz * d.values[j]);
    }
  }
  if (backward) PS_RETURN_IF_ERROR(client->PushSparse(kTable, keys_, 1, g_.data(), *version, worker));
  return loss;
}

// ---------------------------------------------------------------------------------------
// CtrModel

absl::StatusOr<std::unique_ptr<CtrModel>> CtrModel::Create(int embedding_dim, int hidden,
                                                           kernels::ComputeBackend* backend) {
  if (embedding_dim <= 0 || hidden <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ctr model: embedding_dim=", embedding_dim, " and hidden=", hidden, " must be positive"));
  }
  if (backend == nullptr || backend->is_gpu()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ctr model: computes on host memory; give it the CPU backend, not ",
        backend == nullptr ? "none" : backend->name()));
  }
  return std::unique_ptr<CtrModel>(new CtrModel(embedding_dim, hidden, backend));
}

CtrModel::CtrModel(int embedding_dim, int hidden, kernels::ComputeBackend* backend)
    : dim_(embedding_dim), hidden_(hidden), backend_(backend) {
  const int64_t sizes[4] = {static_cast<int64_t>(dim_) * hidden_, hidden_, hidden_, 1};
  const char* names[4] = {"ctr.fc0.w", "ctr.fc0.b", "ctr.fc1.w", "ctr.fc1.b"};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  params_.assign(total, 0.0f);
  grads_.assign(total, 0.0f);
  float* views[2][4];
  int64_t offset = 0;
  for (int t = 0; t < 4; ++t) {
    views[0][t] = params_.data() + offset;
    views[1][t] = grads_.data() + offset;
    param_views_.push_back({names[t], sizes[t], views[0][t]});
    grad_views_.push_back({names[t], sizes[t], views[1][t]});
    offset += sizes[t];
  }
  w0_ = views[0][0], b0_ = views[0][1], w1_ = views[0][2], b1_ = views[0][3];
  dw0_ = views[1][0], db0_ = views[1][1], dw1_ = views[1][2], db1_ = views[1][3];
}

std::vector<v1::TableSpec> CtrModel::TableSpecs(const v1::OptimizerSpec& sparse_optimizer,
                                                const v1::OptimizerSpec& dense_optimizer,
                                                v1::ConsistencyMode mode, int staleness_bound,
                                                uint64_t seed) const {
  std::vector<v1::TableSpec> specs;
  v1::TableSpec emb;
  emb.set_name(kEmbeddingTable);
  emb.set_kind(v1::SPARSE);
  emb.set_row_width(dim_);
  emb.mutable_initializer()->set_kind(v1::Initializer::NORMAL);
  emb.mutable_initializer()->set_stddev(0.1f);
  emb.mutable_initializer()->set_seed(seed);
  *emb.mutable_optimizer() = sparse_optimizer;
  emb.set_consistency(mode);
  if (mode == v1::SSP) emb.set_staleness_bound(staleness_bound);
  specs.push_back(std::move(emb));
  const float bound0 = 1.0f / std::sqrt(static_cast<float>(dim_));
  const float bound1 = 1.0f / std::sqrt(static_cast<float>(hidden_));
  specs.push_back(DenseSpec("ctr.fc0.w", {dim_, hidden_}, bound0, seed + 1, dense_optimizer,
                            mode, staleness_bound));
  specs.push_back(DenseSpec("ctr.fc0.b", {hidden_}, bound0, seed + 2, dense_optimizer, mode,
                            staleness_bound));
  specs.push_back(DenseSpec("ctr.fc1.w", {hidden_, 1}, bound1, seed + 3, dense_optimizer, mode,
                            staleness_bound));
  specs.push_back(DenseSpec("ctr.fc1.b", {1}, bound1, seed + 4, dense_optimizer, mode,
                            staleness_bound));
  return specs;
}

absl::StatusOr<double> CtrModel::TrainStep(PsClient* client, const SparseBatch& batch,
                                           int worker) {
  return Step(client, batch, worker, /*backward=*/true);
}

absl::StatusOr<double> CtrModel::Loss(PsClient* client, const SparseBatch& batch, int worker) {
  return Step(client, batch, worker, /*backward=*/false);
}

absl::StatusOr<double> CtrModel::Step(PsClient* client, const SparseBatch& batch, int worker,
                                      bool backward) {
  PS_RETURN_IF_ERROR(CheckBatch(batch));
  const int n = batch.size;
  if (n == 0) return 0.0;
  const int D = dim_, H = hidden_;
  PS_RETURN_IF_ERROR(CollectKeys(batch, &keys_, &slots_));
  emb_.assign(keys_.size() * D, 0.0f);
  absl::StatusOr<int64_t> sparse_version =
      keys_.empty() ? absl::StatusOr<int64_t>(0)
                    : client->PullSparse(kEmbeddingTable, keys_, D, emb_.data(), worker);
  if (!sparse_version.ok()) return sparse_version.status();
  absl::StatusOr<int64_t> dense_version = client->Pull(param_views_, 0, worker);
  if (!dense_version.ok()) return dense_version.status();

  // Forward: bag[i] = sum_j value_j * emb[id_j]; act = relu(bag W0 + b0);
  // logit = act W1 + b1.
  const SparseDataset& d = *batch.data;
  bag_.assign(static_cast<size_t>(n) * D, 0.0f);
  size_t entry = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t e = batch.examples[i];
    float* bag = bag_.data() + static_cast<size_t>(i) * D;
    for (int64_t j = d.offsets[e]; j < d.offsets[e + 1]; ++j, ++entry) {
      const float v = d.values[j];
      const float* row = emb_.data() + static_cast<size_t>(slots_[entry]) * D;
      for (int k = 0; k < D; ++k) bag[k] += v * row[k];
    }
  }
  act_.assign(static_cast<size_t>(n) * H, 0.0f);
  logit_.assign(n, 0.0f);
  PS_RETURN_IF_ERROR(backend_->Gemm(false, false, n, H, D, 1.0f, bag_.data(), w0_, 0.0f, act_.data()));
  PS_RETURN_IF_ERROR(backend_->AddBias(act_.data(), b0_, n, H));
  PS_RETURN_IF_ERROR(backend_->Relu(act_.data(), static_cast<int64_t>(n) * H));
  PS_RETURN_IF_ERROR(backend_->Gemm(false, false, n, 1, H, 1.0f, act_.data(), w1_, 0.0f, logit_.data()));
  PS_RETURN_IF_ERROR(backend_->AddBias(logit_.data(), b1_, n, 1));
  PS_RETURN_IF_ERROR(backend_->Synchronize());

  double loss = 0;
  dlogit_.assign(n, 0.0f);
  for (int i = 0; i < n; ++i) {
    const float y = d.labels[batch.examples[i]];
    loss += LogLossFromLogit(logit_[i], y);
    dlogit_[i] = static_cast<float>((Sigmoid(logit_[i]) - y) / n);
  }
  if (!backward) return loss;

  // Backward through the dense layers, then scatter the bag gradient into the rows.
  dact_.assign(static_cast<size_t>(n) * H, 0.0f);
  dbag_.assign(static_cast<size_t>(n) * D, 0.0f);
  PS_RETURN_IF_ERROR(backend_->Gemm(true, false, H, 1, n, 1.0f, act_.data(), dlogit_.data(), 0.0f, dw1_));
  PS_RETURN_IF_ERROR(backend_->ColumnSum(dlogit_.data(), n, 1, false, db1_));
  PS_RETURN_IF_ERROR(backend_->Gemm(false, true, n, H, 1, 1.0f, dlogit_.data(), w1_, 0.0f, dact_.data()));
  PS_RETURN_IF_ERROR(backend_->ReluBackward(act_.data(), dact_.data(), static_cast<int64_t>(n) * H));
  PS_RETURN_IF_ERROR(backend_->Gemm(true, false, D, H, n, 1.0f, bag_.data(), dact_.data(), 0.0f, dw0_));
  PS_RETURN_IF_ERROR(backend_->ColumnSum(dact_.data(), n, H, false, db0_));
  PS_RETURN_IF_ERROR(backend_->Gemm(false, true, n, D, H, 1.0f, dact_.data(), w0_, 0.0f, dbag_.data()));
  PS_RETURN_IF_ERROR(backend_->Synchronize());
  demb_.assign(keys_.size() * D, 0.0f);
  entry = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t e = batch.examples[i];
    const float* dbag = dbag_.data() + static_cast<size_t>(i) * D;
    for (int64_t j = d.offsets[e]; j < d.offsets[e + 1]; ++j, ++entry) {
      const float v = d.values[j];
      float* row = demb_.data() + static_cast<size_t>(slots_[entry]) * D;
      for (int k = 0; k < D; ++k) row[k] += v * dbag[k];
    }
  }
  if (!keys_.empty()) {
    PS_RETURN_IF_ERROR(
        client->PushSparse(kEmbeddingTable, keys_, D, demb_.data(), *sparse_version, worker));
  }
  PS_RETURN_IF_ERROR(client->Push(grad_views_, *dense_version, worker));
  return loss;
}

}  // namespace ps
