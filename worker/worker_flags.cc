#include "worker/worker_flags.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/channel_credentials.h"
#include "common/client_security_flags.h"
#include "glog/logging.h"
#include "worker/data/mnist.h"

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

namespace ps {

// The servers fill every hyper-parameter left out with PyTorch's default for the kind.
v1::OptimizerSpec OptimizerOf(v1::OptimizerSpec::Kind kind, float learning_rate) {
  v1::OptimizerSpec spec;
  spec.set_kind(kind);
  spec.set_learning_rate(learning_rate);
  return spec;
}

absl::StatusOr<v1::OptimizerSpec> OptimizerFromFlags() {
  const std::string name = absl::AsciiStrToLower(absl::GetFlag(FLAGS_optimizer));
  const float lr = static_cast<float>(absl::GetFlag(FLAGS_learning_rate));
  v1::OptimizerSpec spec;
  if (name == "sgd" || name == "momentum" || name == "nesterov") {
    spec = OptimizerOf(v1::OptimizerSpec::SGD, lr);
    if (name != "sgd") spec.set_momentum(static_cast<float>(absl::GetFlag(FLAGS_momentum)));
    spec.set_nesterov(name == "nesterov");
  } else if (name == "adam") {
    spec = OptimizerOf(v1::OptimizerSpec::ADAM, lr);
  } else if (name == "adamw") {
    spec = OptimizerOf(v1::OptimizerSpec::ADAMW, lr);
  } else if (name == "adagrad") {
    spec = OptimizerOf(v1::OptimizerSpec::ADAGRAD, lr);
  } else if (name == "ftrl") {
    spec = OptimizerOf(v1::OptimizerSpec::FTRL, lr);
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
  v1::LearningRateSchedule* sched = spec.mutable_schedule();
  if (schedule == "constant") {
    sched->set_kind(v1::LearningRateSchedule::CONSTANT);
  } else if (schedule == "step") {
    sched->set_kind(v1::LearningRateSchedule::STEP);
    sched->set_step_size(absl::GetFlag(FLAGS_lr_step_size));
    sched->set_gamma(static_cast<float>(absl::GetFlag(FLAGS_lr_gamma)));
  } else if (schedule == "cosine") {
    sched->set_kind(v1::LearningRateSchedule::COSINE);
    sched->set_total_steps(absl::GetFlag(FLAGS_lr_total_steps));
    sched->set_min_lr(static_cast<float>(absl::GetFlag(FLAGS_lr_min)));
  } else if (schedule == "warmup") {
    sched->set_kind(v1::LearningRateSchedule::LINEAR_WARMUP);
    sched->set_warmup_steps(absl::GetFlag(FLAGS_lr_warmup_steps));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lr_schedule=", schedule, " is unknown: want constant, step, cosine or warmup"));
  }
  // The shards validate the hyper-parameters (and fill in the defaults) at CreateTable;
  // their INVALID_ARGUMENT names the parameter and its range.
  return spec;
}

absl::StatusOr<v1::ConsistencyMode> ModeFromFlag(bool sparse_model) {
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
  if (mode == "sync") return v1::SYNC;
  if (mode == "async") return v1::ASYNC;
  if (mode == "ssp") return v1::SSP;
  return absl::InvalidArgumentError(
      absl::StrCat("--mode=", mode, " is unknown: want sync, async or ssp"));
}

absl::StatusOr<ClientOptions> ClientOptionsFromFlags() {
  ClientOptions options;
  options.max_chunk_bytes = std::max<int64_t>(4096, absl::GetFlag(FLAGS_max_chunk_bytes));
  options.same_host = absl::GetFlag(FLAGS_same_host);
  options.channels_per_shard = std::max(1, absl::GetFlag(FLAGS_channels_per_shard));
  options.push_retry_timeout = std::max(absl::ZeroDuration(), absl::GetFlag(FLAGS_push_retry_timeout));
  absl::StatusOr<WireFormats> formats = ParseWireFormats(absl::GetFlag(FLAGS_wire_format));
  if (!formats.ok()) return formats.status();
  options.wire_formats = *std::move(formats);
  options.wire_formats.error_feedback = absl::GetFlag(FLAGS_wire_error_feedback);
  absl::StatusOr<std::string> token = LoadToken(absl::GetFlag(FLAGS_token_file));
  if (!token.ok()) return token.status();
  options.token = *std::move(token);
  const ChannelCredentials tls = TlsCredentialsFromFlags();
  options.tls_ca_file = tls.tls_ca_file;
  options.tls_cert_file = tls.tls_cert_file;
  options.tls_key_file = tls.tls_key_file;
  options.tls_server_name = tls.tls_server_name;
  LOG(INFO) << "to the shards: "
            << (options.tls_ca_file.empty()
                    ? "plaintext"
                    : (options.tls_cert_file.empty() ? "TLS" : "TLS with a client certificate"))
            << ", " << (options.token.empty() ? "no token" : "a token");
  if (options.wire_formats.all != v1::FLOAT32 || !options.wire_formats.tables.empty()) {
    LOG(INFO) << "wire format " << options.wire_formats.ToString()
              << (options.wire_formats.error_feedback ? ", gradients with error feedback" : "")
              << " (TCP only; same-host windows carry float32)";
  }
  return options;
}

// --device and --gpu (or LOCAL_RANK) to a backend; --device=auto says so when it falls
// back to the CPU.
absl::StatusOr<std::unique_ptr<kernels::ComputeBackend>> BackendFromFlags() {
  const std::string device = absl::GetFlag(FLAGS_device);
  const int threads = absl::GetFlag(FLAGS_cpu_threads);
  if (device == "cpu") return kernels::NewCpuBackend(threads);
  int gpu = absl::GetFlag(FLAGS_gpu);
  if (gpu < 0) {
    gpu = 0;
    const char* rank = std::getenv("LOCAL_RANK");
    if (rank != nullptr && (!absl::SimpleAtoi(rank, &gpu) || gpu < 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("LOCAL_RANK='", rank, "' is not a GPU index; unset it or give --gpu"));
    }
  }
  if (device == "cuda") return kernels::NewCudaBackend(gpu);
  if (device != "auto") return kernels::NewBackend(device, threads);
  absl::StatusOr<std::unique_ptr<kernels::ComputeBackend>> cuda =
      kernels::NewCudaBackend(gpu);
  if (cuda.ok()) return cuda;
  LOG(WARNING) << "--device=auto: no GPU to train on (" << cuda.status().message()
               << "); training on the CPU with --cpu_threads=" << threads
               << " (--device=cpu silences this, --device=cuda makes it an error)";
  return kernels::NewCpuBackend(threads);
}

absl::Duration ConnectTimeout() {
  return std::max(absl::Seconds(1), absl::GetFlag(FLAGS_connect_timeout));
}

namespace {

// The fields both training loops' options share.
template <typename Options>
Options LoopOptionsFromFlags(int worker, int workers, v1::ConsistencyMode mode) {
  Options options;
  options.worker_index = worker;
  options.num_workers = workers;
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.max_steps = absl::GetFlag(FLAGS_max_steps);
  options.mode = mode;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.log_every = std::max(1, absl::GetFlag(FLAGS_log_every));
  return options;
}

}  // namespace

SparseTrainerOptions SparseTrainerOptionsFromFlags(int worker, int workers,
                                                   v1::ConsistencyMode mode) {
  return LoopOptionsFromFlags<SparseTrainerOptions>(worker, workers, mode);
}

absl::StatusOr<TrainerOptions> TrainerOptionsFromFlags(int worker, int workers,
                                                           v1::ConsistencyMode mode) {
  TrainerOptions options = LoopOptionsFromFlags<TrainerOptions>(worker, workers, mode);
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

}  // namespace ps
