// ps_worker: one data-parallel training replica. Every flag can also be given in the
// environment as PS_<FLAG> (e.g. PS_WORKER_INDEX), so one container image serves every
// worker. With --eval_only it pulls the current model and prints its test accuracy.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/flags_env.h"
#include "common/tf_config.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "server/optimizer.h"
#include "worker/mlp.h"
#include "worker/mnist.h"
#include "worker/trainer.h"

ABSL_FLAG(std::string, servers, "127.0.0.1:50051", "Comma-separated host:port of every shard, in shard order.");
ABSL_FLAG(int, worker_index, 0, "This worker's index in [0, num_workers).");
ABSL_FLAG(int, num_workers, 1, "Number of workers; the data set is split among them.");
ABSL_FLAG(std::string, data_dir, ps::kDefaultFashionMnistDir, "Directory with the Fashion-MNIST IDX files.");
ABSL_FLAG(std::string, layers, "512,256", "Hidden layer sizes.");
ABSL_FLAG(int, batch_size, 64, "Examples per step.");
ABSL_FLAG(int, epochs, 5, "Passes over this worker's shard.");
ABSL_FLAG(int64_t, max_steps, 0, "Stop after this many steps (0: no limit).");
ABSL_FLAG(std::string, optimizer, "sgd", "sgd, momentum, nesterov, adagrad, adam or adamw.");
ABSL_FLAG(double, learning_rate, 0.1, "Learning rate.");
ABSL_FLAG(double, momentum, 0.9, "Momentum for --optimizer=momentum|nesterov.");
ABSL_FLAG(double, weight_decay, 0.0, "Weight decay.");
ABSL_FLAG(std::string, mode, "sync", "sync or async.");
ABSL_FLAG(std::string, device, "auto", "auto, cuda or cpu.");
ABSL_FLAG(int, cpu_threads, 1, "BLAS threads on the CPU backend.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for initialisation and data order (same on every worker).");
ABSL_FLAG(int, log_every, 100, "Log progress every this many steps.");
ABSL_FLAG(int, buffer_steps, 1, "Buffered gradients: push once every this many local steps.");
ABSL_FLAG(int64_t, buffer_bytes, 0, "Buffered gradients: push once this many gradient bytes are buffered (0: off).");
ABSL_FLAG(absl::Duration, buffer_time, absl::ZeroDuration(), "Buffered gradients: push at least this often (0: off).");
ABSL_FLAG(bool, buffer_mean, false, "Push the mean of the buffered gradients instead of their sum.");
ABSL_FLAG(bool, eval_only, false, "Only evaluate the servers' current model on the test set.");

namespace {

absl::StatusOr<ps::v1::OptimizerSpec> OptimizerFromFlags() {
  const std::string name = absl::AsciiStrToLower(absl::GetFlag(FLAGS_optimizer));
  const float lr = static_cast<float>(absl::GetFlag(FLAGS_learning_rate));
  ps::v1::OptimizerSpec spec;
  if (name == "sgd" || name == "momentum" || name == "nesterov") {
    spec = ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::SGD, lr);
    if (name != "sgd") spec.set_momentum(static_cast<float>(absl::GetFlag(FLAGS_momentum)));
    spec.set_nesterov(name == "nesterov");
  } else if (name == "adam") {
    spec = ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::ADAM, lr);
  } else if (name == "adamw") {
    spec = ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::ADAMW, lr);
  } else if (name == "adagrad") {
    spec = ps::DefaultOptimizerSpec(ps::v1::OptimizerSpec::ADAGRAD, lr);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--optimizer=", name, " is unknown: want sgd, momentum, nesterov, adagrad, adam or adamw"));
  }
  if (absl::GetFlag(FLAGS_weight_decay) != 0.0 || name != "adamw") {
    spec.set_weight_decay(static_cast<float>(absl::GetFlag(FLAGS_weight_decay)));
  }
  if (absl::Status s = ps::Optimizer::Validate(spec); !s.ok()) return s;
  return spec;
}

absl::StatusOr<ps::v1::ConsistencyMode> ModeFromFlag() {
  const std::string mode = absl::AsciiStrToLower(absl::GetFlag(FLAGS_mode));
  if (mode == "sync") return ps::v1::SYNC;
  if (mode == "async") return ps::v1::ASYNC;
  return absl::InvalidArgumentError(absl::StrCat("--mode=", mode, " is unknown: want sync or async"));
}

int Fail(const absl::Status& s) {
  LOG(ERROR) << s;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ps_worker: one data-parallel training replica.");
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  if (absl::Status s = ps::ApplyTfConfigFromEnv(ps::TfRole::kWorker); !s.ok()) {  // before PS_*
    std::fprintf(stderr, "ps_worker: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (absl::Status s = ps::SetFlagsFromEnv(
          {"servers", "worker_index", "num_workers", "data_dir", "layers", "batch_size", "epochs",
           "max_steps", "optimizer", "learning_rate", "momentum", "weight_decay", "mode", "device",
           "cpu_threads", "seed", "log_every", "buffer_steps", "buffer_bytes", "buffer_time",
           "buffer_mean"});
      !s.ok()) {
    std::fprintf(stderr, "ps_worker: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  absl::ParseCommandLine(argc, argv);

  const int worker = absl::GetFlag(FLAGS_worker_index);
  const int workers = absl::GetFlag(FLAGS_num_workers);
  if (workers < 1 || worker < 0 || worker >= workers) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "--worker_index=%d must lie in [0, --num_workers=%d)", worker, workers)));
  }
  const std::vector<std::string> servers =
      absl::StrSplit(absl::GetFlag(FLAGS_servers), ',', absl::SkipWhitespace());
  if (servers.empty()) return Fail(absl::InvalidArgumentError("--servers is empty"));
  absl::StatusOr<ps::v1::OptimizerSpec> optimizer = OptimizerFromFlags();
  if (!optimizer.ok()) return Fail(optimizer.status());
  absl::StatusOr<ps::v1::ConsistencyMode> mode = ModeFromFlag();
  if (!mode.ok()) return Fail(mode.status());
  absl::StatusOr<std::vector<int>> hidden = ps::ParseLayerSizes(absl::GetFlag(FLAGS_layers));
  if (!hidden.ok()) return Fail(hidden.status());
  if (absl::GetFlag(FLAGS_batch_size) <= 0) {
    return Fail(absl::InvalidArgumentError("--batch_size must be positive"));
  }

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<ps::Dataset> test = ps::LoadMnist(data_dir, "t10k");
  if (!test.ok()) return Fail(test.status());
  absl::StatusOr<ps::Dataset> train = ps::Dataset();
  if (!absl::GetFlag(FLAGS_eval_only)) {
    train = ps::LoadMnist(data_dir, "train");
    if (!train.ok()) return Fail(train.status());
  }

  absl::StatusOr<std::unique_ptr<ps::kernels::ComputeBackend>> backend =
      ps::kernels::NewBackend(absl::GetFlag(FLAGS_device), absl::GetFlag(FLAGS_cpu_threads));
  if (!backend.ok()) return Fail(backend.status());
  std::vector<int> sizes = {test->dim};
  sizes.insert(sizes.end(), hidden->begin(), hidden->end());
  sizes.push_back(test->num_classes);
  const int eval_batch = std::max(absl::GetFlag(FLAGS_batch_size), 1000);
  absl::StatusOr<std::unique_ptr<ps::Mlp>> model =
      ps::Mlp::Create(sizes, eval_batch, backend->get());
  if (!model.ok()) return Fail(model.status());

  std::unique_ptr<ps::PsClient> client = ps::NewGrpcPsClient(servers);
  if (!absl::GetFlag(FLAGS_eval_only)) {
    for (const ps::v1::TableSpec& spec :
         (*model)->TableSpecs(*optimizer, *mode, absl::GetFlag(FLAGS_seed))) {
      if (absl::Status s = client->CreateTable(spec); !s.ok()) return Fail(s);
    }
  }

  ps::TrainerOptions options;
  options.worker_index = worker;
  options.num_workers = workers;
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  options.mode = *mode;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.log_every = std::max(1, absl::GetFlag(FLAGS_log_every));
  options.buffer_steps = absl::GetFlag(FLAGS_buffer_steps);
  options.buffer_bytes = absl::GetFlag(FLAGS_buffer_bytes);
  options.buffer_time = absl::GetFlag(FLAGS_buffer_time);
  options.buffer_mean = absl::GetFlag(FLAGS_buffer_mean);
  if (options.buffer_steps < 1 || options.buffer_bytes < 0 ||
      options.buffer_time < absl::ZeroDuration()) {
    return Fail(absl::InvalidArgumentError(
        "--buffer_steps must be >= 1 and --buffer_bytes, --buffer_time >= 0"));
  }
  ps::Trainer trainer(options, client.get(), model->get(), &*train, &*test, (*backend)->name());

  if (absl::GetFlag(FLAGS_eval_only)) {
    absl::StatusOr<double> acc = trainer.Evaluate(0);
    if (!acc.ok()) return Fail(acc.status());
    std::printf("eval test_accuracy=%.4f\n", *acc);
    return 0;
  }
  absl::StatusOr<ps::TrainResult> result = trainer.Run();
  if (!result.ok()) return Fail(result.status());
  std::printf(
      "worker %d done steps=%lld samples=%lld seconds=%.2f samples_per_sec=%.0f first_loss=%.4f "
      "last_loss=%.4f test_accuracy=%.4f\n",
      worker, static_cast<long long>(result->steps), static_cast<long long>(result->samples),
      result->seconds, result->samples / std::max(1e-9, result->seconds), result->first_loss,
      result->last_loss, result->test_accuracy);
  return 0;
}
