// Words for a worker's first contact with its shards: why a shard cannot be reached (the
// cause gRPC reports, and what usually fixes it), and whether the shards agree with the
// worker's --servers list. GrpcPsClient::WaitForShards uses both.
#ifndef PS_WORKER_CLIENT_CONNECT_H_
#define PS_WORKER_CLIENT_CONNECT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

// The cause of a failed call to `address`, from gRPC's status `s`, in a few words followed
// by the likely fix: "connection refused: nothing listens on port 50051 of 127.0.0.1; is
// ps_server running there, and is 50051 its gRPC --port (not --metrics_port)?".
std::string ExplainUnreachable(absl::string_view address, const absl::Status& s);

// Whether a call that failed with `s` may succeed later (the shard is not up yet, or is
// restarting): UNAVAILABLE and DEADLINE_EXCEEDED, unless what answers is not gRPC.
bool MayBeStarting(const absl::Status& s);

// OK when the shard listed `listed_as` in `servers` says it is shard `shard_index` of
// `num_shards`; otherwise INVALID_ARGUMENT saying what is wrong with --servers.
absl::Status CheckShardIdentity(const std::vector<std::string>& servers, int listed_as,
                                int shard_index, int num_shards);

}  // namespace ps

#endif  // PS_WORKER_CLIENT_CONNECT_H_
