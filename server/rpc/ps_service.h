// ParameterServerService: the gRPC adapter over a Shard. Each method converts the call's
// deadline, delegates to the shard, and returns its status one to one
// (common/status_util.h); no shard logic lives here.
//
// Thread-safe: gRPC calls the methods from many threads at once.
#ifndef PS_SERVER_RPC_PS_SERVICE_H_
#define PS_SERVER_RPC_PS_SERVICE_H_

#include "proto/v1/ps.grpc.pb.h"
#include "server/shard/shard.h"

namespace ps {

class ParameterServerService final : public v1::ParameterServer::Service {
 public:
  // `shard` must outlive the service.
  explicit ParameterServerService(Shard* shard) : shard_(shard) {}

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

 private:
  Shard* const shard_;
};

}  // namespace ps

#endif  // PS_SERVER_RPC_PS_SERVICE_H_
