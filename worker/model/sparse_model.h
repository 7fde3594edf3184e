// Models over sparse features (LibSVM examples) whose parameters live in sparse tables on
// the parameter servers: only the rows of the features a batch touches travel.
//
//   LogisticRegression  table "lr.w" (row_width 1) keyed by feature id, plus the bias
//                       under key kBiasKey (-1; LibSVM ids are non-negative).
//   CtrModel            embedding bag + MLP: sparse table "ctr.emb" (row_width D); each
//                       example's embedding is the value-weighted sum of its features'
//                       rows, fed to dense tables "ctr.fc0.{w,b}" (D -> H, ReLU) and
//                       "ctr.fc1.{w,b}" (H -> 1), sigmoid and log-loss.
//
// Each training step pulls what the batch needs, computes the mean log-loss gradient over
// the batch, and pushes it (the gradient of a row is summed over the batch's examples and
// divided by the batch size). The parameters are read through PsClient, so tests can run
// a model against an in-memory fake.
//
// Thread safety: one thread at a time per model (they keep scratch buffers).
#ifndef PS_WORKER_MODEL_SPARSE_MODEL_H_
#define PS_WORKER_MODEL_SPARSE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/data/libsvm.h"

namespace ps {

// Examples `examples[0..size)` of `data`.
struct SparseBatch {
  const SparseDataset* data = nullptr;
  const int64_t* examples = nullptr;
  int size = 0;
};

class SparseModel {
 public:
  virtual ~SparseModel() = default;

  virtual std::string name() const = 0;
  // Specs of every table: sparse tables get `sparse_optimizer`, dense ones
  // `dense_optimizer`; all get `mode` (ASYNC or SSP: sparse tables have no SYNC) and, for
  // SSP, `staleness_bound`. Initial values derive from `seed`.
  virtual std::vector<v1::TableSpec> TableSpecs(const v1::OptimizerSpec& sparse_optimizer,
                                                const v1::OptimizerSpec& dense_optimizer,
                                                v1::ConsistencyMode mode, int staleness_bound,
                                                uint64_t seed) const = 0;

  // Pulls the parameters `batch` needs, computes its log-loss and mean gradient, and
  // pushes the gradient as `worker`. Returns the summed log-loss of the batch under the
  // pulled parameters.
  virtual absl::StatusOr<double> TrainStep(PsClient* client, const SparseBatch& batch,
                                           int worker) = 0;
  // Pulls (as `worker`, -1 for a non-worker) and returns the summed log-loss of `batch`;
  // pushes nothing.
  virtual absl::StatusOr<double> Loss(PsClient* client, const SparseBatch& batch,
                                      int worker) = 0;
};

class LogisticRegression final : public SparseModel {
 public:
  static constexpr char kTable[] = "lr.w";
  static constexpr int64_t kBiasKey = -1;

  std::string name() const override { return "logreg"; }
  // Weights and bias start at zero.
  std::vector<v1::TableSpec> TableSpecs(const v1::OptimizerSpec& sparse_optimizer,
                                        const v1::OptimizerSpec& dense_optimizer,
                                        v1::ConsistencyMode mode, int staleness_bound,
                                        uint64_t seed) const override;
  absl::StatusOr<double> TrainStep(PsClient* client, const SparseBatch& batch,
                                   int worker) override;
  absl::StatusOr<double> Loss(PsClient* client, const SparseBatch& batch, int worker) override;

 private:
  // Pulls the batch's weights, returns the summed loss, and with `backward` pushes the
  // mean gradient.
  absl::StatusOr<double> Step(PsClient* client, const SparseBatch& batch, int worker,
                              bool backward);

  std::vector<int64_t> keys_;
  std::vector<int32_t> slots_;  // per feature entry of the batch: its row in keys_
  std::vector<float> w_, g_;
};

class CtrModel final : public SparseModel {
 public:
  static constexpr char kEmbeddingTable[] = "ctr.emb";

  // `embedding_dim` D and `hidden` H must be positive. The model computes on `backend`,
  // which must work on host memory (the CPU backend; the matrices are a few KiB, so a
  // GPU would only add copies): FAILED_PRECONDITION otherwise.
  static absl::StatusOr<std::unique_ptr<CtrModel>> Create(int embedding_dim, int hidden,
                                                          kernels::ComputeBackend* backend);

  std::string name() const override { return "ctr"; }
  int embedding_dim() const { return dim_; }
  int hidden() const { return hidden_; }
  // Embeddings start at N(0, 0.1^2); the dense layers as PyTorch's nn.Linear
  // (U(-1/sqrt(in), 1/sqrt(in))).
  std::vector<v1::TableSpec> TableSpecs(const v1::OptimizerSpec& sparse_optimizer,
                                        const v1::OptimizerSpec& dense_optimizer,
                                        v1::ConsistencyMode mode, int staleness_bound,
                                        uint64_t seed) const override;
  absl::StatusOr<double> TrainStep(PsClient* client, const SparseBatch& batch,
                                   int worker) override;
  absl::StatusOr<double> Loss(PsClient* client, const SparseBatch& batch, int worker) override;

 private:
  CtrModel(int embedding_dim, int hidden, kernels::ComputeBackend* backend);
  absl::StatusOr<double> Step(PsClient* client, const SparseBatch& batch, int worker,
                              bool backward);

  const int dim_;
  const int hidden_;
  kernels::ComputeBackend* const backend_;

  // Dense parameters and gradients, one buffer each, viewed per table.
  std::vector<float> params_, grads_;
  std::vector<DenseTensor> param_views_, grad_views_;
  float *w0_, *b0_, *w1_, *b1_;      // into params_
  float *dw0_, *db0_, *dw1_, *db1_;  // into grads_

  // Per-step scratch.
  std::vector<int64_t> keys_;
  std::vector<int32_t> slots_;
  std::vector<float> emb_, demb_;        // rows of keys_ (keys x D)
  std::vector<float> bag_, dbag_;        // batch x D
  std::vector<float> act_, dact_;        // batch x H
  std::vector<float> logit_, dlogit_;    // batch x 1
};

}  // namespace ps

#endif  // PS_WORKER_MODEL_SPARSE_MODEL_H_
