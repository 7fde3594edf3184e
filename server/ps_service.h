// ParameterServerService: the thin gRPC adapter over ParameterStore and WorkerRegistry.
// Each method converts the call, delegates, and returns the status one to one; request
// counters for status reports are kept here.
//
// Thread-safe: gRPC calls the methods from many threads at once.
#ifndef PS_SERVER_PS_SERVICE_H_
#define PS_SERVER_PS_SERVICE_H_

#include <atomic>
#include <functional>
#include <vector>

#include "absl/time/time.h"
#include "proto/v1/ps.grpc.pb.h"
#include "server/parameter_store.h"
#include "server/transfer_windows.h"
#include "server/worker_registry.h"

namespace ps {

class ParameterServerService final : public v1::ParameterServer::Service {
 public:
  // `store` and `registry` must outlive the service. A pull waits at most
  // `max_pull_wait` for its version when the call itself has no deadline.
  // `same_host_windows`: offer same-host transfer windows (docs/same_host.md).
  ParameterServerService(ParameterStore* store, WorkerRegistry* registry,
                         absl::Duration heartbeat_interval, absl::Duration max_pull_wait,
                         bool same_host_windows = true);

  // Adds figures the service does not own (e.g. checkpoint state) to GetStatus replies.
  // Call before serving.
  void SetStatusDecorator(std::function<void(v1::GetStatusResponse*)> decorate) {
    decorate_ = std::move(decorate);
  }

  grpc::Status CreateTable(grpc::ServerContext* context, const v1::CreateTableRequest* request,
                           v1::CreateTableResponse* response) override;
  grpc::Status Pull(grpc::ServerContext* context, const v1::PullRequest* request,
                    v1::PullResponse* response) override;
  grpc::Status Push(grpc::ServerContext* context, const v1::PushRequest* request,
                    v1::PushResponse* response) override;
  grpc::Status PushPull(grpc::ServerContext* context, const v1::PushPullRequest* request,
                        v1::PushPullResponse* response) override;
  grpc::Status RegisterWorker(grpc::ServerContext* context,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status LeaveWorker(grpc::ServerContext* context, const v1::LeaveWorkerRequest* request,
                           v1::LeaveWorkerResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetStatusRequest* request,
                         v1::GetStatusResponse* response) override;
  grpc::Status OpenWindow(grpc::ServerContext* context, const v1::OpenWindowRequest* request,
                          v1::OpenWindowResponse* response) override;

  TransferWindows* windows() { return &windows_; }

 private:
  absl::Time PullDeadline(const grpc::ServerContext* context) const;
  // Pull and Push with their counters and logging; the status is the call's.
  absl::Status DoPull(const v1::PullRequest& request, absl::Time deadline,
                      v1::PullResponse* response);
  absl::Status DoPush(const v1::PushRequest& request, v1::PushResponse* response);
  // Where each windowed slice's bytes lie in the worker's push (or pull) window, null for
  // in-band slices; empty when no slice names a window. FAILED_PRECONDITION without a
  // window, INVALID_ARGUMENT for a range outside it.
  absl::StatusOr<std::vector<char*>> WindowPointers(
      int worker, const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices,
      bool push) const;
  // The worker's windows, or FAILED_PRECONDITION when it has none.
  absl::StatusOr<std::shared_ptr<const TransferWindows::Window>> WindowFor(int worker) const;

  ParameterStore* const store_;
  WorkerRegistry* const registry_;
  const absl::Duration heartbeat_interval_;
  const absl::Duration max_pull_wait_;
  const absl::Time start_ = absl::Now();
  std::function<void(v1::GetStatusResponse*)> decorate_;
  TransferWindows windows_;
  std::atomic<int64_t> push_requests_{0};
  std::atomic<int64_t> pull_requests_{0};
  std::atomic<int64_t> bytes_received_{0};
  std::atomic<int64_t> bytes_sent_{0};
  std::atomic<int64_t> window_bytes_received_{0};
  std::atomic<int64_t> window_bytes_sent_{0};
};

}  // namespace ps

#endif  // PS_SERVER_PS_SERVICE_H_
