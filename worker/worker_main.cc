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

ABSL_FLAG(std::string, servers, "127.0.0.1:50051", "Comma-separated host:port of every shard, in shard order.");
ABSL_FLAG(int, worker_index, 0, "This worker's index in [0, num_workers).");
ABSL_FLAG(int, num_workers, 1, "Number of workers; the data set is split among them.");
ABSL_FLAG(std::string, data_dir, ps::kDefaultFashionMnistDir, "Directory with the Fashion-MNIST IDX files.");
ABSL_FLAG(std::string, layers, "512,256", "Hidden layer sizes.");
ABSL_FLAG(int, batch_size, 64, "Examples per step.");
ABSL_FLAG(int, epochs, 5, "Passes over this worker's shard.");
ABSL_FLAG(int64_t, max_steps, 0, "Stop after this many steps (0: no limit).");
ABSL_FLAG(std::string, optimizer, "sgd", "sgd, momentum, nesterov, adagrad, adam, adamw or ftrl.");
ABSL_FLAG(double, learning_rate, 0.1, "Learning rate.");
ABSL_FLAG(double, momentum, 0.9, "Momentum for --optimizer=momentum|nesterov.");
ABSL_FLAG(double, weight_decay, 0.0, "Weight decay.");
ABSL_FLAG(std::string, mode, "",
          "sync, async or ssp (bounded staleness); empty: sync for --model=mlp, async for the "
          "sparse models (sparse tables have no sync mode).");
ABSL_FLAG(int, staleness_bound, 3,
          "--mode=ssp: how many steps a worker may run ahead of the slowest one.");
ABSL_FLAG(double, l1, 0.0, "--optimizer=ftrl: L1 regularisation strength.");
ABSL_FLAG(double, l2, 0.0, "--optimizer=ftrl: L2 regularisation strength.");
ABSL_FLAG(std::string, model, "mlp",
          "mlp (Fashion-MNIST), logreg (sparse logistic regression) or ctr (embedding bag + "
          "MLP click model); logreg and ctr read --train_file and --test_file.");
ABSL_FLAG(std::string, train_file, "", "--model=logreg|ctr: training examples (LibSVM, may be gzipped).");
ABSL_FLAG(std::string, test_file, "", "--model=logreg|ctr: held-out examples for the final log-loss.");
ABSL_FLAG(int, embedding_dim, 8, "--model=ctr: floats per feature embedding.");
ABSL_FLAG(int, ctr_hidden, 32, "--model=ctr: width of the hidden layer.");
ABSL_FLAG(std::string, device, "auto",
          "auto (the GPU when there is one, else the CPU, with a warning), cuda or cpu.");
ABSL_FLAG(int, gpu, -1,
          "Which GPU on a multi-GPU host (CUDA ordinal); -1: $LOCAL_RANK when set (as torchrun "
          "and deploy/hosts/launch.py set it: the worker's rank on its host), else 0.");
ABSL_FLAG(int, cpu_threads, 1, "BLAS threads on the CPU backend.");
ABSL_FLAG(uint64_t, seed, 1, "Seed for initialisation and data order (same on every worker).");
ABSL_FLAG(int, log_every, 100, "Log progress every this many steps.");
ABSL_FLAG(int, buffer_steps, 1, "Buffered gradients: push once every this many local steps.");
ABSL_FLAG(int64_t, buffer_bytes, 0, "Buffered gradients: push once this many gradient bytes are buffered (0: off).");
ABSL_FLAG(absl::Duration, buffer_time, absl::ZeroDuration(), "Buffered gradients: push at least this often (0: off).");
ABSL_FLAG(bool, buffer_mean, false, "Push the mean of the buffered gradients instead of their sum.");
ABSL_FLAG(std::string, lr_schedule, "constant", "constant, step, cosine or warmup (linear warm-up, then constant).");
ABSL_FLAG(int64_t, lr_step_size, 1000, "step: updates between decays.");
ABSL_FLAG(double, lr_gamma, 0.5, "step: decay factor.");
ABSL_FLAG(int64_t, lr_total_steps, 10000, "cosine: updates over which the rate decays.");
ABSL_FLAG(double, lr_min, 0.0, "cosine: the final rate.");
ABSL_FLAG(int64_t, lr_warmup_steps, 100, "warmup: updates of the linear ramp.");
ABSL_FLAG(int, backup_workers, 0, "sync: a step proceeds once all but this many live workers pushed; later gradients are dropped and counted.");
ABSL_FLAG(std::string, token_file, "",
          "The worker's token (a file, as a Kubernetes Secret mounts it); unset: $PS_TOKEN, "
          "else none (docs/security.md).");
ABSL_FLAG(std::string, health_host, "127.0.0.1",
          "Address the health service listens on: this machine only unless told otherwise; in a "
          "container, the pod's address (the kubelet's probes connect to it).");
ABSL_FLAG(int, health_port, -1, "Serve the gRPC health service and reflection on this port (-1: off, 0: a free one), for Kubernetes probes.");
ABSL_FLAG(std::string, health_port_file, "", "If set, the health port is written here once serving.");
ABSL_FLAG(bool, same_host, true,
          "Use the same-host transfer windows a server offers when it runs on this host "
          "(cross-memory attach instead of TCP for tensor bytes; docs/same_host.md).");
ABSL_FLAG(int64_t, max_chunk_bytes, 1 << 20, "Largest request sent to one shard; bigger tensors move as several requests at once.");
ABSL_FLAG(int, channels_per_shard, 2,
          "TCP connections to each shard; a call's chunks take turns on them (docs/wire.md).");
ABSL_FLAG(std::string, wire_format, "float32",
          "How dense values travel over TCP, both ways: float32, bf16 or fp16 for every table, or "
          "table=format pairs with *=format for the rest (docs/wire.md); windows stay float32.");
ABSL_FLAG(bool, wire_error_feedback, true,
          "16-bit gradients carry what rounding lost in earlier pushes (error feedback).");
ABSL_FLAG(bool, layer_overlap, false,
          "Sync/async over TCP: push each layer's gradient (with the pull of its next values) as "
          "soon as backward has produced it, while backward goes on (docs/wire.md).");
ABSL_FLAG(bool, overlap, false, "Async/SSP: pull and push in the background while a step computes (one step more staleness; pays off with spare cores, not on 2).");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Minutes(5),
          "How long to wait at start for every shard to answer (a line every 5 s says which "
          "and why); past it the worker fails naming the address and the cause.");
ABSL_FLAG(absl::Duration, push_retry_timeout, absl::Seconds(60),
          "How long a push is resent (same push id, applied once) while a shard restarts.");
ABSL_FLAG(bool, resume, true, "Skip the steps the servers recorded this worker index as having done.");
ABSL_FLAG(bool, eval_only, false, "Only evaluate the servers' current model on the test set.");
ABSL_FLAG(std::string, init_from, "",
          "A model file (.npz, as psctl export writes) whose values the tables start from; "
          "applied only to tables no push has reached (docs/model_files.md).");

namespace {

constexpr char kUsage[] = R"(ps_worker: one data-parallel training replica.

Usage: ps_worker --servers=host:port,... --worker_index=I --num_workers=N [flags]

--servers lists every shard in shard order, as the shards were given it. The model lives
on the shards: a worker started again against running shards resumes where the job is
(--resume) and does not start a new model.)";

// The servers fill every hyper-parameter left out with PyTorch's default for the kind.
ps::v1::OptimizerSpec OptimizerOf(ps::v1::OptimizerSpec::Kind kind, float learning_rate) {
  ps::v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(learning_rate);
  return spec;
}

absl::StatusOr<ps::v1::OptimizerSpec> OptimizerFromFlags() {
  const std::string name = absl::AsciiStrToLower(absl::GetFlag(FLAGS_optimizer));
  const float lr = static_cast<float>(absl::GetFlag(FLAGS_learning_rate));
  ps::v1::OptimizerSpec spec;
  if (name == "sgd" || name == "momentum" || name == "nesterov") {
    spec = OptimizerOf(ps::v1::OptimizerSpec::SGD, lr);
    if (name != "sgd") spec.set_momentum(static_cast<float>(absl::GetFlag(FLAGS_momentum)));
    spec.set_nesterov(name == "nesterov");
  } else if (name == "adam") {
    spec = OptimizerOf(ps::v1::OptimizerSpec::ADAM, lr);
  } else if (name == "adamw") {
    spec = OptimizerOf(ps::v1::OptimizerSpec::ADAMW, lr);
  } else if (name == "adagrad") {
    spec = OptimizerOf(ps::v1::OptimizerSpec::ADAGRAD, lr);
  } else if (name == "ftrl") {
    spec = OptimizerOf(ps::v1::OptimizerSpec::FTRL, lr);
    spec.set_l1(static_cast<float>(absl::GetFlag(FLAGS_l1)));
    spec.set_l2(static_cast<float>(absl::GetFlag(FLAGS_l2)));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--optimizer=", name,
        " is unknown: want sgd, momentum, nesterov, adagrad, adam, adamw or ftrl"));
  }
  if (name != "ftrl" && (absl::GetFlag(FLAGS_l1) != 0.0 || absl::GetFlag(FLAGS_l2) != 0.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--l1 and --l2 apply to --optimizer=ftrl only, not ", name));
  }
  if (absl::GetFlag(FLAGS_weight_decay) != 0.0 || name != "adamw") {
    spec.set_weight_decay(static_cast<float>(absl::GetFlag(FLAGS_weight_decay)));
  }
  const std::string schedule = absl::AsciiStrToLower(absl::GetFlag(FLAGS_lr_schedule));
  ps::v1::LearningRateSchedule* sched = spec.mutable_schedule();
  if (schedule == "constant") {
    sched->set_kind(ps::v1::LearningRateSchedule::CONSTANT);
  } else if (schedule == "step") {
    sched->set_kind(ps::v1::LearningRateSchedule::STEP);
    sched->set_step_size(absl::GetFlag(FLAGS_lr_step_size));
    sched->set_gamma(static_cast<float>(absl::GetFlag(FLAGS_lr_gamma)));
  } else if (schedule == "cosine") {
    sched->set_kind(ps::v1::LearningRateSchedule::COSINE);
    sched->set_total_steps(absl::GetFlag(FLAGS_lr_total_steps));
    sched->set_min_lr(static_cast<float>(absl::GetFlag(FLAGS_lr_min)));
  } else if (schedule == "warmup") {
    sched->set_kind(ps::v1::LearningRateSchedule::LINEAR_WARMUP);
    sched->set_warmup_steps(absl::GetFlag(FLAGS_lr_warmup_steps));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lr_schedule=", schedule, " is unknown: want constant, step, cosine or warmup"));
  }
  // The shards validate the hyper-parameters (and fill in the defaults) at CreateTable;
  // their INVALID_ARGUMENT names the parameter and its range.
  return spec;
}

absl::StatusOr<ps::v1::ConsistencyMode> ModeFromFlag(bool sparse_model) {
  std::string mode = absl::AsciiStrToLower(absl::GetFlag(FLAGS_mode));
  if (mode.empty()) mode = sparse_model ? "async" : "sync";
  if (absl::GetFlag(FLAGS_staleness_bound) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--staleness_bound=", absl::GetFlag(FLAGS_staleness_bound), " is negative"));
  }
  if (mode == "sync" && sparse_model) {
    return absl::InvalidArgumentError(
        "--mode=sync is not available for sparse tables: use --mode=async or --mode=ssp");
  }
  if (mode == "sync") return ps::v1::SYNC;
  if (mode == "async") return ps::v1::ASYNC;
  if (mode == "ssp") return ps::v1::SSP;
  return absl::InvalidArgumentError(
      absl::StrCat("--mode=", mode, " is unknown: want sync, async or ssp"));
}

absl::StatusOr<ps::ClientOptions> ClientOptionsFromFlags() {
  ps::ClientOptions options;
  options.max_chunk_bytes = std::max<int64_t>(4096, absl::GetFlag(FLAGS_max_chunk_bytes));
  options.same_host = absl::GetFlag(FLAGS_same_host);
  options.channels_per_shard = std::max(1, absl::GetFlag(FLAGS_channels_per_shard));
  options.push_retry_timeout = std::max(absl::ZeroDuration(), absl::GetFlag(FLAGS_push_retry_timeout));
  absl::StatusOr<ps::WireFormats> formats = ps::ParseWireFormats(absl::GetFlag(FLAGS_wire_format));
  if (!formats.ok()) return formats.status();
  options.wire_formats = *std::move(formats);
  options.wire_formats.error_feedback = absl::GetFlag(FLAGS_wire_error_feedback);
  absl::StatusOr<std::string> token = ps::LoadToken(absl::GetFlag(FLAGS_token_file));
  if (!token.ok()) return token.status();
  options.token = *std::move(token);
  const ps::ChannelCredentials tls = ps::TlsCredentialsFromFlags();
  options.tls_ca_file = tls.tls_ca_file;
  options.tls_cert_file = tls.tls_cert_file;
  options.tls_key_file = tls.tls_key_file;
  options.tls_server_name = tls.tls_server_name;
  LOG(INFO) << "to the shards: "
            << (options.tls_ca_file.empty()
                    ? "plaintext"
                    : (options.tls_cert_file.empty() ? "TLS" : "TLS with a client certificate"))
            << ", " << (options.token.empty() ? "no token" : "a token");
  if (options.wire_formats.all != ps::v1::FLOAT32 || !options.wire_formats.tables.empty()) {
    LOG(INFO) << "wire format " << options.wire_formats.ToString()
              << (options.wire_formats.error_feedback ? ", gradients with error feedback" : "")
              << " (TCP only; same-host windows carry float32)";
  }
  return options;
}

// --device and --gpu (or LOCAL_RANK) to a backend; --device=auto says so when it falls
// back to the CPU.
absl::StatusOr<std::unique_ptr<ps::kernels::ComputeBackend>> BackendFromFlags() {
  const std::string device = absl::GetFlag(FLAGS_device);
  const int threads = absl::GetFlag(FLAGS_cpu_threads);
  if (device == "cpu") return ps::kernels::NewCpuBackend(threads);
  int gpu = absl::GetFlag(FLAGS_gpu);
  if (gpu < 0) {
    gpu = 0;
    const char* rank = std::getenv("LOCAL_RANK");
    if (rank != nullptr && (!absl::SimpleAtoi(rank, &gpu) || gpu < 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LOCAL_RANK='", rank, "' is not a GPU index; unset it or give --gpu"));
    }
  }
  if (device == "cuda") return ps::kernels::NewCudaBackend(gpu);
  if (device != "auto") return ps::kernels::NewBackend(device, threads);
  absl::StatusOr<std::unique_ptr<ps::kernels::ComputeBackend>> cuda =
      ps::kernels::NewCudaBackend(gpu);
  if (cuda.ok()) return cuda;
  LOG(WARNING) << "--device=auto: no GPU to train on (" << cuda.status().message()
               << "); training on the CPU with --cpu_threads=" << threads
               << " (--device=cpu silences this, --device=cuda makes it an error)";
  return ps::kernels::NewCpuBackend(threads);
}

absl::Duration ConnectTimeout() {
  return std::max(absl::Seconds(1), absl::GetFlag(FLAGS_connect_timeout));
}

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
  if (absl::IsFailedPrecondition(r.status())) {
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
          OptimizerOf(ps::v1::OptimizerSpec::ADAGRAD, optimizer.learning_rate());
    }
  }

  absl::StatusOr<ps::ClientOptions> client_options = ClientOptionsFromFlags();
  if (!client_options.ok()) return Fail(client_options.status());
  std::unique_ptr<ps::PsClient> client = ps::NewGrpcPsClient(servers, *client_options);
  if (absl::Status s = client->WaitForShards(ConnectTimeout()); !s.ok()) {
    return Fail(s);
  }
  if (absl::Status s = PrepareTables(model->TableSpecs(optimizer, dense_optimizer, mode,
                                                       absl::GetFlag(FLAGS_staleness_bound),
                                                       absl::GetFlag(FLAGS_seed)),
                                     client.get());
      !s.ok()) {
    return Fail(s);
  }
  ps::SparseTrainerOptions options;
  options.worker_index = worker;
  options.num_workers = workers;
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  options.mode = mode;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.log_every = std::max(1, absl::GetFlag(FLAGS_log_every));
  ps::SparseTrainer trainer(options, client.get(), model.get(), &*train,
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

absl::StatusOr<ps::TrainerOptions> TrainerOptionsFromFlags(int worker, int workers,
                                                           ps::v1::ConsistencyMode mode) {
  ps::TrainerOptions options;
  options.worker_index = worker;
  options.num_workers = workers;
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  options.mode = mode;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.log_every = std::max(1, absl::GetFlag(FLAGS_log_every));
  options.buffer_steps = absl::GetFlag(FLAGS_buffer_steps);
  options.buffer_bytes = absl::GetFlag(FLAGS_buffer_bytes);
  options.buffer_time = absl::GetFlag(FLAGS_buffer_time);
  options.buffer_mean = absl::GetFlag(FLAGS_buffer_mean);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.overlap = absl::GetFlag(FLAGS_overlap);
  options.layer_overlap = absl::GetFlag(FLAGS_layer_overlap);
  // With backup workers a slow worker's late steps are refused by design, any number in
  // a row: no limit then.
  if (absl::GetFlag(FLAGS_backup_workers) > 0) options.max_refused_steps = 0;
  if (options.buffer_steps < 1 || options.buffer_bytes < 0 ||
      options.buffer_time < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--buffer_steps must be >= 1 and --buffer_bytes, --buffer_time >= 0");
  }
  return options;
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

  absl::StatusOr<std::unique_ptr<ps::kernels::ComputeBackend>> backend = BackendFromFlags();
  if (!backend.ok()) return Fail(backend.status());
  std::vector<int> sizes = {test->dim};
  sizes.insert(sizes.end(), hidden->begin(), hidden->end());
  sizes.push_back(test->num_classes);
  const int eval_batch = std::max(absl::GetFlag(FLAGS_batch_size), 1000);
  absl::StatusOr<std::unique_ptr<ps::Mlp>> model =
      ps::Mlp::Create(sizes, eval_batch, backend->get());
  if (!model.ok()) return Fail(model.status());

  absl::StatusOr<ps::ClientOptions> client_options = ClientOptionsFromFlags();
  if (!client_options.ok()) return Fail(client_options.status());
  std::unique_ptr<ps::PsClient> client = ps::NewGrpcPsClient(servers, *client_options);
  if (absl::Status s = client->WaitForShards(ConnectTimeout()); !s.ok()) {
    return Fail(s);
  }
  std::vector<ps::v1::TableSpec> specs =
      (*model)->TableSpecs(optimizer, mode, absl::GetFlag(FLAGS_seed));
  for (ps::v1::TableSpec& spec : specs) {
    if (mode == ps::v1::SSP) spec.set_staleness_bound(absl::GetFlag(FLAGS_staleness_bound));
    if (mode == ps::v1::SYNC) spec.set_backup_workers(absl::GetFlag(FLAGS_backup_workers));
  }
  if (absl::Status s = PrepareTables(specs, client.get()); !s.ok()) return Fail(s);

  absl::StatusOr<ps::TrainerOptions> options = TrainerOptionsFromFlags(worker, workers, mode);
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
  absl::StatusOr<ps::v1::OptimizerSpec> optimizer = OptimizerFromFlags();
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
  absl::StatusOr<ps::v1::ConsistencyMode> mode = ModeFromFlag(sparse_model);
  if (!mode.ok()) return Fail(mode.status());
  if (absl::GetFlag(FLAGS_batch_size) <= 0) {
    return Fail(absl::InvalidArgumentError("--batch_size must be positive"));
  }
  std::unique_ptr<ps::HealthServer> health;
  if (absl::Status s = StartHealth(&health); !s.ok()) return Fail(s);
  if (sparse_model) return RunSparse(model_name, worker, workers, servers, *optimizer, *mode);
  return RunDense(worker, workers, servers, *optimizer, *mode);
}
