#include "server/rpc/ps_service.h"

#include <chrono>

#include "common/status_util.h"

namespace ps {
namespace {

absl::Time CallDeadline(const grpc::ServerContext* context) {
  if (context->deadline() == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(context->deadline());
}

}  // namespace

grpc::Status ParameterServerService::CreateTable(grpc::ServerContext*,
                                                 const v1::CreateTableRequest* request,
                                                 v1::CreateTableResponse* response) {
  return ToGrpcStatus(shard_->CreateTable(*request, response));
}

grpc::Status ParameterServerService::Pull(grpc::ServerContext* context,
                                          const v1::PullRequest* request,
                                          v1::PullResponse* response) {
  return ToGrpcStatus(shard_->Pull(*request, CallDeadline(context), response));
}

grpc::Status ParameterServerService::Push(grpc::ServerContext*, const v1::PushRequest* request,
                                          v1::PushResponse* response) {
  return ToGrpcStatus(shard_->Push(*request, response));
}

grpc::Status ParameterServerService::PushPull(grpc::ServerContext* context,
                                              const v1::PushPullRequest* request,
                                              v1::PushPullResponse* response) {
  return ToGrpcStatus(shard_->PushPull(*request, CallDeadline(context), response));
}

grpc::Status ParameterServerService::RegisterWorker(grpc::ServerContext*,
                                                    const v1::RegisterWorkerRequest* request,
                                                    v1::RegisterWorkerResponse* response) {
  return ToGrpcStatus(shard_->Register(*request, response));
}

grpc::Status ParameterServerService::Heartbeat(grpc::ServerContext*,
                                               const v1::HeartbeatRequest* request,
                                               v1::HeartbeatResponse* response) {
  return ToGrpcStatus(shard_->Heartbeat(*request, response));
}

grpc::Status ParameterServerService::LeaveWorker(grpc::ServerContext*,
                                                 const v1::LeaveWorkerRequest* request,
                                                 v1::LeaveWorkerResponse*) {
  return ToGrpcStatus(shard_->Leave(*request));
}

grpc::Status ParameterServerService::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                               v1::GetStatusResponse* response) {
  shard_->GetStatus(response);
  return grpc::Status::OK;
}

grpc::Status ParameterServerService::OpenWindow(grpc::ServerContext*,
                                                const v1::OpenWindowRequest* request,
                                                v1::OpenWindowResponse* response) {
  return ToGrpcStatus(shard_->OpenWindow(*request, response));
}

}  // namespace ps
