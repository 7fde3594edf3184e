// StepExchange against a real shard in this process (the in-process client, no
// sockets): a sync PushPull brings the next step's parameters, a dropped sync worker's
// gradient is discarded and it rejoins, overlap pulls in the background, SSP pushes
// alone, and a pull the servers cannot serve fails at once.
#include "worker/train/step_exchange.h"

#include <memory>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/in_process_ps_client.h"

namespace ps {
namespace {

class StepExchangeTest : public ::testing::Test {
 protected:
  // One shard holding the model's tables in `mode` (none with `create_tables` false),
  // and worker 0 registered with it.
  void Start(v1::ConsistencyMode mode, bool create_tables = true) {
    client_ = std::make_unique<testing::InProcessPsClient>(1);
    absl::StatusOr<std::unique_ptr<Mlp>> model = Mlp::Create({4, 8, 2}, 16, backend_.get());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    v1::OptimizerSpec sgd;
    sgd.set_kind(v1::OptimizerSpec::SGD);
    sgd.set_learning_rate(0.1f);
    if (create_tables) {
      for (const v1::TableSpec& spec : model_->TableSpecs(sgd, mode, 1)) {
        ASSERT_TRUE(client_->CreateTable(spec).ok());
      }
    }
    ASSERT_TRUE(client_->RegisterWorker(0, "host", "cpu").ok());
    options_.mode = mode;
    options_.device = "cpu";
  }

  // A gradient in the model's host_grads(), as the trainer leaves it before a push.
  void ComputeGradient() {
    const std::vector<float> x = {1, -1, 1, -1, -1, 1, -1, 1};
    const std::vector<int32_t> y = {1, 0};
    ASSERT_TRUE(model_->TrainStep(x.data(), y.data(), 2).ok());
    ASSERT_TRUE(model_->DownloadGrads().ok());
  }

  bool Live(int worker) {
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client_->GetStatus();
    EXPECT_TRUE(status.ok());
    for (const v1::WorkerStatus& w : (*status)[0].workers()) {
      if (w.worker_index() == worker) return w.live();
    }
    return false;
  }

  int64_t ParamBytes() const { return model_->num_parameters() * 4; }

  std::unique_ptr<kernels::ComputeBackend> backend_ = kernels::NewCpuBackend();
  std::unique_ptr<testing::InProcessPsClient> client_;
  std::unique_ptr<Mlp> model_;
  StepExchangeOptions options_;
};

TEST_F(StepExchangeTest, ASyncPushPullBringsTheNextStepsParameters) {
  ASSERT_NO_FATAL_FAILURE(Start(v1::SYNC));
  StepExchange exchange(options_, client_.get(), model_.get());
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  EXPECT_EQ(exchange.pulled_version(), 0);
  ASSERT_NO_FATAL_FAILURE(ComputeGradient());
  absl::StatusOr<StepExchange::PushReport> pushed = exchange.Push(/*last_of_epoch=*/false);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_TRUE(pushed->accepted);
  EXPECT_EQ(exchange.pushes(), 1);
  EXPECT_EQ(client_->clock(), 1);
  EXPECT_EQ(exchange.pulled_version(), 1);  // it came with the push
  EXPECT_EQ(client_->bytes_pulled(), 2 * ParamBytes());
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  EXPECT_EQ(client_->bytes_pulled(), 2 * ParamBytes());  // nothing more to pull
}

TEST_F(StepExchangeTest, ADroppedSyncWorkersGradientIsDiscardedAndItRejoins) {
  ASSERT_NO_FATAL_FAILURE(Start(v1::SYNC));
  StepExchange exchange(options_, client_.get(), model_.get());
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  ASSERT_TRUE(client_->LeaveWorker(0).ok());  // as the servers drop a silent worker
  ASSERT_FALSE(Live(0));
  ASSERT_NO_FATAL_FAILURE(ComputeGradient());
  absl::StatusOr<StepExchange::PushReport> pushed = exchange.Push(false);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_FALSE(pushed->accepted);
  EXPECT_EQ(exchange.pushes(), 0);
  EXPECT_TRUE(Live(0));  // registered again
  // The next step pulls the current version and its push is taken.
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  EXPECT_EQ(exchange.pulled_version(), 0);
  pushed = exchange.Push(true);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_TRUE(pushed->accepted);
  EXPECT_EQ(exchange.pushes(), 1);
}

// Steps refused again and again (here: the worker is dropped before every push) end the
// job after max_refused_steps, with an error that says so, instead of spinning for ever.
TEST_F(StepExchangeTest, SyncStepsRefusedManyTimesInARowFailTheJob) {
  ASSERT_NO_FATAL_FAILURE(Start(v1::SYNC));
  options_.max_refused_steps = 3;
  StepExchange exchange(options_, client_.get(), model_.get());
  absl::Status last;
  int refused = 0;
  for (int i = 0; i < 5 && last.ok(); ++i) {
    ASSERT_TRUE(exchange.PrepareStep(false).ok());
    ASSERT_TRUE(client_->LeaveWorker(0).ok());
    ASSERT_NO_FATAL_FAILURE(ComputeGradient());
    absl::StatusOr<StepExchange::PushReport> pushed = exchange.Push(false);
    last = pushed.status();
    if (pushed.ok()) {
      EXPECT_FALSE(pushed->accepted);
      ++refused;
    }
  }
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(last.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(last.message()), ::testing::HasSubstr("3 steps in a row were refused"));
}

TEST_F(StepExchangeTest, OverlapTakesTheBackgroundPullAndPushesInTheBackground) {
  ASSERT_NO_FATAL_FAILURE(Start(v1::ASYNC));
  options_.overlap = true;
  StepExchange exchange(options_, client_.get(), model_.get());
  // The first step pulls now and, being the last of its push, starts the next pull.
  ASSERT_TRUE(exchange.PrepareStep(/*prefetch_next=*/true).ok());
  ASSERT_NO_FATAL_FAILURE(ComputeGradient());
  absl::StatusOr<StepExchange::PushReport> pushed = exchange.Push(false);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_TRUE(pushed->accepted);
  EXPECT_EQ(exchange.pushes(), 1);
  // The second step takes the values pulled in the background: no pull of its own.
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  ASSERT_TRUE(exchange.Drain().ok());
  EXPECT_EQ(client_->bytes_pulled(), 2 * ParamBytes());
  EXPECT_EQ(client_->bytes_pushed(), ParamBytes());
}

TEST_F(StepExchangeTest, SspPushesAloneAndTheNextStepPulls) {
  ASSERT_NO_FATAL_FAILURE(Start(v1::SSP));
  StepExchange exchange(options_, client_.get(), model_.get());
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  ASSERT_NO_FATAL_FAILURE(ComputeGradient());
  absl::StatusOr<StepExchange::PushReport> pushed = exchange.Push(false);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_TRUE(pushed->accepted);
  EXPECT_EQ(client_->clock(), 1);
  EXPECT_EQ(client_->bytes_pulled(), ParamBytes());
  ASSERT_TRUE(exchange.PrepareStep(false).ok());
  EXPECT_EQ(client_->bytes_pulled(), 2 * ParamBytes());
}

TEST_F(StepExchangeTest, APullOfTablesTheServersLackFailsWithoutRetrying) {
  ASSERT_NO_FATAL_FAILURE(Start(v1::SYNC, /*create_tables=*/false));
  options_.retry_timeout = absl::Minutes(10);
  StepExchange exchange(options_, client_.get(), model_.get());
  const absl::Time start = absl::Now();
  EXPECT_EQ(exchange.PrepareStep(false).code(), absl::StatusCode::kNotFound);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

}  // namespace
}  // namespace ps
