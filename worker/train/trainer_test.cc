// The training loop against a real shard in this process, through the in-process client
// (no sockets): buffered gradients cut the bytes pushed and pulled by the buffer size,
// and training still learns.
#include "worker/train/trainer.h"

#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/in_process_ps_client.h"

namespace ps {
namespace {

// A spec of `kind` at `learning_rate`; the shards fill in PyTorch's other defaults.
v1::OptimizerSpec Optimizer(v1::OptimizerSpec::Kind kind, float learning_rate) {
  v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(learning_rate);
  return spec;
}


// Two Gaussian blobs in 4 dimensions, labels 0 and 1.
Dataset Blobs(int n, uint32_t seed) {
  Dataset d;
  d.size = n;
  d.dim = 4;
  d.num_classes = 2;
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    for (int j = 0; j < 4; ++j) d.features.push_back((label ? 1.0f : -1.0f) + noise(rng));
    d.labels.push_back(label);
  }
  return d;
}

struct RunFigures {
  TrainResult result;
  int64_t bytes_pushed;
  int64_t bytes_pulled;
  int64_t params;
};

// Records the tables of each part of each push-pull sent in parts (the parts then go as
// one PushPull at Finish, PsClient's default).
class PartsRecordingClient : public testing::InProcessPsClient {
 public:
  PartsRecordingClient() : InProcessPsClient(1) {}

  std::unique_ptr<PushPullParts> StartPushPull(int worker, int64_t min_version) override {
    class Recording final : public PushPullParts {
     public:
      Recording(std::unique_ptr<PushPullParts> inner, std::vector<std::vector<std::string>>* log)
          : inner_(std::move(inner)), log_(log) {}
      void Send(std::vector<DenseTensor> grads, std::vector<DenseTensor> params) override {
        std::vector<std::string> tables;
        for (const DenseTensor& t : grads) tables.push_back(t.table);
        log_->push_back(std::move(tables));
        inner_->Send(std::move(grads), std::move(params));
      }
      PushPullResult Finish() override {
        log_->push_back({"finish"});
        return inner_->Finish();
      }

     private:
      std::unique_ptr<PushPullParts> inner_;
      std::vector<std::vector<std::string>>* log_;
    };
    return std::make_unique<Recording>(InProcessPsClient::StartPushPull(worker, min_version),
                                       &parts);
  }

  std::vector<std::vector<std::string>> parts;
};

// Through `client` when given (it must be new), else a client of its own.
RunFigures Train(const TrainerOptions& options, testing::InProcessPsClient* client = nullptr) {
  std::unique_ptr<testing::InProcessPsClient> own;
  if (client == nullptr) {
    own = std::make_unique<testing::InProcessPsClient>(1);
    client = own.get();
  }
  auto backend = kernels::NewCpuBackend();
  auto model = Mlp::Create({4, 8, 2}, 64, backend.get());
  EXPECT_TRUE(model.ok());
  for (const v1::TableSpec& spec : (*model)->TableSpecs(
           Optimizer(v1::OptimizerSpec::SGD, 0.1f), options.mode, 1)) {
    EXPECT_TRUE(client->CreateTable(spec).ok());
  }
  const Dataset train = Blobs(256, 1), test = Blobs(200, 2);
  Trainer trainer(options, client, model->get(), &train, &test, "cpu");
  absl::StatusOr<TrainResult> r = trainer.Run();
  EXPECT_TRUE(r.ok()) << r.status();
  return {r.ok() ? *r : TrainResult(), client->bytes_pushed(), client->bytes_pulled(),
          (*model)->num_parameters()};
}

TrainerOptions Options(v1::ConsistencyMode mode) {
  TrainerOptions o;
  o.batch_size = 16;  // 16 steps per epoch
  o.epochs = 3;
  o.mode = mode;
  o.log_every = 4;
  return o;
}

TEST(TrainerTest, UnbufferedAsyncPushesEveryStepAndLearns) {
  const RunFigures run = Train(Options(v1::ASYNC));
  EXPECT_EQ(run.result.steps, 48);
  EXPECT_EQ(run.result.pushes, 48);
  EXPECT_EQ(run.bytes_pushed, 48 * run.params * 4);
  EXPECT_GE(run.result.test_accuracy, 0.95);
  EXPECT_LT(run.result.last_loss, run.result.first_loss);
}

TEST(TrainerTest, BufferingFourStepsCutsTrafficFourFold) {
  TrainerOptions o = Options(v1::ASYNC);
  o.buffer_steps = 4;
  const RunFigures run = Train(o);
  EXPECT_EQ(run.result.steps, 48);
  EXPECT_EQ(run.result.pushes, 12);
  EXPECT_EQ(run.bytes_pushed, 12 * run.params * 4);
  // One pull per push for training, plus worker 0's evaluation after each epoch.
  EXPECT_EQ(run.bytes_pulled, (12 + 3) * run.params * 4);
  EXPECT_GE(run.result.test_accuracy, 0.95);
}

TEST(TrainerTest, OverlappedTransfersMoveTheSameBytesAndLearn) {
  TrainerOptions o = Options(v1::ASYNC);
  o.overlap = true;
  o.buffer_steps = 4;
  const RunFigures run = Train(o);
  EXPECT_EQ(run.result.pushes, 12);
  EXPECT_EQ(run.bytes_pushed, 12 * run.params * 4);
  // Nine of the twelve training pulls ran in the background; none was wasted.
  EXPECT_EQ(run.bytes_pulled, (12 + 3) * run.params * 4);
  EXPECT_GE(run.result.test_accuracy, 0.95);
}

// Layer overlap hands each layer's gradient over as backward completes it, last layer
// first, for every step but each epoch's last. (Over the in-process client the parts go
// as one push-pull at Finish, so equal results here check the plumbing; the TCP path is
// tests/push_pull_parts_test.cc and train_multiprocess_test.)
TEST(TrainerTest, LayerOverlapSendsEachLayerAndTrainsExactlyAsWholeSteps) {
  for (v1::ConsistencyMode mode : {v1::SYNC, v1::ASYNC}) {
    SCOPED_TRACE(v1::ConsistencyMode_Name(mode));
    const RunFigures whole = Train(Options(mode));
    TrainerOptions o = Options(mode);
    o.layer_overlap = true;
    PartsRecordingClient recorder;
    const RunFigures layered = Train(o, &recorder);
    EXPECT_EQ(layered.result.pushes, 48);
    EXPECT_EQ(layered.result.layered_pushes, 45);
    EXPECT_EQ(whole.result.layered_pushes, 0);
    EXPECT_EQ(layered.result.last_loss, whole.result.last_loss);
    EXPECT_EQ(layered.result.test_accuracy, whole.result.test_accuracy);
    EXPECT_EQ(layered.bytes_pushed, whole.bytes_pushed);
    EXPECT_EQ(layered.bytes_pulled, whole.bytes_pulled);
    // Every step but each epoch's last (which pulls nothing after it) went in parts.
    const std::vector<std::vector<std::string>> step = {
        {"fc1.w", "fc1.b"}, {"fc0.w", "fc0.b"}, {"finish"}};
    ASSERT_EQ(recorder.parts.size(), 3 * 15 * step.size());
    for (size_t i = 0; i < recorder.parts.size(); ++i) {
      ASSERT_EQ(recorder.parts[i], step[i % step.size()]) << i;
    }
  }
}

// Steps that accumulate into a buffer push as a whole: a part would carry one step's
// gradient, not the buffer's.
TEST(TrainerTest, LayerOverlapLeavesBufferedStepsWhole) {
  TrainerOptions o = Options(v1::SYNC);
  o.layer_overlap = true;
  o.buffer_steps = 2;
  PartsRecordingClient recorder;
  const RunFigures run = Train(o, &recorder);
  EXPECT_EQ(run.result.pushes, 24);
  EXPECT_EQ(run.result.layered_pushes, 0);
  EXPECT_TRUE(recorder.parts.empty());
}

TEST(TrainerTest, ByteLimitFlushesAndEpochEndsFlush) {
  TrainerOptions o = Options(v1::ASYNC);
  o.buffer_steps = 1000;
  o.epochs = 1;
  // Three steps' worth of gradient: pushes after steps 3, 6, 9, 12, 15 and the last (16).
  o.buffer_bytes = 3 * (4 * 8 + 8 + 8 * 2 + 2) * 4;
  const RunFigures run = Train(o);
  EXPECT_EQ(run.result.steps, 16);
  EXPECT_EQ(run.result.pushes, 6);
  EXPECT_EQ(run.bytes_pushed, 6 * run.params * 4);
}

TEST(TrainerTest, SyncSingleWorkerWithBufferAdvancesOneVersionPerPush) {
  TrainerOptions o = Options(v1::SYNC);
  o.buffer_steps = 2;
  o.buffer_mean = true;
  const RunFigures run = Train(o);
  EXPECT_EQ(run.result.pushes, 24);
  EXPECT_GE(run.result.test_accuracy, 0.95);
}

TEST(TrainerTest, ARestartedWorkerResumesWhereItsShardLeftOff) {
  ShardOptions so;
  so.heartbeat_interval = absl::Milliseconds(100);
  so.heartbeat_timeout = absl::Seconds(2);
  auto client = std::make_unique<testing::InProcessPsClient>(1, so);
  auto backend = kernels::NewCpuBackend();
  auto model = Mlp::Create({4, 8, 2}, 64, backend.get());
  ASSERT_TRUE(model.ok());
  for (const v1::TableSpec& spec : (*model)->TableSpecs(
           Optimizer(v1::OptimizerSpec::SGD, 0.1f), v1::ASYNC, 1)) {
    ASSERT_TRUE(client->CreateTable(spec).ok());
  }
  const Dataset train = Blobs(256, 1), test = Blobs(200, 2);
  TrainerOptions o = Options(v1::ASYNC);
  o.max_steps = 20;  // the first run stops after 20 of the 48 steps
  {
    Trainer first(o, client.get(), model->get(), &train, &test, "cpu");
    absl::StatusOr<TrainResult> r = first.Run();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->steps, 20);
    EXPECT_EQ(r->resumed_steps, 0);
  }
  // The servers know the worker completed 20 steps: its last heartbeat carried it.
  o.max_steps = 0;
  Trainer second(o, client.get(), model->get(), &train, &test, "cpu");
  absl::StatusOr<TrainResult> r = second.Run();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_steps, 20);
  EXPECT_EQ(r->steps, 48 - 20);
  EXPECT_GE(r->test_accuracy, 0.95);

  o.resume = false;  // starting over is still possible
  Trainer third(o, client.get(), model->get(), &train, &test, "cpu");
  r = third.Run();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resumed_steps, 0);
  EXPECT_EQ(r->steps, 48);
}

}  // namespace
}  // namespace ps
