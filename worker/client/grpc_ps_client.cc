// GrpcPsClient's methods (grpc_ps_client_impl.h) but the push-pull, and the factories.
#include "worker/client/grpc_ps_client.h"

#include <algorithm>
#include <limits>
#include <optional>

#include <glog/logging.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status_util.h"
#include "worker/client/connect.h"
#include "worker/client/grpc_ps_client_impl.h"

namespace ps {
namespace internal {

absl::Status GrpcPsClient::CreateTable(const v1::TableSpec& spec) {
  v1::CreateTableRequest request;
  *request.mutable_spec() = spec;
  std::vector<v1::CreateTableResponse> responses;
  return stubs_.OnShards(stubs_.AllShards(), request, kCreateTable, /*wait_for_ready=*/true,
                         &responses, "create table");
}

absl::Status GrpcPsClient::LeaveWorker(int worker) {
  {
    // No windowed call of this client is in flight once both locks are held, and none
    // starts after: the shards free this incarnation's windows when it leaves.
    absl::MutexLock push_lock(&push_window_mu_);
    absl::MutexLock pull_lock(&pull_window_mu_);
    transport_.ForgetWorker(worker);
  }
  v1::LeaveWorkerRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation());
  std::vector<v1::LeaveWorkerResponse> responses;
  return stubs_.OnShards(stubs_.AllShards(), request, kLeave, /*wait_for_ready=*/false, &responses,
                         "leave");
}

absl::Status GrpcPsClient::WaitForShards(absl::Duration timeout) {
  const std::vector<std::string>& servers = stubs_.servers();
  LOG(INFO) << "connecting to " << servers.size() << (servers.size() == 1 ? " shard: " : " shards: ")
            << absl::StrJoin(servers, ", ") << " (up to " << absl::FormatDuration(timeout)
            << ", --connect_timeout)";
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  constexpr absl::Duration kReportEvery = absl::Seconds(5);
  absl::Time last_report = start;
  absl::Duration backoff = absl::Milliseconds(100);
  std::vector<int> pending = stubs_.AllShards();
  while (!pending.empty()) {
    std::vector<v1::GetStatusResponse> responses;
    std::vector<grpc::Status> statuses;
    // The statuses say what each shard answered; the first failure is not needed.
    stubs_.OnShards(pending, v1::GetStatusRequest(), kGetStatus, /*wait_for_ready=*/false,
                    &responses, "connect", &statuses)
        .IgnoreError();
    std::vector<int> still;
    for (size_t i = 0; i < pending.size(); ++i) {
      const int shard = pending[i];
      const absl::Status st = FromGrpcStatus(statuses[i]);
      if (st.ok()) {
        // A list that disagrees with the shards is refused as soon as one says so.
        if (responses[i].num_shards() > 0) {  // shards older than the field leave it 0
          absl::Status id = CheckShardIdentity(servers, shard, responses[i].shard_index(),
                                               responses[i].num_shards());
          if (!id.ok()) return id;
        }
        continue;
      }
      if (!MayBeStarting(st)) {
        return absl::Status(st.code(), absl::StrCat("shard ", shard, " (", servers[shard],
                                                    "): ", ExplainUnreachable(servers[shard], st)));
      }
      still.push_back(shard);
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        return absl::Status(
            st.code(), absl::StrCat("shard ", shard, " (", servers[shard], ") did not answer within ",
                                    absl::FormatDuration(timeout), " (--connect_timeout): ",
                                    ExplainUnreachable(servers[shard], st)));
      }
      if (now - last_report >= kReportEvery) {
        LOG(WARNING) << "waiting for shard " << shard << " (" << servers[shard] << ") for "
                     << absl::FormatDuration(absl::Trunc(now - start, absl::Seconds(1))) << " of "
                     << absl::FormatDuration(timeout) << ": "
                     << ExplainUnreachable(servers[shard], st);
      }
    }
    if (absl::Now() - last_report >= kReportEvery) last_report = absl::Now();
    pending = std::move(still);
    if (pending.empty()) break;
    absl::SleepFor(std::min(backoff, deadline - absl::Now()));
    backoff = std::min(2 * backoff, absl::Seconds(2));
  }
  LOG(INFO) << "all " << servers.size() << " shards answered after "
            << absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1)));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::GetStatusResponse>> GrpcPsClient::GetStatus() {
  std::vector<v1::GetStatusResponse> out;
  absl::Status s = stubs_.OnShards(stubs_.AllShards(), v1::GetStatusRequest(), kGetStatus,
                                   /*wait_for_ready=*/false, &out, "status");
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<int64_t> GrpcPsClient::Pull(const std::vector<DenseTensor>& tensors,
                                           int64_t min_version, int worker) {
  // One windowed pull at a time: a second one at once goes in-band.
  if (worker >= 0 && pull_window_mu_.TryLock()) {
    absl::StatusOr<int64_t> v = PullImpl(tensors, min_version, worker, /*windows=*/true);
    pull_window_mu_.Unlock();
    return v;
  }
  return PullImpl(tensors, min_version, worker, /*windows=*/false);
}

absl::Status GrpcPsClient::Push(const std::vector<DenseTensor>& tensors, int64_t step, int worker) {
  std::optional<absl::MutexLock> one_at_a_time;
  if (worker >= 0) one_at_a_time.emplace(&push_order_mu_);
  if (worker >= 0 && push_window_mu_.TryLock()) {
    absl::Status s = PushImpl(tensors, step, worker, /*windows=*/true);
    push_window_mu_.Unlock();
    return s;
  }
  return PushImpl(tensors, step, worker, /*windows=*/false);
}

absl::StatusOr<int64_t> GrpcPsClient::PullSparse(const std::string& table,
                                                 const std::vector<int64_t>& keys, int width,
                                                 float* rows, int worker) {
  if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
  // Each distinct key is asked for once; its row is then copied to every position.
  std::vector<float> unused;
  const std::vector<int64_t> unique = SumDuplicateKeys(keys, 0, nullptr, &unused);
  std::vector<SparseChunk> chunks = PlanSparse(unique);
  std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    calls[i].request = SparsePullRequest(table, chunks[i], unique, Sender(worker));
  }
  stubs_.Send(calls, ShardsOf(chunks), stubs_.RpcOptions(), kPull);
  std::vector<float> unique_rows(unique.size() * static_cast<size_t>(width));
  int64_t version = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse pull", calls[i].status);
    absl::StatusOr<int64_t> v =
        TakeSparseRows(chunks[i], calls[i].response, table, width, unique_rows.data());
    if (!v.ok()) return v.status();
    bytes_pulled_.fetch_add(chunks[i].positions.size() * width * 4, std::memory_order_relaxed);
    version = std::min(version, *v);
  }
  ScatterRows(keys, unique, unique_rows, width, rows);
  return chunks.empty() ? 0 : version;
}

absl::Status GrpcPsClient::PushSparse(const std::string& table, const std::vector<int64_t>& keys,
                                      int width, const float* grads, int64_t step, int worker) {
  if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
  std::optional<absl::MutexLock> one_at_a_time;
  if (worker >= 0) one_at_a_time.emplace(&push_order_mu_);
  std::vector<float> summed;
  const std::vector<int64_t> unique = SumDuplicateKeys(keys, width, grads, &summed);
  // Every shard hears from every push, even without keys for it, so SSP clocks advance
  // on all shards.
  std::vector<SparseChunk> chunks = PlanSparse(unique, /*every_shard=*/true);
  std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
  const int64_t sequence = NextPushSequence();
  for (size_t i = 0; i < chunks.size(); ++i) {
    calls[i].request = SparsePushRequest(table, chunks[i], unique, summed, width, Sender(worker),
                                         step, sequence, static_cast<int>(i));
    bytes_pushed_.fetch_add(calls[i].request.sparse(0).values().size(), std::memory_order_relaxed);
  }
  stubs_.SendWithRetries(calls, ShardsOf(chunks), stubs_.RpcOptions(), kPush,
                         ReplyMayBeLostAt<v1::PushRequest, v1::PushResponse>);
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse push", calls[i].status);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> GrpcPsClient::PullImpl(const std::vector<DenseTensor>& tensors,
                                               int64_t min_version, int worker, bool windows) {
  std::vector<Chunk> chunks = Plan(tensors);
  const std::vector<WindowUse> use =
      windows ? transport_.PrepareWindows(&chunks, worker) : std::vector<WindowUse>(num_shards());
  std::vector<Call<v1::PullRequest, wire::PullResponse>> calls(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    calls[i].request =
        DensePullRequest(chunks[i], Sender(worker),
                         min_version == kPerShard ? progress_.next(chunks[i].shard) : min_version,
                         &options_.wire_formats);
  }
  stubs_.Send(calls, ShardsOf(chunks), stubs_.RpcOptions(), kWirePull);
  bool lost_window = false;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!calls[i].status.ok() && ForgetLostWindow(chunks[i].shard, worker, calls[i].status)) {
      lost_window = true;
    }
  }
  if (lost_window) {
    // A shard no longer holds this worker's window (another process with this worker
    // index left): pull again in-band; the next call opens new windows.
    return PullImpl(tensors, min_version, worker, /*windows=*/false);
  }
  PulledParts parts(num_shards());
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "pull", calls[i].status);
    if (absl::Status st = TakePulled(
            chunks[i], calls[i].response.message, &calls[i].response.values, use,
            [](const Piece& p) { return p.tensor->data + p.begin; }, &parts, &bytes_pulled_);
        !st.ok()) {
      return st;
    }
  }
  if (absl::Status st = FinishPulled(use, &parts); !st.ok()) {
    // A shard answered but its window cannot be read: pull again without windows (a
    // pull changes nothing on the server).
    return PullImpl(tensors, min_version, worker, /*windows=*/false);
  }
  return chunks.empty() ? 0 : parts.version;
}

absl::Status GrpcPsClient::PushImpl(const std::vector<DenseTensor>& tensors, int64_t step,
                                    int worker, bool windows) {
  std::vector<Chunk> chunks = Plan(tensors);
  if (windows) {
    const std::vector<WindowUse> use = transport_.PrepareWindows(&chunks, worker);
    // Gradients go into each shard's push window before the calls that name them.
    if (!transport_.WriteToPushWindows(chunks, use)) {
      // Nothing was sent yet: the whole push goes in-band, planned afresh (windowed
      // requests are merged per shard and may exceed what an in-band request should be).
      return PushImpl(tensors, step, worker, /*windows=*/false);
    }
  }
  std::vector<Call<wire::PushRequest, v1::PushResponse>> calls(chunks.size());
  const int64_t sequence = NextPushSequence();
  for (size_t i = 0; i < chunks.size(); ++i) {
    calls[i].request = WireDensePushRequest(
        chunks[i], Sender(worker), step == kPerShard ? progress_.pulled(chunks[i].shard) : step,
        sequence, static_cast<int>(i), &coder_);
    bytes_pushed_.fetch_add(PushedBytes(chunks[i], calls[i].request.values),
                            std::memory_order_relaxed);
  }
  stubs_.SendWithRetries(calls, ShardsOf(chunks), stubs_.RpcOptions(), kWirePush,
                         ReplyMayBeLostAt<wire::PushRequest, v1::PushResponse>);
  ResendLostWindows(tensors, chunks, step, worker, sequence, &calls);
  absl::Status first_error;
  std::vector<bool> shard_ok(num_shards(), true);
  for (size_t i = 0; i < chunks.size(); ++i) {
    // Per-shard pushes are sync steps: a shard that already holds this worker's gradient
    // for the step (a retry after a lost reply or a rejoin) counts it as delivered.
    if (step == kPerShard && calls[i].status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
      continue;
    }
    if (!calls[i].status.ok()) {
      ForgetLostWindow(chunks[i].shard, worker, calls[i].status);
      shard_ok[chunks[i].shard] = false;
      if (first_error.ok()) first_error = ShardError(chunks[i].shard, "push", calls[i].status);
    }
  }
  if (step == kPerShard) progress_.RecordPushed(chunks, shard_ok);
  return first_error;
}

absl::Status GrpcPsClient::Register(const std::vector<int>& targets, int worker,
                                    const std::string& host, const std::string& device,
                                    int64_t clock) {
  v1::RegisterWorkerRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation());
  request.set_clock(clock);
  request.set_host(host);
  request.set_device(device);
  std::vector<v1::RegisterWorkerResponse> responses;
  std::vector<grpc::Status> statuses;
  absl::Status s = stubs_.OnShards(targets, request, kRegister, /*wait_for_ready=*/true, &responses,
                                   "register", &statuses);
  for (size_t i = 0; i < targets.size(); ++i) {
    if (!statuses[i].ok()) continue;
    const v1::RegisterWorkerResponse& r = responses[i];
    if (r.num_shards() > 0) {  // shards older than the field leave it 0
      absl::Status id =
          CheckShardIdentity(stubs_.servers(), targets[i], r.shard_index(), r.num_shards());
      if (!id.ok()) return id;
    }
    transport_.AcceptOffer(targets[i], r.has_same_host() ? &r.same_host() : nullptr);
    if (r.heartbeat_interval_ms() > 0) {
      progress_.set_heartbeat_interval(targets[i], absl::Milliseconds(r.heartbeat_interval_ms()));
    }
  }
  return s;
}

absl::Status GrpcPsClient::SendHeartbeats(const std::vector<int>& targets, int worker,
                                          const v1::WorkerStats& stats) {
  v1::HeartbeatRequest request;
  request.set_worker_index(worker);
  request.set_incarnation(incarnation());
  *request.mutable_stats() = stats;
  std::vector<v1::HeartbeatResponse> responses;
  return stubs_.OnShards(targets, request, kHeartbeat, /*wait_for_ready=*/false, &responses,
                         "heartbeat");
}

}  // namespace internal

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options) {
  return std::make_unique<internal::GrpcPsClient>(servers, options, nullptr);
}

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options,
                                          ChannelFactory make_channel) {
  return std::make_unique<internal::GrpcPsClient>(servers, options, make_channel);
}

}  // namespace ps
