// ParameterServerService: the gRPC adapter over a Shard, on gRPC's callback API. Each
// method converts the call's deadline, delegates to the shard, and answers with its status
// one to one (common/status_util.h); no shard logic lives here. The tensor bytes of Push,
// Pull and PushPull are coded by common/tensor_coding.h: a pushed gradient is applied
// from the buffers gRPC received it in, and pulled values go to the socket from the
// strings the shard wrote them into, with no protobuf copy either way. A pull that waits for its
// version is parked in the shard and answered from the thread of the push that completes
// the version: no gRPC thread waits, and a cancelled call's pull is taken out at once.
//
// Thread-safe: gRPC calls the methods from many threads at once.
#ifndef PS_SERVER_RPC_PS_SERVICE_H_
#define PS_SERVER_RPC_PS_SERVICE_H_

#include "proto/v1/ps.grpc.pb.h"
#include "server/rpc/auth.h"
#include "server/shard/shard.h"

namespace ps {

using ParameterServerServiceBase =
    v1::ParameterServer::WithRawCallbackMethod_Pull<v1::ParameterServer::WithRawCallbackMethod_Push<
        v1::ParameterServer::WithRawCallbackMethod_PushPull<v1::ParameterServer::CallbackService>>>;

class ParameterServerService final : public ParameterServerServiceBase {
 public:
  // `shard` and `auth` (every call is checked first: server/rpc/auth.h) must outlive the
  // service.
  ParameterServerService(Shard* shard, Authorizer* auth) : shard_(shard), auth_(auth) {}

  grpc::ServerUnaryReactor* CreateTable(grpc::CallbackServerContext* context,
                                        const v1::CreateTableRequest* request,
                                        v1::CreateTableResponse* response) override;
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* PushPull(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* context,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* LeaveWorker(grpc::CallbackServerContext* context,
                                        const v1::LeaveWorkerRequest* request,
                                        v1::LeaveWorkerResponse* response) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* context,
                                      const v1::GetStatusRequest* request,
                                      v1::GetStatusResponse* response) override;
  grpc::ServerUnaryReactor* OpenWindow(grpc::CallbackServerContext* context,
                                       const v1::OpenWindowRequest* request,
                                       v1::OpenWindowResponse* response) override;
  grpc::ServerUnaryReactor* ListRows(grpc::CallbackServerContext* context,
                                     const v1::ListRowsRequest* request,
                                     v1::ListRowsResponse* response) override;
  grpc::ServerUnaryReactor* Assign(grpc::CallbackServerContext* context,
                                   const v1::AssignRequest* request,
                                   v1::AssignResponse* response) override;

 private:
  Shard* const shard_;
  Authorizer* const auth_;
};

}  // namespace ps

#endif  // PS_SERVER_RPC_PS_SERVICE_H_
