#include "server/rpc/ps_service.h"

#include <atomic>
#include <chrono>
#include <utility>

#include "common/status_util.h"

namespace ps {
namespace {

absl::Time CallDeadline(const grpc::CallbackServerContext* context) {
  if (context->deadline() == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(context->deadline());
}

// Answers a call that never waits.
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A call that may wait in the shard: finished by the shard's callback, on whichever
// thread answers it. A cancelled call (client gone, deadline, server shutdown) takes its
// pull out of the shard's waiters, which answers it CANCELLED.
class WaitingCall final : public grpc::ServerUnaryReactor {
 public:
  // `start` hands the shard the callback that finishes this call and returns the
  // shard's id for it.
  template <typename Start>
  static WaitingCall* Begin(Shard* shard, Start start) {
    auto* call = new WaitingCall(shard);
    // gRPC reacts (OnCancel, OnDone) only after the method returns this reactor, so the
    // id is set before OnCancel can read it, and `call` lives until OnDone.
    call->id_.store(start([call](absl::Status s) { call->Finish(ToGrpcStatus(s)); }));
    return call;
  }

  void OnCancel() override {
    if (const uint64_t id = id_.load(); id != 0) shard_->CancelPull(id);
  }
  void OnDone() override { delete this; }

 private:
  explicit WaitingCall(Shard* shard) : shard_(shard) {}

  Shard* const shard_;
  std::atomic<uint64_t> id_{0};
};

}  // namespace

grpc::ServerUnaryReactor* ParameterServerService::CreateTable(
    grpc::CallbackServerContext* context, const v1::CreateTableRequest* request,
    v1::CreateTableResponse* response) {
  return Answer(context, shard_->CreateTable(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::Pull(grpc::CallbackServerContext* context,
                                                       const v1::PullRequest* request,
                                                       v1::PullResponse* response) {
  return WaitingCall::Begin(shard_, [&](Shard::Done done) {
    return shard_->PullAsync(*request, CallDeadline(context), response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ParameterServerService::Push(grpc::CallbackServerContext* context,
                                                       const v1::PushRequest* request,
                                                       v1::PushResponse* response) {
  return Answer(context, shard_->Push(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::PushPull(
    grpc::CallbackServerContext* context, const v1::PushPullRequest* request,
    v1::PushPullResponse* response) {
  return WaitingCall::Begin(shard_, [&](Shard::Done done) {
    return shard_->PushPullAsync(*request, CallDeadline(context), response, std::move(done));
  });
}

grpc::ServerUnaryReactor* ParameterServerService::RegisterWorker(
    grpc::CallbackServerContext* context, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  return Answer(context, shard_->Register(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::Heartbeat(
    grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  return Answer(context, shard_->Heartbeat(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::LeaveWorker(
    grpc::CallbackServerContext* context, const v1::LeaveWorkerRequest* request,
    v1::LeaveWorkerResponse*) {
  return Answer(context, shard_->Leave(*request));
}

grpc::ServerUnaryReactor* ParameterServerService::GetStatus(
    grpc::CallbackServerContext* context, const v1::GetStatusRequest*,
    v1::GetStatusResponse* response) {
  shard_->GetStatus(response);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ParameterServerService::OpenWindow(
    grpc::CallbackServerContext* context, const v1::OpenWindowRequest* request,
    v1::OpenWindowResponse* response) {
  return Answer(context, shard_->OpenWindow(*request, response));
}

}  // namespace ps
