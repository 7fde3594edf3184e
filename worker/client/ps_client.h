// PsClient: how a worker talks to the parameter servers.
//
// Calls take whole tensors; the client cuts them by placement (common/placement.h) into
// per-shard slices, splits those into chunks of at most `max_chunk_bytes`, and sends the
// chunks to all shards at once (up to a credit per shard), so a large tensor never meets
// gRPC's message limit and all shards work in parallel. Errors keep their gRPC code and
// name the shard.
//
// Thread safety: methods may be called concurrently; counters are atomic. A worker's
// pushes (worker >= 0) are applied in order: concurrent ones wait for each other.
#ifndef PS_WORKER_CLIENT_PS_CLIENT_H_
#define PS_WORKER_CLIENT_PS_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/v1/ps.pb.h"
#include "worker/client/value_coding.h"

namespace ps {

// A whole dense table as the worker holds it.
struct DenseTensor {
  std::string table;
  int64_t num_elements = 0;
  float* data = nullptr;
};

struct ClientOptions {
  int64_t max_chunk_bytes = 1 << 20;
  // Connections to each shard; dense pulls and pushes take turns on them, so the chunks
  // of one call travel in parallel (16 MiB pushes over loopback: 1.05-1.08 GB/s with one,
  // 1.10-1.21 with two, 1.25-1.28 with four; docs/benchmarks.md).
  int channels_per_shard = 2;
  // The credit: at most this many pull or push requests of one call in flight to one
  // shard (0: no limit), so that a huge tensor does not land on a shard all at once.
  // A sync push-pull sends all its chunks at once: each chunk's pull waits for the
  // step that the others' pushes complete.
  int max_calls_in_flight_per_shard = 16;
  // Sparse keys per request (a server rejects more than its --max_sparse_keys).
  int64_t max_sparse_keys_per_request = 1 << 16;
  // Deadline for one pull or push (a sync pull waits for the slowest worker).
  absl::Duration rpc_timeout = absl::Minutes(5);
  // How long the first calls wait for servers that are still starting.
  absl::Duration connect_timeout = absl::Seconds(60);
  // Use the same-host transfer windows a shard offers when it runs on this host
  // (docs/same_host.md); tensor bytes then skip TCP. Off: everything in the messages.
  bool same_host = true;
  // How dense values travel in-band: float32, or 16-bit per table (value_coding.h).
  WireFormats wire_formats;
  // The bearer token every call presents (docs/security.md); empty: none.
  std::string token;
  // TLS (common/channel_credentials.h): the shards' CA (empty: plaintext), this
  // worker's certificate and key for mTLS, the name the shards' certificates carry when
  // not their address's host.
  std::string tls_ca_file, tls_cert_file, tls_key_file, tls_server_name;
  // Deadline for one registration, heartbeat or leave call to one shard.
  absl::Duration control_timeout = absl::Seconds(10);
  // A push request whose reply was lost or that a shard could not take while it
  // restarts (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED) is sent again with the same push
  // id, which shards apply at most once (also across their restarts: the ledger is in
  // their checkpoints), with a backoff that doubles from push_retry_backoff up to
  // push_retry_max_backoff, until push_retry_timeout has passed (0: no retries).
  absl::Duration push_retry_timeout = absl::Seconds(60);
  absl::Duration push_retry_backoff = absl::Milliseconds(50);
  absl::Duration push_retry_max_backoff = absl::Seconds(2);
};

class PsClient {
 public:
  virtual ~PsClient() = default;

  virtual int num_shards() const = 0;

  // This process's incarnation: random, nonzero, sent with registration, heartbeats,
  // leaves, windows and push ids, so that the shards bind the worker index to this
  // process (another process with the same index cannot act for it).
  uint64_t incarnation() const { return incarnation_; }

  // Waits until every shard answers, for up to `timeout`, saying every few seconds which
  // one it waits for and why; then checks that the shards agree with this client's list
  // of servers. UNAVAILABLE (or DEADLINE_EXCEEDED) naming the address, the cause and the
  // likely fix when a shard did not answer in time; INVALID_ARGUMENT, at once, when the
  // list disagrees with the shards; other errors (a token refused) at once as well.
  virtual absl::Status WaitForShards(absl::Duration timeout) { return absl::OkStatus(); }

  // Creates the table on every shard (idempotent for an identical spec).
  virtual absl::Status CreateTable(const v1::TableSpec& spec) = 0;
  // Registers with every shard, all at once: one that does not answer does not delay
  // the others. `clock`: steps this process has completed (0 when it starts).
  virtual absl::Status RegisterWorker(int worker, const std::string& host,
                                      const std::string& device, int64_t clock = 0) = 0;
  // The same with one shard (after it forgot the worker).
  virtual absl::Status RegisterWith(int shard, int worker, const std::string& host,
                                    const std::string& device, int64_t clock) {
    return RegisterWorker(worker, host, device, clock);
  }
  // Heartbeats every shard at once; HeartbeatTo just one. NOT_FOUND (reason
  // UNKNOWN_WORKER) from a shard that has forgotten the worker: register with it again.
  virtual absl::Status Heartbeat(int worker, const v1::WorkerStats& stats) = 0;
  virtual absl::Status HeartbeatTo(int shard, int worker, const v1::WorkerStats& stats) {
    return Heartbeat(worker, stats);
  }
  // How often `shard` asked to be heartbeaten at registration (1 s before that).
  virtual absl::Duration heartbeat_interval(int shard) const { return absl::Seconds(1); }
  virtual absl::Status LeaveWorker(int worker) = 0;

  // Versions are kept per shard: after a shard restarts from a checkpoint its tables
  // are at an older version than the others'. kPerShard makes Pull wait, on each shard,
  // for the version after this client's last successful push there (0 at first), and
  // makes Push send, to each shard, the version this client's last Pull got from it.
  static constexpr int64_t kPerShard = -1;

  // Fills each tensor's data with the servers' values once every table has reached
  // `min_version` (or kPerShard). Returns the smallest version among the slices
  // received. Calls to a shard that is restarting wait for it (up to rpc_timeout).
  virtual absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors,
                                       int64_t min_version, int worker) = 0;
  // Sends each tensor's data as the gradient of `step` (or kPerShard).
  virtual absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step,
                            int worker) = 0;
  // A step boundary: Push(grads, kPerShard) and, if every shard accepted it,
  // Pull(params, min_version) (kPerShard for sync, 0 for async). `grads` and `params`
  // name the same tables in the same order. Where the transport allows (same-host
  // windows), each shard gets one call for both. `pull` is an error when the push failed
  // or the pull could not be completed; the caller then pulls again with Pull().
  struct PushPullResult {
    absl::Status push;
    absl::StatusOr<int64_t> pull = absl::UnknownError("not pulled");
  };
  virtual PushPullResult PushPull(const std::vector<DenseTensor>& grads,
                                  const std::vector<DenseTensor>& params, int worker,
                                  int64_t min_version = kPerShard);
  // A PushPull sent in parts as the step's gradients become ready (a layer's as soon as
  // backward has produced it): each Send pushes some of the step's tables and asks for
  // the same tables' next values, and returns without waiting; Finish waits for every
  // part and reports as PushPull does. The parts are one push (one id), so a shard
  // applies them as one, and a sync step's pull of a table waits only for that table.
  // The tensors' memory must stay valid until Finish returns; a part's params may be
  // written any time before. Destroying it unfinished waits for the parts in flight.
  class PushPullParts {
   public:
    virtual ~PushPullParts() = default;
    // `grads` and `params` name the same tables in the same order, none sent before in
    // this push.
    virtual void Send(std::vector<DenseTensor> grads, std::vector<DenseTensor> params) = 0;
    virtual PushPullResult Finish() = 0;
  };
  // One at a time per worker, like a push (GrpcPsClient: other pushes of `worker` wait
  // until the returned object is finished or destroyed). This default sends everything
  // at Finish as one PushPull (no overlap).
  virtual std::unique_ptr<PushPullParts> StartPushPull(int worker, int64_t min_version = kPerShard);
  // Forgets the per-shard versions, so the next kPerShard pull takes what each shard has
  // (after this worker was dropped, or a shard restarted behind it).
  virtual void ResetProgress() {}

  // SSP: the clock (steps completed) sent with later pulls and pushes.
  void set_clock(int64_t clock) { clock_.store(clock); }
  int64_t clock() const { return clock_.load(); }
  // Sparse tables. `keys` may hold duplicates and appear in any order; rows are placed
  // by ShardForKey(). PullSparse writes keys.size() rows of `width` floats into `rows`
  // (row i for keys[i]; rows are created on first touch by the table's initializer).
  // PushSparse sums the gradient rows of duplicate keys before sending, so each key
  // travels once. Key batches larger than one request are split.
  virtual absl::StatusOr<int64_t> PullSparse(const std::string& table,
                                             const std::vector<int64_t>& keys, int width,
                                             float* rows, int worker) = 0;
  virtual absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys,
                                  int width, const float* grads, int64_t step, int worker) = 0;

  // Given values for tables no push has reached yet (docs/model_files.md): each tensor's
  // data replaces its table's values; AssignSparse sets the rows of distinct `keys`.
  // FAILED_PRECONDITION (from the shard) once the table has trained. A client that
  // cannot is UNIMPLEMENTED.
  virtual absl::Status Assign(const std::vector<DenseTensor>& tensors) {
    return absl::UnimplementedError("this client cannot assign values");
  }
  virtual absl::Status AssignSparse(const std::string& table, const std::vector<int64_t>& keys,
                                    int width, const float* rows) {
    return absl::UnimplementedError("this client cannot assign values");
  }

  // One status reply per shard, in shard order.
  virtual absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() = 0;

  // Tensor payload bytes sent (pushes) and received (pulls) so far.
  int64_t bytes_pushed() const { return bytes_pushed_.load(); }
  int64_t bytes_pulled() const { return bytes_pulled_.load(); }
  // Of those, the bytes that went through same-host transfer windows.
  int64_t window_bytes() const { return window_bytes_.load(); }
  // Shards whose transfer windows this client currently uses or may open.
  virtual int same_host_shards() const { return 0; }

 protected:
  // The number of the next push (PushId.sequence), from 1.
  int64_t NextPushSequence() { return push_sequence_.fetch_add(1) + 1; }

  std::atomic<int64_t> bytes_pushed_{0};
  std::atomic<int64_t> bytes_pulled_{0};
  std::atomic<int64_t> window_bytes_{0};
  std::atomic<int64_t> clock_{0};

 private:
  static uint64_t NewIncarnation();
  const uint64_t incarnation_ = NewIncarnation();
  std::atomic<int64_t> push_sequence_{0};
};

// Sums the rows of duplicate keys: returns the distinct keys in first-seen order and
// writes their summed rows to `summed` (resized to distinct * width).
std::vector<int64_t> SumDuplicateKeys(const std::vector<int64_t>& keys, int width,
                                      const float* grads, std::vector<float>* summed);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_PS_CLIENT_H_
