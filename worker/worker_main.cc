// ps_worker: one data-parallel training replica. Every flag can also be given in the
// environment as PS_<FLAG> (e.g. PS_WORKER_INDEX), so one container image serves every
// worker. With --eval_only it pulls the current model and prints its test accuracy.
//
// --model picks what is trained: "mlp" (default) is the Fashion-MNIST classifier on dense
// tables; "logreg" (logistic regression) and "ctr" (embedding bag + MLP) learn click
// prediction from LibSVM files (--train_file, --test_file) with sparse tables.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/channel_credentials.h"
#include "common/flags_env.h"
#include "common/malloc_tuning.h"
#include "common/tf_config.h"
#include "glog/logging.h"
#include "kernels/backend.h"
#include "common/error_reason.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/data/libsvm.h"
#include "worker/data/mnist.h"
#include "common/client_security_flags.h"
#include "common/health_server.h"
#include "worker/model/mlp.h"
#include "worker/model/sparse_model.h"
#include "worker/train/init_from.h"
#include "worker/train/sparse_trainer.h"
#include "worker/train/trainer.h"
#include "worker/worker_flags.h"


namespace {

constexpr char kUsage[] = R"(ps_worker: one data-parallel training replica.

Usage: ps_worker --servers=host:port,... --worker_index=I --num_workers=N [flags]

--servers lists every shard in shard order, as the shards were given it. The model lives
on the shards: a worker started again against running shards resumes where the job is
(--resume) and does not start a new model.)";

int Fail(const absl::Status& s) {
  LOG(ERROR) << ps::Describe(s);
  return 1;
}

// Creates the model's tables (not for --eval_only alone, which reads what is there) and
// gives them --init_from's values. Tables that trained already keep theirs: a warning.
absl::Status PrepareTables(const std::vector<ps::v1::TableSpec>& specs, ps::PsClient* client) {
  const std::string init_from = absl::GetFlag(FLAGS_init_from);
  if (absl::GetFlag(FLAGS_eval_only) && init_from.empty()) return absl::OkStatus();
  for (const ps::v1::TableSpec& spec : specs) {
    if (absl::Status s = client->CreateTable(spec); !s.ok()) return s;
  }
  if (init_from.empty()) return absl::OkStatus();
  absl::StatusOr<ps::InitFromResult> r = ps::InitTablesFromFile(init_from, specs, client);
  if (r.ok()) {
    LOG(INFO) << "--init_from=" << init_from << ": " << r->tables << " tables, " << r->values
              << " values assigned";
    return absl::OkStatus();
  }
  if (ps::HasReason(r.status(), ps::kReasonTableTrained)) {
    LOG(WARNING) << "--init_from=" << init_from << " not applied: " << r.status().message();
    return absl::OkStatus();
  }
  return r.status();
}

// --model=logreg|ctr: trains on LibSVM files with sparse tables.
int RunSparse(const std::string& model_name, int worker, int workers,
              const std::vector<std::string>& servers, const ps::v1::OptimizerSpec& optimizer,
              ps::v1::ConsistencyMode mode) {
  const bool eval_only = absl::GetFlag(FLAGS_eval_only);
  const std::string train_file = absl::GetFlag(FLAGS_train_file);
  const std::string test_file = absl::GetFlag(FLAGS_test_file);
  if (!eval_only && train_file.empty()) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--model=", model_name, " needs --train_file (LibSVM)")));
  }
  if (eval_only && test_file.empty()) {
    return Fail(absl::InvalidArgumentError("--eval_only needs --test_file"));
  }
  absl::StatusOr<ps::SparseDataset> train = ps::SparseDataset();
  if (!eval_only) {
    train = ps::ReadLibSvm(train_file);
    if (!train.ok()) return Fail(train.status());
  }
  absl::StatusOr<ps::SparseDataset> test = ps::SparseDataset();
  if (!test_file.empty() && (worker == 0 || eval_only)) {  // worker 0 evaluates
    test = ps::ReadLibSvm(test_file);
    if (!test.ok()) return Fail(test.status());
  }
  LOG(INFO) << "read " << train->size() << " training and " << test->size()
            << " held-out examples";

  // The models are small and their work is gathering rows, so they compute on the CPU.
  std::unique_ptr<ps::kernels::ComputeBackend> backend =
      ps::kernels::NewCpuBackend(absl::GetFlag(FLAGS_cpu_threads));
  std::unique_ptr<ps::SparseModel> model;
  // FTRL's weights are a closed form of its accumulators, which would discard the random
  // initialisation the dense layers need; they use AdaGrad at the same rate instead.
  ps::v1::OptimizerSpec dense_optimizer = optimizer;
  if (model_name == "logreg") {
    model = std::make_unique<ps::LogisticRegression>();
  } else {
    absl::StatusOr<std::unique_ptr<ps::CtrModel>> ctr = ps::CtrModel::Create(
        absl::GetFlag(FLAGS_embedding_dim), absl::GetFlag(FLAGS_ctr_hidden), backend.get());
    if (!ctr.ok()) return Fail(ctr.status());
    model = *std::move(ctr);
    if (optimizer.kind() == ps::v1::OptimizerSpec::FTRL) {
      dense_optimizer =
          ps::OptimizerOf(ps::v1::OptimizerSpec::ADAGRAD, optimizer.learning_rate());
    }
  }

  absl::StatusOr<ps::ClientOptions> client_options = ps::ClientOptionsFromFlags();
  if (!client_options.ok()) return Fail(client_options.status());
  std::unique_ptr<ps::PsClient> client = ps::NewGrpcPsClient(servers, *client_options);
  if (absl::Status s = client->WaitForShards(ps::ConnectTimeout()); !s.ok()) {
    return Fail(s);
  }
  if (absl::Status s = PrepareTables(model->TableSpecs(optimizer, dense_optimizer, mode,
                                                       absl::GetFlag(FLAGS_staleness_bound),
                                                       absl::GetFlag(FLAGS_seed)),
                                     client.get());
      !s.ok()) {
    return Fail(s);
  }
  ps::SparseTrainer trainer(ps::SparseTrainerOptionsFromFlags(worker, workers, mode), client.get(), model.get(), &*train,
                            test->size() > 0 ? &*test : nullptr, backend->name());
  if (eval_only) {
    absl::StatusOr<double> loss = trainer.Evaluate();
    if (!loss.ok()) return Fail(loss.status());
    std::printf("eval test_logloss=%.6f\n", *loss);
    return 0;
  }
  absl::StatusOr<ps::SparseTrainResult> result = trainer.Run();
  if (!result.ok()) return Fail(result.status());
  std::printf(
      "worker %d done steps=%lld samples=%lld seconds=%.2f samples_per_sec=%.0f first_loss=%.6f "
      "last_loss=%.6f test_logloss=%.6f\n",
      worker, static_cast<long long>(result->steps), static_cast<long long>(result->samples),
      result->seconds, result->samples / std::max(1e-9, result->seconds), result->first_loss,
      result->last_loss, result->test_logloss);
  return 0;
}

// Serves health and reflection (for probes and stock tools) when --health_port is set;
// `health` keeps it alive for the process's life.
absl::Status StartHealth(std::unique_ptr<ps::HealthServer>* health) {
  if (absl::GetFlag(FLAGS_health_port) < 0) return absl::OkStatus();
  absl::StatusOr<std::unique_ptr<ps::HealthServer>> h =
      ps::HealthServer::Start(absl::GetFlag(FLAGS_health_host), absl::GetFlag(FLAGS_health_port));
  if (!h.ok()) return h.status();
  *health = *std::move(h);
  LOG(INFO) << "health service on port " << (*health)->port();
  const std::string port_file = absl::GetFlag(FLAGS_health_port_file);
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << (*health)->port() << "\n";
    if (std::rename((port_file + ".tmp").c_str(), port_file.c_str()) != 0) {
      return absl::InternalError("cannot write --health_port_file " + port_file);
    }
  }
  return absl::OkStatus();
}


// --model=mlp: trains the MLP on Fashion-MNIST with dense tables.
int RunDense(int worker, int workers, const std::vector<std::string>& servers,
             const ps::v1::OptimizerSpec& optimizer, ps::v1::ConsistencyMode mode) {
  absl::StatusOr<std::vector<int>> hidden = ps::ParseLayerSizes(absl::GetFlag(FLAGS_layers));
  if (!hidden.ok()) return Fail(hidden.status());

  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<ps::Dataset> test = ps::LoadMnist(data_dir, "t10k");
  if (!test.ok()) return Fail(test.status());
  absl::StatusOr<ps::Dataset> train = ps::Dataset();
  if (!absl::GetFlag(FLAGS_eval_only)) {
    train = ps::LoadMnist(data_dir, "train");
    if (!train.ok()) return Fail(train.status());
  }

  absl::StatusOr<std::unique_ptr<ps::kernels::ComputeBackend>> backend = ps::BackendFromFlags();
  if (!backend.ok()) return Fail(backend.status());
  std::vector<int> sizes = {test->dim};
  sizes.insert(sizes.end(), hidden->begin(), hidden->end());
  sizes.push_back(test->num_classes);
  const int eval_batch = std::max(absl::GetFlag(FLAGS_batch_size), 1000);
  absl::StatusOr<std::unique_ptr<ps::Mlp>> model =
      ps::Mlp::Create(sizes, eval_batch, backend->get());
  if (!model.ok()) return Fail(model.status());

  absl::StatusOr<ps::ClientOptions> client_options = ps::ClientOptionsFromFlags();
  if (!client_options.ok()) return Fail(client_options.status());
  std::unique_ptr<ps::PsClient> client = ps::NewGrpcPsClient(servers, *client_options);
  if (absl::Status s = client->WaitForShards(ps::ConnectTimeout()); !s.ok()) {
    return Fail(s);
  }
  std::vector<ps::v1::TableSpec> specs =
      (*model)->TableSpecs(optimizer, mode, absl::GetFlag(FLAGS_seed));
  for (ps::v1::TableSpec& spec : specs) {
    if (mode == ps::v1::SSP) spec.set_staleness_bound(absl::GetFlag(FLAGS_staleness_bound));
    if (mode == ps::v1::SYNC) spec.set_backup_workers(absl::GetFlag(FLAGS_backup_workers));
  }
  if (absl::Status s = PrepareTables(specs, client.get()); !s.ok()) return Fail(s);

  absl::StatusOr<ps::TrainerOptions> options = ps::TrainerOptionsFromFlags(worker, workers, mode);
  if (!options.ok()) return Fail(options.status());
  ps::Trainer trainer(*options, client.get(), model->get(), &*train, &*test, (*backend)->name());

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
      "last_loss=%.4f test_accuracy=%.4f pushed_bytes=%lld pulled_bytes=%lld "
      "layered_pushes=%lld\n",
      worker, static_cast<long long>(result->steps), static_cast<long long>(result->samples),
      result->seconds, result->samples / std::max(1e-9, result->seconds), result->first_loss,
      result->last_loss, result->test_accuracy, static_cast<long long>(client->bytes_pushed()),
      static_cast<long long>(client->bytes_pulled()),
      static_cast<long long>(result->layered_pushes));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ps::KeepFreedMemoryForReuse();
  // Lock-order checking is for the tests (which keep it on); in the daemons it costs
  // about 1% of every pull and push (perf: GraphCycles::GetId).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  google::InitGoogleLogging(argv[0]);
  if (absl::Status s = ps::ApplyTfConfigFromEnv(ps::TfRole::kWorker); !s.ok()) {  // before PS_*
    std::fprintf(stderr, "ps_worker: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  ps::ParseFlagsOrExit(argc, argv, "ps_worker", kUsage);

  const int worker = absl::GetFlag(FLAGS_worker_index);
  const int workers = absl::GetFlag(FLAGS_num_workers);
  if (workers < 1 || worker < 0 || worker >= workers) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "--worker_index=%d must lie in [0, --num_workers=%d)", worker, workers)));
  }
  const std::vector<std::string> servers =
      absl::StrSplit(absl::GetFlag(FLAGS_servers), ',', absl::SkipWhitespace());
  if (servers.empty()) return Fail(absl::InvalidArgumentError("--servers is empty"));
  if (absl::Status s = ps::CheckClientSecurityFlags(servers); !s.ok()) return Fail(s);
  absl::StatusOr<ps::v1::OptimizerSpec> optimizer = ps::OptimizerFromFlags();
  if (!optimizer.ok()) return Fail(optimizer.status());
  const std::string model_name = absl::AsciiStrToLower(absl::GetFlag(FLAGS_model));
  if (model_name != "mlp" && model_name != "logreg" && model_name != "ctr") {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("--model=", model_name, " is unknown: want mlp, logreg or ctr")));
  }
  const bool sparse_model = model_name != "mlp";
  if (sparse_model && absl::GetFlag(FLAGS_layer_overlap)) {
    LOG(WARNING) << "--layer_overlap is for --model=mlp; --model=" << model_name
                 << " pushes each step whole";
  }
  absl::StatusOr<ps::v1::ConsistencyMode> mode = ps::ModeFromFlag(sparse_model);
  if (!mode.ok()) return Fail(mode.status());
  if (absl::GetFlag(FLAGS_batch_size) <= 0) {
    return Fail(absl::InvalidArgumentError("--batch_size must be positive"));
  }
  std::unique_ptr<ps::HealthServer> health;
  if (absl::Status s = StartHealth(&health); !s.ok()) return Fail(s);
  if (sparse_model) return RunSparse(model_name, worker, workers, servers, *optimizer, *mode);
  return RunDense(worker, workers, servers, *optimizer, *mode);
}
