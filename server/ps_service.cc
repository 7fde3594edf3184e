#include "server/ps_service.h"

#include <algorithm>
#include <chrono>

#include "common/status_util.h"
#include "glog/logging.h"

namespace ps {
namespace {

// Logs a rejected request once per call; the client gets the same text as its status.
absl::Status LogRejected(const char* what, int worker, absl::Status s) {
  if (!s.ok() && s.code() != absl::StatusCode::kDeadlineExceeded) {
    LOG(WARNING) << what << " from worker " << worker << " rejected: " << s;
  }
  return s;
}

}  // namespace

ParameterServerService::ParameterServerService(ParameterStore* store, WorkerRegistry* registry,
                                               absl::Duration heartbeat_interval,
                                               absl::Duration max_pull_wait)
    : store_(store),
      registry_(registry),
      heartbeat_interval_(heartbeat_interval),
      max_pull_wait_(max_pull_wait) {}

grpc::Status ParameterServerService::CreateTable(grpc::ServerContext*,
                                                 const v1::CreateTableRequest* request,
                                                 v1::CreateTableResponse* response) {
  return ToGrpcStatus(LogRejected("CreateTable", -1, store_->CreateTable(*request, response)));
}

grpc::Status ParameterServerService::Pull(grpc::ServerContext* context,
                                          const v1::PullRequest* request,
                                          v1::PullResponse* response) {
  pull_requests_.fetch_add(1, std::memory_order_relaxed);
  absl::Time deadline = absl::Now() + max_pull_wait_;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = std::min(deadline, absl::FromChrono(context->deadline()));
  }
  absl::Status s = store_->Pull(*request, deadline, response);
  if (s.ok()) {
    int64_t bytes = 0;
    for (const v1::DenseSlice& d : response->dense()) bytes += d.values().size();
    bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
  }
  return ToGrpcStatus(LogRejected("Pull", request->worker_index(), s));
}

grpc::Status ParameterServerService::Push(grpc::ServerContext*, const v1::PushRequest* request,
                                          v1::PushResponse* response) {
  push_requests_.fetch_add(1, std::memory_order_relaxed);
  int64_t bytes = 0;
  for (const v1::DenseSlice& d : request->dense()) bytes += d.values().size();
  bytes_received_.fetch_add(bytes, std::memory_order_relaxed);
  return ToGrpcStatus(LogRejected("Push", request->worker_index(), store_->Push(*request, response)));
}

grpc::Status ParameterServerService::RegisterWorker(grpc::ServerContext*,
                                                    const v1::RegisterWorkerRequest* request,
                                                    v1::RegisterWorkerResponse* response) {
  absl::Status s = registry_->Register(request->worker_index(), request->host(), request->device());
  if (s.ok()) {
    store_->OnWorkerRegistered(request->worker_index(), request->clock());
    response->set_heartbeat_interval_ms(absl::ToInt64Milliseconds(heartbeat_interval_));
    response->set_heartbeat_timeout_ms(absl::ToInt64Milliseconds(registry_->heartbeat_timeout()));
    response->set_live_workers(registry_->num_live());
  }
  return ToGrpcStatus(s);
}

grpc::Status ParameterServerService::Heartbeat(grpc::ServerContext*,
                                               const v1::HeartbeatRequest* request,
                                               v1::HeartbeatResponse* response) {
  absl::Status s = registry_->Heartbeat(request->worker_index(), request->stats());
  if (s.ok()) response->set_live_workers(registry_->num_live());
  return ToGrpcStatus(s);
}

grpc::Status ParameterServerService::LeaveWorker(grpc::ServerContext*,
                                                 const v1::LeaveWorkerRequest* request,
                                                 v1::LeaveWorkerResponse*) {
  absl::Status s = registry_->Leave(request->worker_index());
  if (s.ok()) store_->OnMembershipChange();
  return ToGrpcStatus(s);
}

grpc::Status ParameterServerService::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                               v1::GetStatusResponse* response) {
  store_->FillStatus(response);
  response->set_uptime_ms(absl::ToInt64Milliseconds(absl::Now() - start_));
  for (v1::WorkerStatus& w : registry_->Snapshot()) *response->add_workers() = std::move(w);
  response->set_push_requests(push_requests_.load());
  response->set_pull_requests(pull_requests_.load());
  response->set_bytes_received(bytes_received_.load());
  response->set_bytes_sent(bytes_sent_.load());
  if (decorate_) decorate_(response);
  return grpc::Status::OK;
}

}  // namespace ps
