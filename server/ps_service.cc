#include "server/ps_service.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
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

bool UsesWindow(const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices) {
  for (const v1::DenseSlice& d : slices) {
    if (d.has_window_offset()) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TransferWindows::Window>>
ParameterServerService::WindowFor(int worker) const {
  std::shared_ptr<const TransferWindows::Window> w = windows_.Get(worker);
  if (w == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", worker, " sent a slice with a window offset but has no transfer window on "
        "shard ", store_->options().shard_index, "; call OpenWindow first"));
  }
  return w;
}

ParameterServerService::ParameterServerService(ParameterStore* store, WorkerRegistry* registry,
                                               absl::Duration heartbeat_interval,
                                               absl::Duration max_pull_wait,
                                               bool same_host_windows)
    : store_(store),
      registry_(registry),
      heartbeat_interval_(heartbeat_interval),
      max_pull_wait_(max_pull_wait),
      windows_(same_host_windows) {}

grpc::Status ParameterServerService::CreateTable(grpc::ServerContext*,
                                                 const v1::CreateTableRequest* request,
                                                 v1::CreateTableResponse* response) {
  return ToGrpcStatus(LogRejected("CreateTable", -1, store_->CreateTable(*request, response)));
}

absl::Time ParameterServerService::PullDeadline(const grpc::ServerContext* context) const {
  absl::Time deadline = absl::Now() + max_pull_wait_;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    deadline = std::min(deadline, absl::FromChrono(context->deadline()));
  }
  return deadline;
}

absl::StatusOr<std::vector<char*>> ParameterServerService::WindowPointers(
    int worker, const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices,
    bool push) const {
  if (!UsesWindow(slices)) return std::vector<char*>();
  absl::StatusOr<std::shared_ptr<const TransferWindows::Window>> w = WindowFor(worker);
  if (!w.ok()) return w.status();
  char* base = push ? (*w)->push.get() : (*w)->pull.get();
  std::vector<char*> out(slices.size(), nullptr);
  for (int i = 0; i < slices.size(); ++i) {
    const v1::DenseSlice& d = slices[i];
    if (!d.has_window_offset()) continue;
    if (absl::Status s = CheckWindowRange(d.table(), d.window_offset(), d.length(), (*w)->bytes);
        !s.ok()) {
      return s;
    }
    out[i] = base + d.window_offset();
  }
  return out;
}

absl::Status ParameterServerService::DoPull(const v1::PullRequest& request, absl::Time deadline,
                                            v1::PullResponse* response) {
  pull_requests_.fetch_add(1, std::memory_order_relaxed);
  // Same-host: windowed values go into the worker's pull window instead of the reply.
  absl::StatusOr<std::vector<char*>> out =
      WindowPointers(request.worker_index(), request.dense(), /*push=*/false);
  absl::Status s = out.status();
  if (s.ok()) s = store_->Pull(request, deadline, response, out->empty() ? nullptr : &*out);
  if (s.ok()) {
    int64_t bytes = 0, window_bytes = 0;
    for (const v1::DenseSlice& d : response->dense()) {
      bytes += d.values().size();
      if (d.has_window_offset()) window_bytes += d.length() * 4;
    }
    bytes_sent_.fetch_add(bytes + window_bytes, std::memory_order_relaxed);
    window_bytes_sent_.fetch_add(window_bytes, std::memory_order_relaxed);
  }
  return LogRejected("Pull", request.worker_index(), s);
}

absl::Status ParameterServerService::DoPush(const v1::PushRequest& request,
                                            v1::PushResponse* response) {
  push_requests_.fetch_add(1, std::memory_order_relaxed);
  // Same-host: windowed gradients are read straight out of the worker's push window. (A
  // copy first would protect nothing: a process that can write the window can write
  // anywhere in this one; see docs/same_host.md.)
  absl::StatusOr<std::vector<char*>> in =
      WindowPointers(request.worker_index(), request.dense(), /*push=*/true);
  if (!in.ok()) return LogRejected("Push", request.worker_index(), in.status());
  int64_t bytes = 0, window_bytes = 0;
  for (const v1::DenseSlice& d : request.dense()) {
    bytes += d.values().size();
    if (d.has_window_offset()) window_bytes += d.length() * 4;
  }
  bytes_received_.fetch_add(bytes + window_bytes, std::memory_order_relaxed);
  window_bytes_received_.fetch_add(window_bytes, std::memory_order_relaxed);
  const std::vector<const char*> values(in->begin(), in->end());
  return LogRejected("Push", request.worker_index(),
                     store_->Push(request, response, values.empty() ? nullptr : &values));
}

grpc::Status ParameterServerService::Pull(grpc::ServerContext* context,
                                          const v1::PullRequest* request,
                                          v1::PullResponse* response) {
  return ToGrpcStatus(DoPull(*request, PullDeadline(context), response));
}

grpc::Status ParameterServerService::Push(grpc::ServerContext*, const v1::PushRequest* request,
                                          v1::PushResponse* response) {
  return ToGrpcStatus(DoPush(*request, response));
}

grpc::Status ParameterServerService::PushPull(grpc::ServerContext* context,
                                              const v1::PushPullRequest* request,
                                              v1::PushPullResponse* response) {
  if (request->push().worker_index() != request->pull().worker_index()) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "push-pull: the push is from worker ", request->push().worker_index(),
        " but the pull for worker ", request->pull().worker_index())));
  }
  // The call's status is the push's: a rejected push is not followed by a pull.
  if (absl::Status s = DoPush(request->push(), response->mutable_push()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::Status pulled = DoPull(request->pull(), PullDeadline(context), response->mutable_pull());
  if (!pulled.ok()) {
    response->clear_pull();
    response->set_pull_code(static_cast<int>(pulled.code()));
    response->set_pull_message(std::string(pulled.message()));
  }
  return grpc::Status::OK;
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
    if (windows_.enabled()) windows_.FillOffer(response->mutable_same_host());
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
  if (s.ok()) {
    windows_.Close(request->worker_index());
    store_->OnMembershipChange();
  }
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
  response->set_window_bytes_received(window_bytes_received_.load());
  response->set_window_bytes_sent(window_bytes_sent_.load());
  if (decorate_) decorate_(response);
  return grpc::Status::OK;
}

}  // namespace ps

namespace ps {

grpc::Status ParameterServerService::OpenWindow(grpc::ServerContext*,
                                                const v1::OpenWindowRequest* request,
                                                v1::OpenWindowResponse* response) {
  const int worker = request->worker_index();
  if (windows_.enabled() && !registry_->IsLive(worker)) {
    return ToGrpcStatus(LogRejected(
        "OpenWindow", worker,
        absl::FailedPreconditionError(absl::StrCat(
            "worker ", worker, " is not registered with shard ",
            store_->options().shard_index, "; register before opening transfer windows"))));
  }
  int64_t dense_bytes = 0;
  for (DenseTable* t : store_->Tables()) dense_bytes += t->local_size() * 4;
  absl::StatusOr<std::shared_ptr<const TransferWindows::Window>> w =
      windows_.Open(worker, request->bytes(), dense_bytes);
  if (!w.ok()) return ToGrpcStatus(LogRejected("OpenWindow", worker, w.status()));
  response->set_push_address(reinterpret_cast<uint64_t>((*w)->push.get()));
  response->set_pull_address(reinterpret_cast<uint64_t>((*w)->pull.get()));
  response->set_bytes((*w)->bytes);
  return grpc::Status::OK;
}

}  // namespace ps
