// The stubs of one client, and the calls that need no template.
#include "worker/client/shard_stubs.h"

#include <algorithm>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/channel_credentials.h"
#include "common/error_reason.h"
#include "common/status_util.h"

namespace ps {
namespace {

ChannelCredentials CredentialsOf(const ClientOptions& o) {
  ChannelCredentials c;
  c.token = o.token;
  c.tls_ca_file = o.tls_ca_file;
  c.tls_cert_file = o.tls_cert_file;
  c.tls_key_file = o.tls_key_file;
  c.tls_server_name = o.tls_server_name;
  return c;
}

}  // namespace

ShardStubs::ShardStubs(const std::vector<std::string>& servers, const ClientOptions& options,
                       const MakeChannelFunction& make_channel)
    : servers_(servers), options_(options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
  args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
  // A connection whose peer stopped reading (a stopped or partitioned shard) is closed
  // within 80 s, even with no call left on it: a push's unsent bytes point at the worker's
  // tensors, and the push returns only once gRPC has let go of them (docs/wire.md). The
  // shards accept these pings (ps_server.cc).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A shard that is not up yet is tried again within 2 s (gRPC's default backoff grows to
  // 120 s), so a worker started before its shards begins soon after they do. (Not
  // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is also each attempt's connect timeout.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 250);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  const int lanes = std::max(1, options.channels_per_shard);
  for (const std::string& address : servers_) {
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (int lane = 0; lane < lanes; ++lane) {
      // Channels with equal arguments share one connection: the lane's number tells
      // them apart.
      grpc::ChannelArguments lane_args = args;
      lane_args.SetInt("ps.lane", lane);
      channels.push_back(make_channel
                             ? make_channel(address, lane_args)
                             : NewChannel(address, CredentialsOf(options), lane_args));
    }
    stubs_.emplace_back(channels);
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
  send.max_in_flight_per_shard = options_.max_calls_in_flight_per_shard;
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
