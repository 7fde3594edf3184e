// The gRPC implementation of PsClient.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "common/error_reason.h"
#include "common/placement.h"
#include "common/same_host.h"
#include "common/status_util.h"
#include "glog/logging.h"
#include "proto/v1/ps.grpc.pb.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"
#include "worker/client/request_plan.h"

namespace ps {
namespace {

// One request to one shard and what came back.
template <typename Request, typename Response>
struct Call {
  std::unique_ptr<grpc::ClientContext> ctx;  // new for every attempt
  Request request;
  Response response;
  grpc::Status status;
};

// How SendAll treats a shard that is not there.
struct SendOptions {
  absl::Duration timeout;
  // Wait (up to `timeout`) for a shard that is down or restarting instead of failing at
  // once.
  bool wait_for_ready = true;
  // With it, a call that fails with a status it accepts cancels the other calls to the
  // same shard (for requests that wait on each other there).
  std::function<bool(const grpc::Status&)> cancel_siblings;
};

// Sends calls[i] to shard shards[i] (only those in `subset`, when given), all at once
// (gRPC's callback API), and returns when every one has finished.
template <typename Request, typename Response, typename Method>
void SendAll(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
             std::vector<std::unique_ptr<v1::ParameterServer::Stub>>& stubs,
             const SendOptions& options, Method method,
             const std::vector<size_t>* subset = nullptr) {
  std::vector<size_t> all;
  if (subset == nullptr) {
    for (size_t i = 0; i < calls.size(); ++i) all.push_back(i);
    subset = &all;
  }
  absl::BlockingCounter done(static_cast<int>(subset->size()));
  for (size_t i : *subset) {
    Call<Request, Response>& c = calls[i];
    c.ctx = std::make_unique<grpc::ClientContext>();
    c.ctx->set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
    c.ctx->set_wait_for_ready(options.wait_for_ready);
    c.response.Clear();
  }
  for (size_t i : *subset) {
    Call<Request, Response>& c = calls[i];
    method(stubs[shards[i]]->async(), c.ctx.get(), &c.request, &c.response,
           [&calls, &shards, &done, &options, subset, i](grpc::Status s) {
             if (options.cancel_siblings && !s.ok() && options.cancel_siblings(s)) {
               // TryCancel is thread-safe, a no-op on a finished call, and cancels a call
               // not started yet when it starts.
               for (size_t j : *subset) {
                 if (j != i && shards[j] == shards[i]) calls[j].ctx->TryCancel();
               }
             }
             calls[i].status = std::move(s);
             done.DecrementCount();
           });
  }
  done.Wait();
}

constexpr auto kPull = [](auto* async, grpc::ClientContext* ctx, const v1::PullRequest* req,
                          v1::PullResponse* resp, std::function<void(grpc::Status)> cb) {
  async->Pull(ctx, req, resp, std::move(cb));
};
constexpr auto kPush = [](auto* async, grpc::ClientContext* ctx, const v1::PushRequest* req,
                          v1::PushResponse* resp, std::function<void(grpc::Status)> cb) {
  async->Push(ctx, req, resp, std::move(cb));
};
constexpr auto kPushPull = [](auto* async, grpc::ClientContext* ctx,
                              const v1::PushPullRequest* req, v1::PushPullResponse* resp,
                              std::function<void(grpc::Status)> cb) {
  async->PushPull(ctx, req, resp, std::move(cb));
};
constexpr auto kRegister = [](auto* async, grpc::ClientContext* ctx,
                              const v1::RegisterWorkerRequest* req,
                              v1::RegisterWorkerResponse* resp,
                              std::function<void(grpc::Status)> cb) {
  async->RegisterWorker(ctx, req, resp, std::move(cb));
};
constexpr auto kHeartbeat = [](auto* async, grpc::ClientContext* ctx,
                               const v1::HeartbeatRequest* req, v1::HeartbeatResponse* resp,
                               std::function<void(grpc::Status)> cb) {
  async->Heartbeat(ctx, req, resp, std::move(cb));
};
constexpr auto kLeave = [](auto* async, grpc::ClientContext* ctx,
                           const v1::LeaveWorkerRequest* req, v1::LeaveWorkerResponse* resp,
                           std::function<void(grpc::Status)> cb) {
  async->LeaveWorker(ctx, req, resp, std::move(cb));
};
constexpr auto kGetStatus = [](auto* async, grpc::ClientContext* ctx,
                               const v1::GetStatusRequest* req, v1::GetStatusResponse* resp,
                               std::function<void(grpc::Status)> cb) {
  async->GetStatus(ctx, req, resp, std::move(cb));
};
constexpr auto kCreateTable = [](auto* async, grpc::ClientContext* ctx,
                                 const v1::CreateTableRequest* req,
                                 v1::CreateTableResponse* resp,
                                 std::function<void(grpc::Status)> cb) {
  async->CreateTable(ctx, req, resp, std::move(cb));
};

// A lost reply (the request may have been applied): safe to send again with its push id.
bool ReplyMayBeLost(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

class GrpcPsClient final : public PsClient {
 public:
  GrpcPsClient(const std::vector<std::string>& servers, const ClientOptions& options,
               const ChannelFactory& make_channel)
      : servers_(servers), options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(std::numeric_limits<int>::max());
    args.SetMaxSendMessageSize(std::numeric_limits<int>::max());
    next_.assign(servers_.size(), 0);
    heartbeat_interval_.assign(servers_.size(), absl::Seconds(1));
    pulled_.assign(servers_.size(), 0);
    same_host_.resize(servers_.size());
    if (options_.same_host) local_identity_ = LocalHostIdentity();
    for (const std::string& address : servers_) {
      stubs_.push_back(v1::ParameterServer::NewStub(
          make_channel ? make_channel(address, args)
                       : grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                                   args)));
    }
  }

  int num_shards() const override { return static_cast<int>(servers_.size()); }

  absl::Status CreateTable(const v1::TableSpec& spec) override {
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    std::vector<v1::CreateTableResponse> responses;
    return OnShards(AllShards(), request, kCreateTable, /*wait_for_ready=*/true, &responses,
                    "create table");
  }

  absl::Status RegisterWorker(int worker, const std::string& host, const std::string& device,
                              int64_t clock) override {
    return Register(AllShards(), worker, host, device, clock);
  }

  absl::Status RegisterWith(int shard, int worker, const std::string& host,
                            const std::string& device, int64_t clock) override {
    return Register({shard}, worker, host, device, clock);
  }

  absl::Status Heartbeat(int worker, const v1::WorkerStats& stats) override {
    return SendHeartbeats(AllShards(), worker, stats);
  }

  absl::Status HeartbeatTo(int shard, int worker, const v1::WorkerStats& stats) override {
    return SendHeartbeats({shard}, worker, stats);
  }

  absl::Duration heartbeat_interval(int shard) const override {
    absl::MutexLock lock(&progress_mu_);
    return heartbeat_interval_[shard];
  }

  absl::Status LeaveWorker(int worker) override {
    {
      // No windowed call of this client is in flight once both locks are held, and none
      // starts after: the shards free this incarnation's windows when it leaves.
      absl::MutexLock push_lock(&push_window_mu_);
      absl::MutexLock pull_lock(&pull_window_mu_);
      absl::MutexLock lock(&same_host_mu_);
      for (SameHostShard& s : same_host_) s.windows.erase(worker);
    }
    v1::LeaveWorkerRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation());
    std::vector<v1::LeaveWorkerResponse> responses;
    return OnShards(AllShards(), request, kLeave, /*wait_for_ready=*/false, &responses, "leave");
  }

  absl::StatusOr<std::vector<v1::GetStatusResponse>> GetStatus() override {
    std::vector<v1::GetStatusResponse> out;
    absl::Status s = OnShards(AllShards(), v1::GetStatusRequest(), kGetStatus,
                              /*wait_for_ready=*/false, &out, "status");
    if (!s.ok()) return s;
    return out;
  }

  absl::StatusOr<int64_t> Pull(const std::vector<DenseTensor>& tensors, int64_t min_version,
                               int worker) override {
    // One windowed pull at a time: a second one at once goes in-band.
    if (worker >= 0 && pull_window_mu_.TryLock()) {
      absl::StatusOr<int64_t> v = PullImpl(tensors, min_version, worker, /*windows=*/true);
      pull_window_mu_.Unlock();
      return v;
    }
    return PullImpl(tensors, min_version, worker, /*windows=*/false);
  }

  absl::StatusOr<int64_t> PullImpl(const std::vector<DenseTensor>& tensors, int64_t min_version,
                                   int worker, bool windows) {
    std::vector<Chunk> chunks = Plan(tensors);
    const std::vector<WindowUse> use =
        windows ? PrepareWindows(&chunks, worker) : std::vector<WindowUse>(servers_.size());
    std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
    std::vector<int> shards;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_incarnation(incarnation());
      c.request.set_min_version(min_version == kPerShard ? NextVersion(chunks[i].shard)
                                                         : min_version);
      c.request.set_clock(clock());
      for (const Piece& p : chunks[i].pieces) {
        v1::DenseSlice* d = c.request.add_dense();
        d->set_table(p.tensor->table);
        d->set_offset(p.begin);
        d->set_length(p.length);
        if (p.window_offset >= 0) d->set_window_offset(p.window_offset);
      }
      shards.push_back(chunks[i].shard);
    }
    SendAll(calls, shards, stubs_, RpcOptions(), kPull);
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
    PulledParts parts(servers_.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "pull", calls[i].status);
      if (absl::Status st = TakePulled(chunks[i], calls[i].response, use,
                                       [](const Piece& p) { return p.tensor->data + p.begin; },
                                       &parts);
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

  PushPullResult PushPull(const std::vector<DenseTensor>& grads,
                          const std::vector<DenseTensor>& params, int worker,
                          int64_t min_version) override {
    std::optional<PushPullResult> r;
    if (worker >= 0 && push_window_mu_.TryLock()) {
      if (pull_window_mu_.TryLock()) {
        r = PushPullCombined(grads, params, worker, min_version, /*windows=*/true);
        pull_window_mu_.Unlock();
      } else {
        r = PushPullCombined(grads, params, worker, min_version, /*windows=*/false);
      }
      push_window_mu_.Unlock();
    } else if (worker >= 0) {
      r = PushPullCombined(grads, params, worker, min_version, /*windows=*/false);
    }
    if (r.has_value()) return *std::move(r);
    return PsClient::PushPull(grads, params, worker, min_version);
  }

  // Each request carries a chunk's push and the pull of the same slices: through the
  // shard's windows (one request per shard) or in-band (the usual chunks). nullopt, with
  // nothing sent, when the tensors do not pair up or a window write fails.
  std::optional<PushPullResult> PushPullCombined(const std::vector<DenseTensor>& grads,
                                                 const std::vector<DenseTensor>& params,
                                                 int worker, int64_t min_version,
                                                 bool windows) {
    if (grads.size() != params.size()) return std::nullopt;
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].table != params[i].table || grads[i].num_elements != params[i].num_elements) {
        return std::nullopt;
      }
    }
    std::vector<Chunk> chunks = Plan(grads);
    const std::vector<WindowUse> use =
        windows ? PrepareWindows(&chunks, worker) : std::vector<WindowUse>(servers_.size());
    if (!WriteToPushWindows(chunks, use)) return std::nullopt;
    std::vector<Call<v1::PushPullRequest, v1::PushPullResponse>> calls(chunks.size());
    std::vector<int> shards;
    int64_t grad_bytes = 0;
    const int64_t sequence = NextPushSequence();
    for (size_t i = 0; i < chunks.size(); ++i) {
      const int shard = chunks[i].shard;
      v1::PushRequest* push = calls[i].request.mutable_push();
      v1::PullRequest* pull = calls[i].request.mutable_pull();
      const int64_t step = PulledVersion(shard);
      push->set_worker_index(worker);
      push->set_step(step);
      push->set_clock(clock());
      SetPushId(push, sequence, static_cast<int>(i));
      pull->set_worker_index(worker);
      pull->set_incarnation(incarnation());
      pull->set_min_version(min_version == kPerShard ? step + 1 : min_version);
      pull->set_clock(clock());
      for (const Piece& p : chunks[i].pieces) {
        v1::DenseSlice* pushed = push->add_dense();
        v1::DenseSlice* pulled = pull->add_dense();
        for (v1::DenseSlice* d : {pushed, pulled}) {
          d->set_table(p.tensor->table);
          d->set_offset(p.begin);
          d->set_length(p.length);
          if (p.window_offset >= 0) d->set_window_offset(p.window_offset);
        }
        if (p.window_offset < 0) {
          pushed->set_values(reinterpret_cast<const char*>(p.tensor->data + p.begin),
                             p.length * 4);
        }
        grad_bytes += p.length * 4;
      }
      shards.push_back(shard);
    }
    bytes_pushed_.fetch_add(grad_bytes, std::memory_order_relaxed);
    // A shard that refuses one chunk's push never reaches the version the other chunks'
    // pulls wait for there: cancel them rather than wait out the deadline.
    SendOptions send = RpcOptions();
    send.cancel_siblings = [](const grpc::Status& st) {
      return st.error_code() != grpc::StatusCode::ALREADY_EXISTS &&
             st.error_code() != grpc::StatusCode::UNAVAILABLE;
    };
    // Only a lost connection is retried: the push is then applied once (its id), and its
    // pull is asked again.
    SendWithRetries(calls, shards, send, kPushPull, [](const grpc::Status& st) {
      return st.error_code() == grpc::StatusCode::UNAVAILABLE;
    });

    PushPullResult result;
    bool all_ok = true;
    std::vector<bool> shard_ok(servers_.size(), true);
    absl::Status cancelled;
    for (size_t i = 0; i < chunks.size(); ++i) {
      const grpc::Status& st = calls[i].status;
      // As in Push: a shard that already holds this step's gradient counts it delivered.
      if (!st.ok()) {
        ForgetLostWindow(chunks[i].shard, worker, st);
        all_ok = false;
        if (st.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
          shard_ok[chunks[i].shard] = false;
          // Report the refusal, not the calls it cancelled.
          absl::Status& slot =
              st.error_code() == grpc::StatusCode::CANCELLED ? cancelled : result.push;
          if (slot.ok()) slot = ShardError(chunks[i].shard, "push", st);
        }
      }
    }
    if (result.push.ok() && !cancelled.ok()) result.push = cancelled;
    {
      absl::MutexLock lock(&progress_mu_);
      for (const Chunk& c : chunks) {
        if (shard_ok[c.shard]) next_[c.shard] = pulled_[c.shard] + 1;
      }
    }
    if (!all_ok) {
      result.pull = absl::UnavailableError("not pulled: a shard did not take the push-pull");
      // A version that never came stays the job's failure, as for a plain pull.
      for (size_t i = 0; i < chunks.size(); ++i) {
        if (calls[i].status.ok() &&
            calls[i].response.pull_code() == static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED)) {
          result.pull = ShardError(chunks[i].shard, "pull",
                                   grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                                calls[i].response.pull_message()));
        }
      }
      return result;
    }
    PulledParts parts(servers_.size());
    for (size_t i = 0; i < chunks.size(); ++i) {
      const v1::PushPullResponse& r = calls[i].response;
      if (r.pull_code() != 0) {
        result.pull = ShardError(
            chunks[i].shard, "pull",
            grpc::Status(static_cast<grpc::StatusCode>(r.pull_code()), r.pull_message()));
        return result;
      }
      // The same element range of the parameter tensor as of the gradient.
      absl::Status st = TakePulled(
          chunks[i], r.pull(), use,
          [&](const Piece& p) { return params[p.tensor - grads.data()].data + p.begin; }, &parts);
      if (!st.ok()) {
        result.pull = st;
        return result;
      }
    }
    if (absl::Status st = FinishPulled(use, &parts); !st.ok()) {
      result.pull = st;
      return result;
    }
    result.pull = chunks.empty() ? 0 : parts.version;
    return result;
  }

  void ResetProgress() override {
    absl::MutexLock lock(&progress_mu_);
    std::fill(next_.begin(), next_.end(), 0);
    std::fill(pulled_.begin(), pulled_.end(), 0);
  }

  absl::Status Push(const std::vector<DenseTensor>& tensors, int64_t step, int worker) override {
    if (worker >= 0 && push_window_mu_.TryLock()) {
      absl::Status s = PushImpl(tensors, step, worker, /*windows=*/true);
      push_window_mu_.Unlock();
      return s;
    }
    return PushImpl(tensors, step, worker, /*windows=*/false);
  }

  absl::Status PushImpl(const std::vector<DenseTensor>& tensors, int64_t step, int worker,
                        bool windows) {
    std::vector<Chunk> chunks = Plan(tensors);
    if (windows) {
      const std::vector<WindowUse> use = PrepareWindows(&chunks, worker);
      // Gradients go into each shard's push window before the calls that name them.
      if (!WriteToPushWindows(chunks, use)) {
        // Nothing was sent yet: the whole push goes in-band, planned afresh (windowed
        // requests are merged per shard and may exceed what an in-band request should be).
        return PushImpl(tensors, step, worker, /*windows=*/false);
      }
    }
    std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
    std::vector<int> shards;
    const int64_t sequence = NextPushSequence();
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_step(step == kPerShard ? PulledVersion(chunks[i].shard) : step);
      c.request.set_clock(clock());
      SetPushId(&c.request, sequence, static_cast<int>(i));
      for (const Piece& p : chunks[i].pieces) {
        v1::DenseSlice* d = c.request.add_dense();
        d->set_table(p.tensor->table);
        d->set_offset(p.begin);
        d->set_length(p.length);
        if (p.window_offset >= 0) {
          d->set_window_offset(p.window_offset);
        } else {
          d->set_values(reinterpret_cast<const char*>(p.tensor->data + p.begin), p.length * 4);
        }
        bytes_pushed_.fetch_add(p.length * 4, std::memory_order_relaxed);
      }
      shards.push_back(chunks[i].shard);
    }
    SendWithRetries(calls, shards, RpcOptions(), kPush, ReplyMayBeLost);
    absl::Status first_error;
    std::vector<bool> shard_ok(servers_.size(), true);
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
    if (step == kPerShard) {
      absl::MutexLock lock(&progress_mu_);
      for (const Chunk& c : chunks) {
        if (shard_ok[c.shard]) next_[c.shard] = pulled_[c.shard] + 1;
      }
    }
    return first_error;
  }

  absl::StatusOr<int64_t> PullSparse(const std::string& table, const std::vector<int64_t>& keys,
                                     int width, float* rows, int worker) override {
    if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
    // Each distinct key is asked for once; its row is then copied to every position.
    std::vector<float> unused;
    const std::vector<int64_t> unique = SumDuplicateKeys(keys, 0, nullptr, &unused);
    std::vector<SparseChunk> chunks = PlanSparse(unique);
    std::vector<Call<v1::PullRequest, v1::PullResponse>> calls(chunks.size());
    std::vector<int> shards;
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_incarnation(incarnation());
      c.request.set_clock(clock());
      v1::SparseRows* r = c.request.add_sparse();
      r->set_table(table);
      for (size_t k : chunks[i].positions) r->add_keys(unique[k]);
      shards.push_back(chunks[i].shard);
    }
    SendAll(calls, shards, stubs_, RpcOptions(), kPull);
    std::vector<float> unique_rows(unique.size() * static_cast<size_t>(width));
    int64_t version = std::numeric_limits<int64_t>::max();
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse pull", calls[i].status);
      const v1::PullResponse& resp = calls[i].response;
      const size_t want = chunks[i].positions.size() * width * 4;
      if (resp.sparse_size() != 1 || resp.sparse(0).values().size() != want) {
        return absl::InternalError(absl::StrCat("shard ", chunks[i].shard, " sent ",
                                                resp.sparse_size() ? resp.sparse(0).values().size() : 0,
                                                " bytes of table '", table, "' rows, want ", want));
      }
      const char* src = resp.sparse(0).values().data();
      for (size_t j = 0; j < chunks[i].positions.size(); ++j) {
        std::memcpy(unique_rows.data() + chunks[i].positions[j] * width, src + j * width * 4,
                    width * 4);
      }
      bytes_pulled_.fetch_add(want, std::memory_order_relaxed);
      version = std::min(version, resp.sparse(0).version());
    }
    absl::flat_hash_map<int64_t, size_t> where;
    for (size_t k = 0; k < unique.size(); ++k) where.emplace(unique[k], k);
    for (size_t i = 0; i < keys.size(); ++i) {
      std::memcpy(rows + i * width, unique_rows.data() + where[keys[i]] * width, width * 4);
    }
    return chunks.empty() ? 0 : version;
  }

  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys, int width,
                          const float* grads, int64_t step, int worker) override {
    if (width <= 0) return absl::InvalidArgumentError(absl::StrCat("row width ", width, " <= 0"));
    std::vector<float> summed;
    const std::vector<int64_t> unique = SumDuplicateKeys(keys, width, grads, &summed);
    // Every shard hears from every push, even without keys for it, so SSP clocks advance
    // on all shards.
    std::vector<SparseChunk> chunks = PlanSparse(unique, /*every_shard=*/true);
    std::vector<Call<v1::PushRequest, v1::PushResponse>> calls(chunks.size());
    std::vector<int> shards;
    const int64_t sequence = NextPushSequence();
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = calls[i];
      c.request.set_worker_index(worker);
      c.request.set_step(step);
      c.request.set_clock(clock());
      SetPushId(&c.request, sequence, static_cast<int>(i));
      v1::SparseRows* r = c.request.add_sparse();
      r->set_table(table);
      std::string* values = r->mutable_values();
      values->resize(chunks[i].positions.size() * width * 4);
      for (size_t j = 0; j < chunks[i].positions.size(); ++j) {
        const size_t k = chunks[i].positions[j];
        r->add_keys(unique[k]);
        std::memcpy(values->data() + j * width * 4, summed.data() + k * width, width * 4);
      }
      bytes_pushed_.fetch_add(values->size(), std::memory_order_relaxed);
      shards.push_back(chunks[i].shard);
    }
    SendWithRetries(calls, shards, RpcOptions(), kPush, ReplyMayBeLost);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!calls[i].status.ok()) return ShardError(chunks[i].shard, "sparse push", calls[i].status);
    }
    return absl::OkStatus();
  }

 private:
  // A shard's same-host state: an offer this process verified, and its open windows.
  struct SameHostShard {
    bool usable = false;
    int64_t pid = 0;
    uint64_t probe_address = 0;
    std::string probe_token;
    // Open windows, per worker index (one client may act for several workers).
    struct Window {
      uint64_t push_address = 0;
      uint64_t pull_address = 0;
      int64_t bytes = 0;
    };
    std::map<int, Window> windows;
    std::string note;  // what was last logged about this shard
  };
  static constexpr int64_t kWindowRequestBytes = 16 << 20;
  // What one call uses of a shard's windows; pid 0: none.
  struct WindowUse {
    int64_t pid = 0;
    uint64_t push_address = 0;
    uint64_t pull_address = 0;
  };

  // Reads the probe token out of process `pid`: proves that the process is the shard's
  // server (not a stranger that got its pid) and that this process may attach to it.
  static absl::Status CheckProbe(int64_t pid, uint64_t address, const std::string& token) {
    char got[16];
    if (token.size() != sizeof(got)) {
      return absl::InvalidArgumentError(absl::StrCat("probe token of ", token.size(), " bytes"));
    }
    absl::Status s = ReadFromProcess(pid, {{got, address, sizeof(got)}});
    if (!s.ok()) return s;
    if (std::memcmp(got, token.data(), sizeof(got)) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("process ", pid, " does not hold the shard's probe token"));
    }
    return absl::OkStatus();
  }

  void AcceptOffer(int shard, const v1::SameHostOffer* offer) {
    SameHostShard next;
    std::string why;
    if (!options_.same_host) {
      why = "disabled on this worker";
    } else if (offer == nullptr) {
      why = "not offered by the shard";
    } else {
      HostIdentity theirs;
      theirs.pid = offer->pid();
      theirs.boot_id = offer->boot_id();
      theirs.pid_namespace = offer->pid_namespace();
      theirs.net_namespace = offer->net_namespace();
      if (!SameHost(local_identity_, theirs)) {
        why = "the shard is on another host or in other namespaces";
      } else if (absl::Status s =
                     CheckProbe(offer->pid(), offer->probe_address(), offer->probe_token());
                 !s.ok()) {
        why = absl::StrCat("same host, but cannot attach: ", s.message());
      } else {
        next.usable = true;
        next.pid = offer->pid();
        next.probe_address = offer->probe_address();
        next.probe_token = offer->probe_token();
      }
    }
    absl::MutexLock lock(&same_host_mu_);
    SameHostShard& cur = same_host_[shard];
    if (next.usable && cur.usable && cur.pid == next.pid && cur.probe_token == next.probe_token) {
      return;  // the same server process: keep its windows
    }
    // Said once per shard and again only when it changes (re-registrations repeat it).
    const std::string note =
        next.usable ? absl::StrCat("tensor bytes move through same-host windows "
                                   "(cross-memory attach to pid ", next.pid, ")")
                    : absl::StrCat("tensor bytes go over gRPC (same-host windows: ", why, ")");
    if (note != cur.note) {
      LOG(INFO) << "shard " << shard << " (" << servers_[shard] << "): " << note;
    }
    next.note = note;
    cur = next;
  }

  // What a pull brought back, while its replies are taken in.
  struct PulledParts {
    explicit PulledParts(size_t shards)
        : reads(shards), shard_version(shards, std::numeric_limits<int64_t>::max()) {}
    std::vector<std::vector<RemoteCopy>> reads;  // windowed slices, per shard
    int64_t version = std::numeric_limits<int64_t>::max();
    std::vector<int64_t> shard_version;  // max(): none from that shard
  };

  // Takes in one chunk's pulled slices: in-band values are copied to dest(piece) now,
  // windowed ones are queued for one read per shard. INTERNAL when the reply does not
  // match the request.
  absl::Status TakePulled(const Chunk& chunk, const v1::PullResponse& r,
                          const std::vector<WindowUse>& use,
                          const std::function<float*(const Piece&)>& dest, PulledParts* parts) {
    if (r.dense_size() != static_cast<int>(chunk.pieces.size())) {
      return absl::InternalError(absl::StrCat("shard ", chunk.shard, " answered ", r.dense_size(),
                                              " slices for ", chunk.pieces.size()));
    }
    for (int j = 0; j < r.dense_size(); ++j) {
      const Piece& p = chunk.pieces[j];
      const v1::DenseSlice& d = r.dense(j);
      float* out = dest(p);
      if (p.window_offset >= 0) {
        if (!d.has_window_offset() || d.window_offset() != p.window_offset ||
            !d.values().empty()) {
          return absl::InternalError(absl::StrCat("shard ", chunk.shard,
                                                  " answered a windowed pull of table '",
                                                  p.tensor->table, "' without its window"));
        }
        parts->reads[chunk.shard].push_back(
            {reinterpret_cast<char*>(out),
             use[chunk.shard].pull_address + static_cast<uint64_t>(p.window_offset),
             static_cast<size_t>(p.length * 4)});
      } else if (static_cast<int64_t>(d.values().size()) != p.length * 4) {
        return absl::InternalError(absl::StrCat("shard ", chunk.shard, " sent ",
                                                d.values().size(), " bytes for table '",
                                                p.tensor->table, "' slice of ", p.length));
      } else {
        std::memcpy(out, d.values().data(), d.values().size());
      }
      bytes_pulled_.fetch_add(p.length * 4, std::memory_order_relaxed);
      parts->version = std::min(parts->version, d.version());
      parts->shard_version[chunk.shard] = std::min(parts->shard_version[chunk.shard], d.version());
    }
    return absl::OkStatus();
  }

  // Reads the queued windowed slices (one process_vm_readv per shard), then records each
  // shard's pulled version. A window that cannot be read turns that shard's windows off
  // and is returned as the error; nothing is recorded then.
  absl::Status FinishPulled(const std::vector<WindowUse>& use, PulledParts* parts) {
    for (size_t s = 0; s < parts->reads.size(); ++s) {
      if (parts->reads[s].empty()) continue;
      if (absl::Status st = ReadFromProcess(use[s].pid, parts->reads[s]); !st.ok()) {
        DisableSameHost(static_cast<int>(s), st);
        return st;
      }
      for (const RemoteCopy& c : parts->reads[s]) {
        window_bytes_.fetch_add(c.bytes, std::memory_order_relaxed);
      }
    }
    absl::MutexLock lock(&progress_mu_);
    for (size_t s = 0; s < parts->shard_version.size(); ++s) {
      if (parts->shard_version[s] != std::numeric_limits<int64_t>::max()) {
        pulled_[s] = parts->shard_version[s];
      }
    }
    return absl::OkStatus();
  }

  // Writes every windowed piece's gradient into its shard's push window, one
  // process_vm_writev per shard. On a failure turns that shard's windows off and returns
  // false; the caller, having sent nothing yet, goes in-band.
  bool WriteToPushWindows(const std::vector<Chunk>& chunks, const std::vector<WindowUse>& use) {
    std::vector<std::vector<RemoteCopy>> writes(servers_.size());
    for (const Chunk& c : chunks) {
      for (const Piece& p : c.pieces) {
        if (p.window_offset < 0) continue;
        writes[c.shard].push_back({reinterpret_cast<char*>(p.tensor->data + p.begin),
                                   use[c.shard].push_address +
                                       static_cast<uint64_t>(p.window_offset),
                                   static_cast<size_t>(p.length * 4)});
      }
    }
    for (size_t s = 0; s < writes.size(); ++s) {
      if (writes[s].empty()) continue;
      if (absl::Status st = WriteToProcess(use[s].pid, writes[s]); !st.ok()) {
        DisableSameHost(static_cast<int>(s), st);
        return false;
      }
    }
    for (const std::vector<RemoteCopy>& w : writes) {
      for (const RemoteCopy& c : w) window_bytes_.fetch_add(c.bytes, std::memory_order_relaxed);
    }
    return true;
  }

  // After a windowed call failed because the shard holds no window for this worker
  // (reason WINDOW_GONE), forgets the cached window so that the next call opens a new
  // one. Returns whether that was the failure.
  bool ForgetLostWindow(int shard, int worker, const grpc::Status& st) {
    if (!HasReason(FromGrpcStatus(st), kReasonWindowGone)) return false;
    absl::MutexLock lock(&same_host_mu_);
    same_host_[shard].windows.erase(worker);
    return true;
  }

  void DisableSameHost(int shard, const absl::Status& why) {
    absl::MutexLock lock(&same_host_mu_);
    if (!same_host_[shard].usable) return;
    LOG(WARNING) << "shard " << shard << " (" << servers_[shard]
                 << "): same-host windows stopped working (" << why
                 << "); tensor bytes go over gRPC until the worker registers again";
    SameHostShard off;
    off.note = "stopped";
    same_host_[shard] = off;
  }

  // For the shards whose windows this call can use: opens or grows their windows, checks
  // the probe, and lays the pieces out in them (window_offset). Other shards' pieces stay
  // in-band. Returns, per shard, what the call uses.
  std::vector<WindowUse> PrepareWindows(std::vector<Chunk>* chunks, int worker) {
    std::vector<WindowUse> use(servers_.size());
    if (!options_.same_host || worker < 0) return use;
    std::vector<int64_t> need(servers_.size(), 0);
    for (const Chunk& c : *chunks) {
      for (const Piece& p : c.pieces) need[c.shard] += p.length * 4;
    }
    for (int s = 0; s < num_shards(); ++s) {
      if (need[s] == 0) continue;
      SameHostShard state;
      {
        absl::MutexLock lock(&same_host_mu_);
        state = same_host_[s];
      }
      if (!state.usable) continue;
      SameHostShard::Window window = state.windows[worker];
      if (window.bytes < need[s]) {
        v1::OpenWindowRequest request;
        request.set_worker_index(worker);
        request.set_incarnation(incarnation());
        request.set_bytes(need[s]);
        v1::OpenWindowResponse response;
        grpc::ClientContext ctx;
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
        grpc::Status st = stubs_[s]->OpenWindow(&ctx, request, &response);
        if (!st.ok()) {
          DisableSameHost(s, ShardError(s, "OpenWindow", st));
          continue;
        }
        window = {response.push_address(), response.pull_address(), response.bytes()};
        absl::MutexLock lock(&same_host_mu_);
        SameHostShard& cur = same_host_[s];
        if (cur.usable && cur.pid == state.pid) cur.windows[worker] = window;
      }
      if (window.bytes < need[s]) continue;
      // The server process may have been replaced since the offer (a restart).
      if (absl::Status st = CheckProbe(state.pid, state.probe_address, state.probe_token);
          !st.ok()) {
        DisableSameHost(s, st);
        continue;
      }
      use[s] = {state.pid, window.push_address, window.pull_address};
    }
    std::vector<int64_t> at(servers_.size(), 0);
    for (Chunk& c : *chunks) {
      if (use[c.shard].pid == 0) continue;
      for (Piece& p : c.pieces) {
        p.window_offset = at[c.shard];
        at[c.shard] += p.length * 4;
      }
    }
    // Windowed requests carry no tensor bytes, so the message limit that chunking exists
    // for does not apply: one request per shard (up to kWindowRequestBytes of tensor, well
    // under the server's --max_request_bytes) saves the per-call cost.
    std::vector<Chunk> merged;
    int64_t merged_bytes = 0;
    for (Chunk& c : *chunks) {
      int64_t bytes = 0;
      for (const Piece& p : c.pieces) bytes += p.length * 4;
      if (use[c.shard].pid != 0 && !merged.empty() && merged.back().shard == c.shard &&
          merged_bytes + bytes <= kWindowRequestBytes) {
        for (const Piece& p : c.pieces) merged.back().pieces.push_back(p);
        merged_bytes += bytes;
      } else {
        merged.push_back(std::move(c));
        merged_bytes = bytes;
      }
    }
    *chunks = std::move(merged);
    return use;
  }

 public:
  int same_host_shards() const override {
    absl::MutexLock lock(&same_host_mu_);
    int n = 0;
    for (const SameHostShard& s : same_host_) n += s.usable ? 1 : 0;
    return n;
  }

 private:
  std::vector<Chunk> Plan(const std::vector<DenseTensor>& tensors) const {
    return PlanDense(tensors, num_shards(), options_.max_chunk_bytes);
  }
  std::vector<SparseChunk> PlanSparse(const std::vector<int64_t>& unique,
                                      bool every_shard = false) const {
    return ps::PlanSparse(unique, num_shards(), options_.max_sparse_keys_per_request,
                          every_shard);
  }

  absl::Status ShardError(int shard, const char* what, const grpc::Status& s) const {
    const absl::Status st = FromGrpcStatus(s);
    absl::Status out(st.code(), absl::StrCat(what, " to shard ", shard, " (", servers_[shard],
                                             "): ", st.message()));
    const std::string reason = ReasonOf(st);
    return reason.empty() ? out : WithReason(std::move(out), reason);
  }

  std::vector<int> AllShards() const {
    std::vector<int> all(servers_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
    return all;
  }

  // Sends `request` to every shard in `targets` at once, each call with its own deadline
  // (connect_timeout when waiting for ready, else control_timeout), so a shard that does
  // not answer delays no other. `responses` gets one reply per target, in order. Returns
  // the first failure, naming its shard.
  template <typename Request, typename Response, typename Method>
  absl::Status OnShards(const std::vector<int>& targets, const Request& request, Method method,
                        bool wait_for_ready, std::vector<Response>* responses, const char* what,
                        std::vector<grpc::Status>* statuses = nullptr) {
    std::vector<Call<Request, Response>> calls(targets.size());
    for (auto& c : calls) c.request = request;
    SendOptions send;
    send.timeout = wait_for_ready ? options_.connect_timeout : options_.control_timeout;
    send.wait_for_ready = wait_for_ready;
    SendAll(calls, targets, stubs_, send, method);
    responses->clear();
    absl::Status first;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (!calls[i].status.ok() && first.ok()) {
        first = ShardError(targets[i], what, calls[i].status);
      }
      responses->push_back(std::move(calls[i].response));
      if (statuses != nullptr) statuses->push_back(calls[i].status);
    }
    return first;
  }

  absl::Status Register(const std::vector<int>& targets, int worker, const std::string& host,
                        const std::string& device, int64_t clock) {
    v1::RegisterWorkerRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation());
    request.set_clock(clock);
    request.set_host(host);
    request.set_device(device);
    std::vector<v1::RegisterWorkerResponse> responses;
    std::vector<grpc::Status> statuses;
    absl::Status s = OnShards(targets, request, kRegister, /*wait_for_ready=*/true, &responses,
                              "register", &statuses);
    for (size_t i = 0; i < targets.size(); ++i) {
      if (!statuses[i].ok()) continue;
      const v1::RegisterWorkerResponse& r = responses[i];
      AcceptOffer(targets[i], r.has_same_host() ? &r.same_host() : nullptr);
      absl::MutexLock lock(&progress_mu_);
      if (r.heartbeat_interval_ms() > 0) {
        heartbeat_interval_[targets[i]] = absl::Milliseconds(r.heartbeat_interval_ms());
      }
    }
    return s;
  }

  absl::Status SendHeartbeats(const std::vector<int>& targets, int worker,
                              const v1::WorkerStats& stats) {
    v1::HeartbeatRequest request;
    request.set_worker_index(worker);
    request.set_incarnation(incarnation());
    *request.mutable_stats() = stats;
    std::vector<v1::HeartbeatResponse> responses;
    return OnShards(targets, request, kHeartbeat, /*wait_for_ready=*/false, &responses,
                    "heartbeat");
  }

  // Sends the calls, then again, with backoff, those whose reply may have been lost,
  // up to options_.push_attempts tries in all. Only for requests that carry a push id.
  template <typename Request, typename Response, typename Method>
  void SendWithRetries(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
                       const SendOptions& send, Method method,
                       const std::function<bool(const grpc::Status&)>& retry) {
    SendAll(calls, shards, stubs_, send, method);
    absl::Duration backoff = options_.push_retry_backoff;
    for (int attempt = 1; attempt < options_.push_attempts; ++attempt) {
      std::vector<size_t> again;
      for (size_t i = 0; i < calls.size(); ++i) {
        if (retry(calls[i].status)) again.push_back(i);
      }
      if (again.empty()) return;
      LOG(WARNING) << "sending " << again.size() << " push request(s) again (try "
                   << attempt + 1 << " of " << options_.push_attempts << "): shard "
                   << shards[again[0]] << " said " << calls[again[0]].status.error_message();
      absl::SleepFor(backoff);
      backoff *= 2;
      SendAll(calls, shards, stubs_, send, method, &again);
    }
  }

  SendOptions RpcOptions() const {
    SendOptions send;
    send.timeout = options_.rpc_timeout;
    return send;
  }

  // Pushes of a worker (worker >= 0) carry an id; tools' pushes (worker < 0) do not.
  void SetPushId(v1::PushRequest* request, int64_t sequence, int part) const {
    if (request->worker_index() < 0) return;
    request->mutable_id()->set_incarnation(incarnation());
    request->mutable_id()->set_sequence(sequence);
    request->mutable_id()->set_part(part);
  }

  int64_t NextVersion(int shard) const {
    absl::MutexLock lock(&progress_mu_);
    return next_[shard];
  }
  int64_t PulledVersion(int shard) const {
    absl::MutexLock lock(&progress_mu_);
    return pulled_[shard];
  }

  const std::vector<std::string> servers_;
  const ClientOptions options_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> stubs_;
  mutable absl::Mutex progress_mu_;
  std::vector<int64_t> next_ ABSL_GUARDED_BY(progress_mu_);    // per shard, for kPerShard pulls
  std::vector<int64_t> pulled_ ABSL_GUARDED_BY(progress_mu_);  // per shard, for kPerShard pushes
  std::vector<absl::Duration> heartbeat_interval_ ABSL_GUARDED_BY(progress_mu_);  // per shard
  HostIdentity local_identity_;
  mutable absl::Mutex same_host_mu_;
  std::vector<SameHostShard> same_host_ ABSL_GUARDED_BY(same_host_mu_);
  // One windowed pull and one windowed push at a time (each lays out the whole window).
  absl::Mutex pull_window_mu_;
  absl::Mutex push_window_mu_;
};

}  // namespace

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options) {
  return std::make_unique<GrpcPsClient>(servers, options, nullptr);
}

std::unique_ptr<PsClient> NewGrpcPsClient(const std::vector<std::string>& servers,
                                          const ClientOptions& options,
                                          ChannelFactory make_channel) {
  return std::make_unique<GrpcPsClient>(servers, options, make_channel);
}

}  // namespace ps
