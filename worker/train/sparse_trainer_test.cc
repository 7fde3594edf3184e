// SparseTrainer against two in-process shards (the in-process client, no sockets): one worker trains logistic regression on
// a small click log (async and SSP), reports its figures and the held-out log-loss, and
// leaves; bad options are rejected before anything is sent.
#include "worker/train/sparse_trainer.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "tests/in_process_ps_client.h"
#include "worker/data/click_log.h"

namespace ps {
namespace {

// A spec of `kind` at `learning_rate`; the shards fill in PyTorch's other defaults.
v1::OptimizerSpec Optimizer(v1::OptimizerSpec::Kind kind, float learning_rate) {
  v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(learning_rate);
  return spec;
}


class SparseTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StartServers();
    ClickLogOptions o;
    o.num_fields = 4;
    o.ids_per_field = 50;
    o.weight_stddev = 1.0;
    absl::StatusOr<ClickLogModel> truth = ClickLogModel::Create(o);
    ASSERT_TRUE(truth.ok());
    train_ = truth->Sample(20000, 0);
    test_ = truth->Sample(5000, 1);
    true_logloss_ = *truth->LogLoss(test_);
  }

  // Two fresh shards and a client to them.
  void StartServers() { client_ = std::make_unique<testing::InProcessPsClient>(2); }

  std::unique_ptr<PsClient> client_;
  SparseDataset train_, test_;
  double true_logloss_ = 0;
};

TEST_F(SparseTrainerTest, OneWorkerLearnsTheClickLogAndLeaves) {
  for (v1::ConsistencyMode mode : {v1::ASYNC, v1::SSP}) {
    ASSERT_NO_FATAL_FAILURE(StartServers());  // fresh shards: the table spec differs
    LogisticRegression model;
    for (const v1::TableSpec& spec :
         model.TableSpecs(Optimizer(v1::OptimizerSpec::ADAGRAD, 0.1f),
                          v1::OptimizerSpec(), mode, 1, 3)) {
      ASSERT_TRUE(client_->CreateTable(spec).ok());
    }
    SparseTrainerOptions options;
    options.batch_size = 100;
    options.epochs = 3;
    options.mode = mode;
    options.log_every = 50;
    SparseTrainer trainer(options, client_.get(), &model, &train_, &test_, "cpu");
    absl::StatusOr<SparseTrainResult> r = trainer.Run();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->steps, 600);
    EXPECT_EQ(r->samples, 60000);
    EXPECT_GT(r->first_loss, r->last_loss);
    // 20k examples of 200 features: within 6% of the true model (measured: 3.8%).
    EXPECT_LT(r->test_logloss, 1.06 * true_logloss_)
        << v1::ConsistencyMode_Name(mode) << " true " << true_logloss_;
    EXPECT_LT(r->test_logloss, 0.9 * BaseRateLogLoss(test_));
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client_->GetStatus();
    ASSERT_TRUE(status.ok());
    int64_t pushes = 0;
    for (const v1::GetStatusResponse& shard : *status) {
      ASSERT_EQ(shard.workers_size(), 1);
      EXPECT_FALSE(shard.workers(0).live());  // it left
      for (const v1::TableStatus& t : shard.tables()) pushes = std::max(pushes, t.pushes());
    }
    EXPECT_GE(pushes, 600);  // one per step reaches each shard
    EXPECT_EQ(client_->clock(), 0);  // reset for the final evaluation
  }
}

TEST_F(SparseTrainerTest, RejectsSyncModeAndEmptyBatches) {
  LogisticRegression model;
  SparseTrainerOptions options;
  options.mode = v1::SYNC;
  SparseTrainer sync(options, client_.get(), &model, &train_, &test_, "cpu");
  EXPECT_EQ(sync.Run().status().code(), absl::StatusCode::kInvalidArgument);
  options.mode = v1::ASYNC;
  options.batch_size = 0;
  SparseTrainer empty(options, client_.get(), &model, &train_, &test_, "cpu");
  EXPECT_EQ(empty.Run().status().code(), absl::StatusCode::kInvalidArgument);
  SparseTrainer no_test(SparseTrainerOptions(), client_.get(), &model, &train_, nullptr, "cpu");
  EXPECT_EQ(no_test.Evaluate().status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ps
