#include "server/rpc/ps_service.h"

#include <atomic>
#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_util.h"
#include "common/tensor_coding.h"

namespace ps {
namespace {

absl::Time CallDeadline(const grpc::CallbackServerContext* context) {
  if (context->deadline() == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(context->deadline());
}

// Answers a call that never waits.
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// Parses a call's request: a pull's with protobuf; a push's (alone or in a push-pull)
// keeping its gradients where they arrived. INVALID_ARGUMENT, naming the message, when
// the bytes are not one.
absl::Status Parse(const grpc::ByteBuffer& bytes, v1::PullRequest* request, wire::ReceivedPush*) {
  grpc::ByteBuffer copy = bytes;  // shares the slices; GenericDeserialize empties it
  if (grpc::GenericDeserialize<grpc::ProtoBufferReader, v1::PullRequest>(&copy, request).ok()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("the request does not parse as ps.v1.PullRequest");
}
absl::Status Parse(const grpc::ByteBuffer& bytes, v1::PushPullRequest* request,
                   wire::ReceivedPush* push) {
  absl::Status s = push->Decode(bytes, request);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(
      absl::StrCat("the request does not parse as ps.v1.PushPullRequest: ", s.message()));
}

// A call that may wait in the shard: its request parsed from the call's bytes, and its
// reply coded into them (common/tensor_coding.h) when the shard's callback finishes it,
// on whichever thread answers it. A cancelled call (client gone, deadline, server
// shutdown) takes its pull out of the shard's waiters, which answers it CANCELLED.
template <typename Request, typename Response>
class WaitingCall final : public grpc::ServerUnaryReactor {
 public:
  // `start(request, gradients, response, done)` hands the shard the call and the callback
  // that finishes it, and returns the shard's id for it. A request that does not parse is
  // answered INVALID_ARGUMENT.
  template <typename Start>
  static WaitingCall* Begin(Shard* shard, const grpc::ByteBuffer* bytes, grpc::ByteBuffer* reply,
                            Start start) {
    auto* call = new WaitingCall(shard, reply);
    if (absl::Status s = Parse(*bytes, &call->request_, &call->push_); !s.ok()) {
      call->Finish(ToGrpcStatus(s));
      return call;
    }
    // gRPC reacts (OnCancel, OnDone) only after the method returns this reactor, so the
    // id is set before OnCancel can read it, and `call` lives until OnDone.
    call->id_.store(
        start(call->request_, &call->push_.dense(), &call->response_, [call](absl::Status s) {
          if (s.ok()) *call->reply_ = wire::EncodeMoving(&call->response_);
          call->Finish(ToGrpcStatus(s));
        }));
    return call;
  }

  void OnCancel() override {
    if (const uint64_t id = id_.load(); id != 0) shard_->CancelPull(id);
  }
  void OnDone() override { delete this; }

 private:
  WaitingCall(Shard* shard, grpc::ByteBuffer* reply) : shard_(shard), reply_(reply) {}

  Shard* const shard_;
  grpc::ByteBuffer* const reply_;
  Request request_;
  wire::ReceivedPush push_;  // a push-pull's gradients
  Response response_;
  std::atomic<uint64_t> id_{0};
};

}  // namespace

grpc::ServerUnaryReactor* ParameterServerService::CreateTable(grpc::CallbackServerContext* context,
                                                              const v1::CreateTableRequest* request,
                                                              v1::CreateTableResponse* response) {
  if (absl::Status s = auth_->Check(*context, Method::kCreateTable); !s.ok()) {
    return Answer(context, s);
  }
  return Answer(context, shard_->CreateTable(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::Pull(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kPull, &principal); !s.ok()) {
    return Answer(context, s);
  }
  return WaitingCall<v1::PullRequest, v1::PullResponse>::Begin(
      shard_, request, response,
      [&](const v1::PullRequest& r, const std::vector<const char*>*, v1::PullResponse* out,
          Shard::Done done) -> uint64_t {
        // A worker's pull (its clock, its window) is its own; tools pull as -1.
        if (absl::Status s = auth_->CheckWorker(r.worker_index(), principal, Method::kPull);
            !s.ok()) {
          done(s);
          return 0;
        }
        return shard_->PullAsync(r, CallDeadline(context), out, std::move(done));
      });
}

grpc::ServerUnaryReactor* ParameterServerService::Push(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request,
                                                       grpc::ByteBuffer* response) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kPush, &principal); !s.ok()) {
    return Answer(context, s);
  }
  v1::PushRequest push;
  wire::ReceivedPush gradients;
  if (absl::Status s = gradients.Decode(*request, &push); !s.ok()) {
    return Answer(context, absl::InvalidArgumentError(absl::StrCat(
                               "the request does not parse as ps.v1.PushRequest: ", s.message())));
  }
  if (absl::Status s = auth_->CheckWorker(push.worker_index(), principal, Method::kPush); !s.ok()) {
    return Answer(context, s);
  }
  v1::PushResponse reply;
  absl::Status s = shard_->Push(push, &reply, &gradients.dense());
  if (s.ok()) {
    bool own = false;
    grpc::GenericSerialize<grpc::ProtoBufferWriter, v1::PushResponse>(reply, response, &own);
  }
  return Answer(context, s);
}

grpc::ServerUnaryReactor* ParameterServerService::PushPull(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kPushPull, &principal); !s.ok()) {
    return Answer(context, s);
  }
  return WaitingCall<v1::PushPullRequest, v1::PushPullResponse>::Begin(
      shard_, request, response,
      [&](const v1::PushPullRequest& r, const std::vector<const char*>* gradients,
          v1::PushPullResponse* out, Shard::Done done) -> uint64_t {
        if (absl::Status s =
                auth_->CheckWorker(r.push().worker_index(), principal, Method::kPushPull);
            !s.ok()) {
          done(s);
          return 0;
        }
        return shard_->PushPullAsync(r, CallDeadline(context), out, std::move(done), gradients);
      });
}

grpc::ServerUnaryReactor* ParameterServerService::RegisterWorker(
    grpc::CallbackServerContext* context, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kRegisterWorker, &principal); !s.ok()) {
    return Answer(context, s);
  }
  bool claimed = false;
  if (absl::Status s = auth_->CheckWorker(request->worker_index(), principal,
                                          Method::kRegisterWorker, &claimed);
      !s.ok()) {
    return Answer(context, s);
  }
  absl::Status registered = shard_->Register(*request, response);
  // A registration the shard refuses leaves the index to whoever registers it properly.
  if (!registered.ok() && claimed) auth_->ReleaseWorker(request->worker_index(), principal);
  return Answer(context, registered);
}

grpc::ServerUnaryReactor* ParameterServerService::Heartbeat(grpc::CallbackServerContext* context,
                                                            const v1::HeartbeatRequest* request,
                                                            v1::HeartbeatResponse* response) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kHeartbeat, &principal); !s.ok()) {
    return Answer(context, s);
  }
  if (absl::Status s = auth_->CheckWorker(request->worker_index(), principal, Method::kHeartbeat);
      !s.ok()) {
    return Answer(context, s);
  }
  return Answer(context, shard_->Heartbeat(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::LeaveWorker(grpc::CallbackServerContext* context,
                                                              const v1::LeaveWorkerRequest* request,
                                                              v1::LeaveWorkerResponse*) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kLeaveWorker, &principal); !s.ok()) {
    return Answer(context, s);
  }
  if (absl::Status s = auth_->CheckWorker(request->worker_index(), principal, Method::kLeaveWorker);
      !s.ok()) {
    return Answer(context, s);
  }
  return Answer(context, shard_->Leave(*request));
}

grpc::ServerUnaryReactor* ParameterServerService::GetStatus(grpc::CallbackServerContext* context,
                                                            const v1::GetStatusRequest*,
                                                            v1::GetStatusResponse* response) {
  if (absl::Status s = auth_->Check(*context, Method::kGetStatus); !s.ok()) {
    return Answer(context, s);
  }
  shard_->GetStatus(response);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* ParameterServerService::OpenWindow(grpc::CallbackServerContext* context,
                                                             const v1::OpenWindowRequest* request,
                                                             v1::OpenWindowResponse* response) {
  std::string principal;
  if (absl::Status s = auth_->Check(*context, Method::kOpenWindow, &principal); !s.ok()) {
    return Answer(context, s);
  }
  if (absl::Status s = auth_->CheckWorker(request->worker_index(), principal, Method::kOpenWindow);
      !s.ok()) {
    return Answer(context, s);
  }
  return Answer(context, shard_->OpenWindow(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::ListRows(grpc::CallbackServerContext* context,
                                                           const v1::ListRowsRequest* request,
                                                           v1::ListRowsResponse* response) {
  if (absl::Status s = auth_->Check(*context, Method::kListRows); !s.ok()) {
    return Answer(context, s);
  }
  return Answer(context, shard_->ListRows(*request, response));
}

grpc::ServerUnaryReactor* ParameterServerService::Assign(grpc::CallbackServerContext* context,
                                                         const v1::AssignRequest* request,
                                                         v1::AssignResponse*) {
  if (absl::Status s = auth_->Check(*context, Method::kAssign); !s.ok()) {
    return Answer(context, s);
  }
  return Answer(context, shard_->Assign(*request));
}

}  // namespace ps
