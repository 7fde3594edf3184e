// AdminService: the operators' gRPC service (ps.v1.Admin) on every shard. Any one shard
// answers for the whole job: ClusterStatus asks every peer's ParameterServer.GetStatus in
// parallel (its own status without an RPC), Watch streams that view at an interval, and
// Checkpoint writes this shard's checkpoint or, with all_shards, has every shard write one
// at the same sync version. psctl is its client.
//
// Peers are the addresses of every shard in shard order; an empty list means this shard
// is the whole job. A peer that does not answer within `peer_timeout` is reported with
// reachable=false and an error naming its address, never as a failed call.
//
// Thread-safe: gRPC calls the methods from many threads at once; Stop() may be called
// from any thread.
#ifndef PS_SERVER_RPC_ADMIN_SERVICE_H_
#define PS_SERVER_RPC_ADMIN_SERVICE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/channel_credentials.h"
#include "proto/v1/ps.grpc.pb.h"
#include "server/checkpoint/checkpointer.h"
#include "server/rpc/auth.h"

namespace ps {

struct AdminServiceOptions {
  int shard_index = 0;
  // Every shard's address in shard order (this shard's included); empty: only this one.
  std::vector<std::string> peers;
  // Returns the address reported for this shard when `peers` is empty (a function, as a
  // server on port 0 learns its port only once it is serving).
  std::function<std::string()> self_address;
  // How long ClusterStatus waits for each peer.
  absl::Duration peer_timeout = absl::Seconds(2);
  // How long a shard waits for its sync tables to reach a checkpoint's version.
  absl::Duration checkpoint_timeout = absl::Seconds(60);
  // Checks every call first (server/rpc/auth.h); null: none. Must outlive the service.
  Authorizer* authorizer = nullptr;
  // What this shard presents to its peers (an operator's token where they check).
  ChannelCredentials peer_credentials;
};

class AdminService final : public v1::Admin::Service {
 public:
  using LocalStatusFn = std::function<v1::GetStatusResponse()>;

  // `local_status` returns this shard's status (what its GetStatus would answer).
  // `checkpointer` may be null (checkpoints not configured) and must outlive the service.
  AdminService(AdminServiceOptions options, LocalStatusFn local_status,
               Checkpointer* checkpointer);

  grpc::Status ClusterStatus(grpc::ServerContext* context, const v1::ClusterStatusRequest* request,
                             v1::ClusterStatusResponse* response) override;
  // Sends a ClusterStatusResponse at once and then every interval_ms (0: 1000, at least
  // 100) until max_updates have been sent (0: no limit), the client cancels, or Stop().
  grpc::Status Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                     grpc::ServerWriter<v1::ClusterStatusResponse>* writer) override;
  grpc::Status Checkpoint(grpc::ServerContext* context, const v1::CheckpointRequest* request,
                          v1::CheckpointResponse* response) override;

  // Ends running Watch streams (UNAVAILABLE) so that server shutdown does not wait on them.
  void Stop();

  // The view of the whole job that ClusterStatus answers.
  v1::ClusterStatusResponse GetClusterStatus();
  // Has every shard write a checkpoint at `at_version` (0: the newest sync version any
  // shard has reached), as Checkpoint with all_shards does, waiting up to `timeout`
  // (options.checkpoint_timeout when zero) for this shard's steps and that plus 30 s for
  // the peers' answers. Stop() cancels the calls to the peers.
  absl::StatusOr<v1::CheckpointResponse> CheckpointAllShards(
      int64_t at_version, absl::Duration timeout = absl::ZeroDuration());

 private:
  struct Peer {
    std::string address;
    std::unique_ptr<v1::ParameterServer::Stub> ps;  // null for this shard
    std::unique_ptr<v1::Admin::Stub> admin;         // null for this shard
  };

  // OK, or the authorizer's refusal of `method`.
  grpc::Status Admit(const grpc::ServerContext& context, Method method) const;
  std::string Address(int shard_position) const;
  absl::StatusOr<v1::CheckpointResponse::Written> CheckpointLocal(int64_t at_version,
                                                                  absl::Duration timeout);

  const AdminServiceOptions options_;
  const LocalStatusFn local_status_;
  Checkpointer* const checkpointer_;
  std::vector<Peer> peers_;  // one per shard, in shard order; fixed after construction
  int self_ = 0;             // this shard's position in peers_
  absl::Notification stop_;
  absl::Mutex forward_mu_;
  // The forwarded Checkpoint calls in flight, cancelled by Stop().
  std::vector<grpc::ClientContext*> forwarding_ ABSL_GUARDED_BY(forward_mu_);
};

// Returns the largest version of any SYNC table on any reachable shard (0 if none): the
// version at which every shard can capture its sync tables.
int64_t MaxSyncVersion(const v1::ClusterStatusResponse& cluster);

}  // namespace ps

#endif  // PS_SERVER_RPC_ADMIN_SERVICE_H_
