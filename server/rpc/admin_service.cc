#include "server/rpc/admin_service.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "common/status_util.h"
#include "glog/logging.h"

namespace ps {
namespace {

constexpr int64_t kDefaultWatchIntervalMs = 1000;
constexpr int64_t kMinWatchIntervalMs = 100;
constexpr char kNotConfigured[] =
    "checkpoints are not configured: start ps_server with --checkpoint_dir";

std::shared_ptr<grpc::Channel> PeerChannel(const std::string& address,
                                           const ChannelCredentials& credentials) {
  grpc::ChannelArguments args;
  // A restarted peer should be seen again within a second, not after gRPC's default
  // reconnect backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return NewChannel(address, credentials, args);
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

// "shard 1 at 127.0.0.1:5001: <message>", keeping the code.
absl::Status ForShard(int shard, const std::string& address, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("shard ", shard, " at ", address, ": ", s.message()));
}

}  // namespace

AdminService::AdminService(AdminServiceOptions options, LocalStatusFn local_status,
                           Checkpointer* checkpointer)
    : options_(std::move(options)),
      local_status_(std::move(local_status)),
      checkpointer_(checkpointer) {
  if (options_.peers.empty()) {
    peers_.push_back(Peer{"", nullptr, nullptr});  // see Address()
    self_ = 0;
    return;
  }
  CHECK(options_.shard_index >= 0 && options_.shard_index < static_cast<int>(options_.peers.size()))
      << "shard_index " << options_.shard_index << " not in peers";
  self_ = options_.shard_index;
  for (int i = 0; i < static_cast<int>(options_.peers.size()); ++i) {
    Peer peer{options_.peers[i], nullptr, nullptr};
    if (i != self_) {
      std::shared_ptr<grpc::Channel> channel = PeerChannel(peer.address, options_.peer_credentials);
      peer.ps = v1::ParameterServer::NewStub(channel);
      peer.admin = v1::Admin::NewStub(channel);
    }
    peers_.push_back(std::move(peer));
  }
}

std::string AdminService::Address(int i) const {
  if (peers_[i].address.empty() && options_.self_address) return options_.self_address();
  return peers_[i].address;
}

void AdminService::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  absl::MutexLock lock(&forward_mu_);
  for (grpc::ClientContext* c : forwarding_) c->TryCancel();
}

v1::ClusterStatusResponse AdminService::GetClusterStatus() {
  const int n = static_cast<int>(peers_.size());
  v1::ClusterStatusResponse response;
  for (int i = 0; i < n; ++i) response.add_shards()->set_address(Address(i));

  // Ask every peer at once; the slowest peer, not their sum, bounds the call.
  const v1::GetStatusRequest request;
  std::vector<grpc::ClientContext> contexts(n);
  std::vector<grpc::Status> results(n);
  absl::BlockingCounter pending(n - 1);
  for (int i = 0; i < n; ++i) {
    if (i == self_) continue;
    contexts[i].set_deadline(DeadlineIn(options_.peer_timeout));
    peers_[i].ps->async()->GetStatus(&contexts[i], &request,
                                     response.mutable_shards(i)->mutable_status(),
                                     [&results, &pending, i](grpc::Status s) {
                                       results[i] = std::move(s);
                                       pending.DecrementCount();
                                     });
  }
  v1::ShardStatus* self = response.mutable_shards(self_);
  *self->mutable_status() = local_status_();
  self->set_reachable(true);
  pending.Wait();

  for (int i = 0; i < n; ++i) {
    if (i == self_) continue;
    v1::ShardStatus* shard = response.mutable_shards(i);
    if (!results[i].ok()) {
      shard->clear_status();
      shard->set_error(absl::StrCat("cannot reach ", peers_[i].address, ": ",
                                    FromGrpcStatus(results[i]).ToString()));
      continue;
    }
    shard->set_reachable(true);
    if (shard->status().shard_index() != i || shard->status().num_shards() != n) {
      shard->set_error(absl::StrCat(peers_[i].address, " answers as shard ",
                                    shard->status().shard_index(), " of ",
                                    shard->status().num_shards(), ", expected shard ", i, " of ", n,
                                    ": check --servers and --shard_index"));
    }
  }
  response.set_timestamp_ms(absl::ToUnixMillis(absl::Now()));
  return response;
}

grpc::Status AdminService::Admit(const grpc::ServerContext& context, Method method) const {
  if (options_.authorizer == nullptr) return grpc::Status::OK;
  return ToGrpcStatus(options_.authorizer->Check(context, method));
}

grpc::Status AdminService::ClusterStatus(grpc::ServerContext* context,
                                         const v1::ClusterStatusRequest*,
                                         v1::ClusterStatusResponse* response) {
  if (grpc::Status s = Admit(*context, Method::kClusterStatus); !s.ok()) return s;
  *response = GetClusterStatus();
  return grpc::Status::OK;
}

grpc::Status AdminService::Watch(grpc::ServerContext* context, const v1::WatchRequest* request,
                                 grpc::ServerWriter<v1::ClusterStatusResponse>* writer) {
  if (grpc::Status s = Admit(*context, Method::kWatch); !s.ok()) return s;
  if (request->interval_ms() < 0 || request->max_updates() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("interval_ms=", request->interval_ms(),
                                     " and max_updates=", request->max_updates(),
                                     " must not be negative"));
  }
  const absl::Duration interval = absl::Milliseconds(
      request->interval_ms() == 0 ? kDefaultWatchIntervalMs
                                  : std::max(kMinWatchIntervalMs, request->interval_ms()));
  // Wakes at least this often to notice a cancelled client.
  const absl::Duration poll = absl::Milliseconds(50);
  for (int64_t sent = 0;;) {
    if (context->IsCancelled()) return grpc::Status::CANCELLED;
    if (!writer->Write(GetClusterStatus())) return grpc::Status::CANCELLED;  // client gone
    if (++sent == request->max_updates()) return grpc::Status::OK;
    const absl::Time next = absl::Now() + interval;
    for (absl::Time now = absl::Now(); now < next; now = absl::Now()) {
      if (stop_.WaitForNotificationWithTimeout(std::min(poll, next - now))) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shard is shutting down");
      }
      if (context->IsCancelled()) return grpc::Status::CANCELLED;
    }
  }
}

grpc::Status AdminService::Checkpoint(grpc::ServerContext* context,
                                      const v1::CheckpointRequest* request,
                                      v1::CheckpointResponse* response) {
  if (grpc::Status s = Admit(*context, Method::kCheckpoint); !s.ok()) return s;
  if (checkpointer_ == nullptr) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, kNotConfigured);
  }
  if (request->at_version() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("at_version=", request->at_version(), " < 0"));
  }
  if (request->all_shards()) {
    absl::StatusOr<v1::CheckpointResponse> all = CheckpointAllShards(request->at_version());
    if (!all.ok()) return ToGrpcStatus(all.status());
    *response = *std::move(all);
    return grpc::Status::OK;
  }
  absl::StatusOr<v1::CheckpointResponse::Written> written = CheckpointLocal(request->at_version(), absl::ZeroDuration());
  if (!written.ok()) return ToGrpcStatus(written.status());
  *response->add_written() = *std::move(written);
  return grpc::Status::OK;
}

absl::StatusOr<v1::CheckpointResponse::Written> AdminService::CheckpointLocal(
    int64_t at_version, absl::Duration timeout) {
  return checkpointer_->Checkpoint(
      at_version, timeout > absl::ZeroDuration() ? timeout : options_.checkpoint_timeout);
}

absl::StatusOr<v1::CheckpointResponse> AdminService::CheckpointAllShards(int64_t at_version,
                                                                         absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) timeout = options_.checkpoint_timeout;
  const int n = static_cast<int>(peers_.size());
  if (at_version == 0) {
    // Sync tables on every shard are captured at the newest version any shard has
    // reached: shards behind it capture when their step completes, none is past it.
    const v1::ClusterStatusResponse cluster = GetClusterStatus();
    for (int i = 0; i < n; ++i) {
      if (!cluster.shards(i).reachable()) {
        return absl::UnavailableError(absl::StrCat("checkpoint needs every shard: shard ", i,
                                                   ": ", cluster.shards(i).error()));
      }
    }
    at_version = MaxSyncVersion(cluster);
  }
  LOG(INFO) << "checkpoint of " << n << " shard(s) at version " << at_version;

  v1::CheckpointRequest forward;
  forward.set_all_shards(false);
  forward.set_at_version(at_version);
  std::vector<grpc::ClientContext> contexts(n);
  std::vector<grpc::Status> results(n);
  std::vector<v1::CheckpointResponse> replies(n);
  absl::BlockingCounter pending(n - 1);
  {
    absl::MutexLock lock(&forward_mu_);
    if (stop_.HasBeenNotified()) return absl::UnavailableError("the shard is stopping");
    for (int i = 0; i < n; ++i) {
      if (i != self_) forwarding_.push_back(&contexts[i]);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (i == self_) continue;
    // The peer waits up to its own checkpoint_timeout; allow for writing and the network.
    contexts[i].set_deadline(DeadlineIn(timeout + absl::Seconds(30)));
    peers_[i].admin->async()->Checkpoint(&contexts[i], &forward, &replies[i],
                                         [&results, &pending, i](grpc::Status s) {
                                           results[i] = std::move(s);
                                           pending.DecrementCount();
                                         });
  }
  absl::StatusOr<v1::CheckpointResponse::Written> local = CheckpointLocal(at_version, timeout);
  pending.Wait();
  {
    absl::MutexLock lock(&forward_mu_);
    forwarding_.erase(std::remove_if(forwarding_.begin(), forwarding_.end(),
                                     [&](grpc::ClientContext* c) {
                                       return c >= &contexts[0] && c < &contexts[0] + n;
                                     }),
                      forwarding_.end());
  }

  v1::CheckpointResponse response;
  for (int i = 0; i < n; ++i) {
    if (i == self_) {
      if (!local.ok()) return ForShard(options_.shard_index, Address(i), local.status());
      *response.add_written() = *local;
      continue;
    }
    if (!results[i].ok()) return ForShard(i, peers_[i].address, FromGrpcStatus(results[i]));
    for (const v1::CheckpointResponse::Written& w : replies[i].written()) {
      *response.add_written() = w;
    }
  }
  return response;
}

int64_t MaxSyncVersion(const v1::ClusterStatusResponse& cluster) {
  int64_t version = 0;
  for (const v1::ShardStatus& shard : cluster.shards()) {
    if (!shard.reachable()) continue;
    for (const v1::TableStatus& table : shard.status().tables()) {
      if (table.spec().consistency() == v1::SYNC) version = std::max(version, table.version());
    }
  }
  return version;
}

}  // namespace ps
