// Shard: everything one parameter-server shard does, with no transport. It owns the
// worker registry, the parameter store (tables, SSP clocks), the same-host transfer
// windows, the exactly-once push ledger and the request counters, and answers each
// request with an absl::Status. The gRPC service (server/rpc/ps_service.h) is a mechanical
// adapter over it; tests call it directly.
//
// Rules that live here rather than in a table:
// - A worker index is bound to its incarnation (server/shard/worker_registry.h); windows and
//   push ids must carry the registered incarnation.
// - A windowed call holds its window for as long as it reads or writes it, so a leave or
//   a reopen meanwhile frees nothing under it (docs/same_host.md).
// - A push with an id is applied at most once (server/shard/push_ledger.h); a repeated
//   request is answered OK with `duplicate` set.
//
// - A pull that waits for a version is parked, not blocked (server/shard/pull_waiters.h):
//   the async methods answer through a callback, the plain ones wait for it.
//
// Thread-safe: all methods may be called concurrently.
#ifndef PS_SERVER_SHARD_SHARD_H_
#define PS_SERVER_SHARD_SHARD_H_

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/v1/ps.pb.h"
#include "server/shard/parameter_store.h"
#include "server/shard/push_ledger.h"
#include "server/shard/transfer_windows.h"
#include "server/shard/worker_registry.h"

namespace ps {

struct ShardOptions {
  StoreOptions store;
  // Handed to workers at registration: how often to heartbeat, and the silence after
  // which they are dropped.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  // The longest a pull waits for its version, whatever the call's own deadline.
  absl::Duration max_pull_wait = absl::Minutes(5);
  // Offer same-host transfer windows (docs/same_host.md).
  bool same_host_windows = true;
  // What tables, sync buffers and windows may hold, in bytes (common/memory_budget.h);
  // <= 0: no limit.
  int64_t memory_budget_bytes = 0;
  WorkerRegistry::Clock clock = [] { return absl::Now(); };
};

class Shard {
 public:
  explicit Shard(const ShardOptions& options);

  absl::Status CreateTable(const v1::CreateTableRequest& request,
                           v1::CreateTableResponse* response);
  absl::Status Register(const v1::RegisterWorkerRequest& request,
                        v1::RegisterWorkerResponse* response);
  absl::Status Heartbeat(const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response);
  absl::Status Leave(const v1::LeaveWorkerRequest& request);
  absl::Status OpenWindow(const v1::OpenWindowRequest& request, v1::OpenWindowResponse* response);
  using Done = std::function<void(absl::Status)>;
  // `deadline` is the call's own (absl::InfiniteFuture() when it has none). `done` gets
  // the result: on this thread when the pull is ready or refused, later on the thread of
  // the push or timer that answers it (a waiting pull holds no thread). `request` and
  // `response` must stay valid until then. Returns an id for CancelPull().
  uint64_t PullAsync(const v1::PullRequest& request, absl::Time deadline,
                     v1::PullResponse* response, Done done);
  // `wire_values`, when given, has one entry per request.dense(): a non-null entry is that
  // slice's gradient (length * 4 bytes, 4-byte aligned) where it arrived outside the
  // message (common/tensor_coding.h); the slice's own `values` are then empty.
  absl::Status Push(const v1::PushRequest& request, v1::PushResponse* response,
                    const std::vector<const char*>* wire_values = nullptr);
  // The push, then, if it was accepted, the pull; the status is the push's and the
  // pull's outcome is in response->pull_code() / pull_message(). `wire_values` as for Push.
  uint64_t PushPullAsync(const v1::PushPullRequest& request, absl::Time deadline,
                         v1::PushPullResponse* response, Done done,
                         const std::vector<const char*>* wire_values = nullptr);
  // The caller of a waiting pull gave up: it is answered CANCELLED now.
  void CancelPull(uint64_t id) { store_.CancelPull(id); }
  // PullAsync and PushPullAsync, waited for on this thread.
  absl::Status Pull(const v1::PullRequest& request, absl::Time deadline,
                    v1::PullResponse* response);
  absl::Status PushPull(const v1::PushPullRequest& request, absl::Time deadline,
                        v1::PushPullResponse* response);
  void GetStatus(v1::GetStatusResponse* response) const;
  // Given values for untrained tables, and a page of a sparse table's rows
  // (ParameterStore::Assign, ListRows).
  absl::Status Assign(const v1::AssignRequest& request);
  absl::Status ListRows(const v1::ListRowsRequest& request, v1::ListRowsResponse* response);

  // Drops workers silent for longer than the heartbeat timeout and lets the steps they
  // held back finish. Returns how many were dropped.
  int ExpireStale();
  // Wakes every waiting pull with UNAVAILABLE; later pulls fail at once.
  void Shutdown();

  // From now on every call but GetStatus and LeaveWorker is answered `why` (a shard that
  // must not serve, e.g. reason STATE_LOST). Call before serving.
  void RefuseService(absl::Status why) { refusal_ = std::move(why); }

  // Adds figures the shard does not own (e.g. checkpoint state) to GetStatus replies.
  // Call before serving.
  void SetStatusDecorator(std::function<void(v1::GetStatusResponse*)> decorate) {
    decorate_ = std::move(decorate);
  }

  ParameterStore* store() { return &store_; }
  const ParameterStore* store() const { return &store_; }
  WorkerRegistry* registry() { return &registry_; }
  PushLedger* ledger() { return &ledger_; }
  TransferWindows* windows() { return &windows_; }

 private:
  // A call's view of one worker's window: the pointer into it for each windowed slice
  // (null for in-band slices; empty when no slice names a window), and the window
  // itself, held until the call is done with those pointers.
  struct WindowedSlices {
    std::shared_ptr<const TransferWindows::Window> hold;
    std::vector<char*> at;
  };
  // FAILED_PRECONDITION (reason WINDOW_GONE) when a slice names a window the worker's
  // incarnation does not have here; INVALID_ARGUMENT for a range outside it.
  absl::StatusOr<WindowedSlices> ResolveWindows(
      int worker, uint64_t incarnation,
      const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices, bool push) const;
  absl::Time PullDeadline(absl::Time call_deadline) const;
  // The push with its window and the ledger, uncounted and unlogged.
  absl::Status ApplyPush(const v1::PushRequest& request, v1::PushResponse* response,
                         const std::vector<const char*>* wire_values);

  const ShardOptions options_;
  const absl::Time start_;
  MemoryBudget budget_;  // before everything that reserves from it
  WorkerRegistry registry_;
  ParameterStore store_;
  TransferWindows windows_;
  PushLedger ledger_;
  absl::Status refusal_;  // set before serving (RefuseService), then only read
  std::function<void(v1::GetStatusResponse*)> decorate_;
  std::atomic<int64_t> push_requests_{0};
  std::atomic<int64_t> pull_requests_{0};
  std::atomic<int64_t> duplicate_pushes_{0};
  std::atomic<int64_t> bytes_received_{0};
  std::atomic<int64_t> bytes_sent_{0};
  std::atomic<int64_t> window_bytes_received_{0};
  std::atomic<int64_t> window_bytes_sent_{0};
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_SHARD_H_
