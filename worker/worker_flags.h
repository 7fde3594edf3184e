// ps_worker's flags (each also settable as PS_<NAME>, common/flags_env.h) and the
// options, optimizer, mode and compute backend that worker_main builds from them.
#ifndef PS_WORKER_WORKER_FLAGS_H_
#define PS_WORKER_WORKER_FLAGS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kernels/backend.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/ps_client.h"
#include "worker/train/sparse_trainer.h"
#include "worker/train/trainer.h"

ABSL_DECLARE_FLAG(std::string, servers);
ABSL_DECLARE_FLAG(int, worker_index);
ABSL_DECLARE_FLAG(int, num_workers);
ABSL_DECLARE_FLAG(std::string, data_dir);
ABSL_DECLARE_FLAG(std::string, layers);
ABSL_DECLARE_FLAG(int, batch_size);
ABSL_DECLARE_FLAG(int, epochs);
ABSL_DECLARE_FLAG(int64_t, max_steps);
ABSL_DECLARE_FLAG(std::string, optimizer);
ABSL_DECLARE_FLAG(double, learning_rate);
ABSL_DECLARE_FLAG(double, momentum);
ABSL_DECLARE_FLAG(double, weight_decay);
ABSL_DECLARE_FLAG(std::string, mode);
ABSL_DECLARE_FLAG(int, staleness_bound);
ABSL_DECLARE_FLAG(double, l1);
ABSL_DECLARE_FLAG(double, l2);
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, train_file);
ABSL_DECLARE_FLAG(std::string, test_file);
ABSL_DECLARE_FLAG(int, embedding_dim);
ABSL_DECLARE_FLAG(int, ctr_hidden);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(int, gpu);
ABSL_DECLARE_FLAG(int, cpu_threads);
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(int, log_every);
ABSL_DECLARE_FLAG(int, buffer_steps);
ABSL_DECLARE_FLAG(int64_t, buffer_bytes);
ABSL_DECLARE_FLAG(absl::Duration, buffer_time);
ABSL_DECLARE_FLAG(bool, buffer_mean);
ABSL_DECLARE_FLAG(std::string, lr_schedule);
ABSL_DECLARE_FLAG(int64_t, lr_step_size);
ABSL_DECLARE_FLAG(double, lr_gamma);
ABSL_DECLARE_FLAG(int64_t, lr_total_steps);
ABSL_DECLARE_FLAG(double, lr_min);
ABSL_DECLARE_FLAG(int64_t, lr_warmup_steps);
ABSL_DECLARE_FLAG(int, backup_workers);
ABSL_DECLARE_FLAG(std::string, token_file);
ABSL_DECLARE_FLAG(std::string, health_host);
ABSL_DECLARE_FLAG(int, health_port);
ABSL_DECLARE_FLAG(std::string, health_port_file);
ABSL_DECLARE_FLAG(bool, same_host);
ABSL_DECLARE_FLAG(int64_t, max_chunk_bytes);
ABSL_DECLARE_FLAG(int, channels_per_shard);
ABSL_DECLARE_FLAG(std::string, wire_format);
ABSL_DECLARE_FLAG(bool, wire_error_feedback);
ABSL_DECLARE_FLAG(bool, layer_overlap);
ABSL_DECLARE_FLAG(bool, overlap);
ABSL_DECLARE_FLAG(absl::Duration, connect_timeout);
ABSL_DECLARE_FLAG(absl::Duration, push_retry_timeout);
ABSL_DECLARE_FLAG(bool, resume);
ABSL_DECLARE_FLAG(bool, eval_only);
ABSL_DECLARE_FLAG(std::string, init_from);

namespace ps {

// An optimizer of `kind` at `learning_rate`; the servers fill every hyper-parameter
// left out with PyTorch's default for the kind.
v1::OptimizerSpec OptimizerOf(v1::OptimizerSpec::Kind kind, float learning_rate);
// --optimizer with its hyper-parameter flags (the servers fill in the rest).
absl::StatusOr<v1::OptimizerSpec> OptimizerFromFlags();
// --mode, or the model's default (sync for the MLP, async for sparse models).
absl::StatusOr<v1::ConsistencyMode> ModeFromFlag(bool sparse_model);
// The client's chunking, transport, retries, token and TLS.
absl::StatusOr<ClientOptions> ClientOptionsFromFlags();
// --device (auto falls back to the CPU with a warning), --gpu or LOCAL_RANK, --cpu_threads.
absl::StatusOr<std::unique_ptr<kernels::ComputeBackend>> BackendFromFlags();
// --connect_timeout: how long the start-up waits for the shards.
absl::Duration ConnectTimeout();
// The training loop's options for worker `worker` of `workers`.
absl::StatusOr<TrainerOptions> TrainerOptionsFromFlags(int worker, int workers,
                                                       v1::ConsistencyMode mode);
// The same for the sparse models' loop.
SparseTrainerOptions SparseTrainerOptionsFromFlags(int worker, int workers,
                                                   v1::ConsistencyMode mode);

}  // namespace ps

#endif  // PS_WORKER_WORKER_FLAGS_H_
