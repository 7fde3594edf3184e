// The stubs of one client, and the calls that need no template.
#include "worker/client/shard_stubs.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/error_reason.h"
#include "common/status_util.h"

namespace ps {

ShardStubs::ShardStubs(const std::vector<std::string>& servers, const ClientOptions& options,
                       const MakeChannelFunction& make_channel)
    : servers_(servers), options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  for (const std::string& address : servers_) {
    stubs_.emplace_back(
        make_channel
            ? make_channel(address, args)
            : grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }
}

std::vector<int> ShardStubs::AllShards() const {
  std::vector<int> all(servers_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  return all;
}

absl::Status ShardStubs::ShardError(int shard, const char* what, const grpc::Status& s) const {
  const absl::Status st = FromGrpcStatus(s);
  absl::Status out(st.code(), absl::StrCat(what, " to shard ", shard, " (", servers_[shard],
                                           "): ", st.message()));
  const std::string reason = ReasonOf(st);
  return reason.empty() ? out : WithReason(std::move(out), reason);
}

SendOptions ShardStubs::RpcOptions() const {
  SendOptions send;
  send.timeout = options_.rpc_timeout;
  return send;
}

absl::StatusOr<OpenedWindows> ShardStubs::OpenWindow(int shard, int worker, uint64_t incarnation,
                                                     int64_t bytes) {
  v1::OpenWindowRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation);
  request.set_bytes(bytes);
  v1::OpenWindowResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Status st = stubs_[shard].stub->OpenWindow(&ctx, request, &response);
  if (!st.ok()) return ShardError(shard, "OpenWindow", st);
  return OpenedWindows{response.push_address(), response.pull_address(), response.bytes()};
}

}  // namespace ps
