// AdminClient: psctl's connection to the job. Any shard answers for the whole job, so
// each call goes to the first server in the list that can be reached and moves on to the
// next only when a server cannot be reached; the error then names every address tried
// and the gRPC error it gave ("cannot reach 127.0.0.1:5000: failed to connect to all
// addresses").
//
// Thread-compatible: one thread at a time.
#ifndef PS_PSCTL_ADMIN_CLIENT_H_
#define PS_PSCTL_ADMIN_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/channel_credentials.h"
#include "proto/v1/ps.grpc.pb.h"

namespace ps {
namespace psctl {

class AdminClient {
 public:
  // `servers`: host:port of the shards, tried in order. `timeout` bounds each unary call
  // to one server. `credentials`: TLS and the token every call presents.
  AdminClient(std::vector<std::string> servers, absl::Duration timeout,
              const ChannelCredentials& credentials = {});

  // The job's status from the first server that answers.
  absl::StatusOr<v1::ClusterStatusResponse> ClusterStatus();

  // Streams Admin.Watch from the first server that answers, calling `on_update` for each
  // status; returns when the server ends the stream (max_updates sent) or with its error.
  absl::Status Watch(const v1::WatchRequest& request,
                     const std::function<void(const v1::ClusterStatusResponse&)>& on_update);

  // Asks the first reachable server to checkpoint, waiting at most `timeout`. Not retried
  // on another server once a server was reached: a checkpoint is not repeated blindly.
  absl::StatusOr<v1::CheckpointResponse> Checkpoint(const v1::CheckpointRequest& request,
                                                    absl::Duration timeout);

 private:
  // True when a failed call never reached server `i`, so the next one may be tried.
  bool Unreachable(int i, const grpc::Status& status) const;
  // The error for "no server could be asked", one line per address tried.
  static absl::Status AllFailed(const std::vector<std::string>& errors, grpc::StatusCode code);

  const std::vector<std::string> servers_;
  const absl::Duration timeout_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::Admin::Stub>> stubs_;
};

}  // namespace psctl
}  // namespace ps

#endif  // PS_PSCTL_ADMIN_CLIENT_H_
