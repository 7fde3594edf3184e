// How GrpcPsClient sends a batch of requests to its shards: one Call per request, all
// of them at once on gRPC's callback API up to a credit per shard (SendAll), and those
// whose reply may have been lost again with backoff (SendWithRetries). The kPull, kPush,
// ... adapters let one template send any method of the service.
//
// Thread safety: SendAll and SendWithRetries block until every call they started has
// finished; while they run, no other thread may touch `calls`. The stubs are gRPC's and
// may be shared between threads. ReplyMayBeLost is pure.
#ifndef PS_WORKER_CLIENT_GRPC_CALLS_H_
#define PS_WORKER_CLIENT_GRPC_CALLS_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/tensor_coding.h"
#include "glog/logging.h"
#include "proto/v1/ps.grpc.pb.h"

namespace ps {

// One shard's stubs: the service's, and gRPC's generic ones for the dense pulls, pushes
// and push-pulls, whose tensor bytes common/tensor_coding.h codes without protobuf copies.
// The generic stubs come once per lane: each lane is a channel of its own (its own TCP
// connection), and dense calls take turns on them, so that the chunks of a large push
// travel and are read by the shard in parallel rather than one after another on one
// connection.
struct ShardChannel {
  struct Lane {
    explicit Lane(const std::shared_ptr<grpc::Channel>& channel)
        : push(channel), pull(channel), push_pull(channel) {}
    grpc::TemplatedGenericStub<wire::PushRequest, v1::PushResponse> push;
    grpc::TemplatedGenericStub<v1::PullRequest, wire::PullResponse> pull;
    grpc::TemplatedGenericStub<wire::PushPullRequest, wire::PushPullResponse> push_pull;
  };

  // channels[0] also carries the service's (control) calls.
  explicit ShardChannel(const std::vector<std::shared_ptr<grpc::Channel>>& channels)
      : stub(v1::ParameterServer::NewStub(channels.at(0))) {
    for (const auto& c : channels) lanes.push_back(std::make_unique<Lane>(c));
  }

  // The full name gRPC routes `method` of the service by.
  static std::string Method(const char* method) {
    return absl::StrCat("/", v1::ParameterServer::service_full_name(), "/", method);
  }

  // The lane for the next dense call (thread-safe).
  Lane& NextLane() { return *lanes[next->fetch_add(1, std::memory_order_relaxed) % lanes.size()]; }

  std::unique_ptr<v1::ParameterServer::Stub> stub;
  std::vector<std::unique_ptr<Lane>> lanes;
  std::unique_ptr<std::atomic<uint64_t>> next = std::make_unique<std::atomic<uint64_t>>(0);
};

// One request to one shard and what came back.
template <typename Request, typename Response>
struct Call {
  Request request;
  Response response;
  grpc::Status status;
  // New for every attempt. Declared last so that it goes first: it holds gRPC's call, whose
  // stream holds whatever of a wire request was never sent, and a wire request waits in
  // its destructor until gRPC lets go of its bytes (common/tensor_coding.h).
  std::unique_ptr<grpc::ClientContext> ctx;
};

// How SendAll treats a shard that is not there, and how many calls it lets a shard have.
struct SendOptions {
  absl::Duration timeout;
  // Wait (up to `timeout`) for a shard that is down or restarting instead of failing at
  // once.
  bool wait_for_ready = true;
  // With it, a call that fails with a status it accepts cancels the other calls to the
  // same shard (for requests that wait on each other there).
  std::function<bool(const grpc::Status&)> cancel_siblings;
  // The credit: at most this many calls in flight to one shard (0: no limit); the next
  // call to a shard starts when one of its calls finishes. Not for calls that wait on
  // each other at the shard (a sync push-pull's chunks).
  int max_in_flight_per_shard = 0;
};

// Sends calls[i] to shard shards[i] (only those in `subset`, when given), all at once
// (gRPC's callback API) up to the credit per shard, and returns when every one has
// finished.
template <typename Request, typename Response, typename Method>
void SendAll(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
             std::vector<ShardChannel>& stubs, const SendOptions& options, Method method,
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
  // Per shard, the calls the credit holds back, in order.
  absl::Mutex mu;
  absl::flat_hash_map<int, std::deque<size_t>> waiting;
  std::vector<size_t> first;
  absl::flat_hash_map<int, int> started;
  for (size_t i : *subset) {
    const int shard = shards[i];
    if (options.max_in_flight_per_shard > 0 && started[shard] >= options.max_in_flight_per_shard) {
      waiting[shard].push_back(i);
    } else {
      ++started[shard];
      first.push_back(i);
    }
  }
  std::function<void(size_t)> start = [&](size_t i) {
    Call<Request, Response>& c = calls[i];
    method(stubs[shards[i]], c.ctx.get(), &c.request, &c.response,
           [&calls, &shards, &done, &options, &mu, &waiting, &start, subset, i](grpc::Status s) {
             if (options.cancel_siblings && !s.ok() && options.cancel_siblings(s)) {
               // TryCancel is thread-safe, a no-op on a finished call, and cancels a call
               // not started yet when it starts.
               for (size_t j : *subset) {
                 if (j != i && shards[j] == shards[i]) calls[j].ctx->TryCancel();
               }
             }
             calls[i].status = std::move(s);
             // The next call to this shard starts before this one counts as done: once
             // the last one does, SendAll returns and everything here is gone.
             std::optional<size_t> next;
             {
               absl::MutexLock lock(&mu);
               auto it = waiting.find(shards[i]);
               if (it != waiting.end() && !it->second.empty()) {
                 next = it->second.front();
                 it->second.pop_front();
               }
             }
             if (next.has_value()) start(*next);
             done.DecrementCount();
           });
  };
  for (size_t i : first) start(i);
  done.Wait();
}

// How long SendWithRetries keeps resending, and how often.
struct RetryPolicy {
  absl::Duration timeout;      // no try starts after this (0: no retries)
  absl::Duration backoff;      // before the first retry; doubles each time
  absl::Duration max_backoff;  // the longest wait between tries
};

// Sends the calls, then again, with backoff, those whose status `retry` accepts (a reply
// that may have been lost, a shard that is restarting), until `policy.timeout` has
// passed. Only for requests that carry a push id, which shards apply at most once.
// `retry` is called as retry(calls, i) after each round.
template <typename Request, typename Response, typename Method, typename Retry>
void SendWithRetries(std::vector<Call<Request, Response>>& calls, const std::vector<int>& shards,
                     std::vector<ShardChannel>& stubs, const SendOptions& send, Method method,
                     const Retry& retry, const RetryPolicy& policy) {
  const absl::Time give_up = absl::Now() + policy.timeout;
  SendAll(calls, shards, stubs, send, method);
  absl::Duration backoff = policy.backoff;
  for (int attempt = 2;; ++attempt) {
    std::vector<size_t> again;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (retry(calls, i)) again.push_back(i);
    }
    if (again.empty()) {
      if (attempt > 2) LOG(INFO) << "push request(s) went through on try " << attempt - 1;
      return;
    }
    if (absl::Now() + backoff > give_up) {
      if (attempt > 2)
        LOG(WARNING) << "gave up resending push request(s) after " << attempt - 1 << " tries";
      return;
    }
    // The first retry and then every tenth are logged: a restart takes a few seconds.
    if (attempt == 2 || attempt % 10 == 0) {
      LOG(WARNING) << "sending " << again.size() << " push request(s) again (try " << attempt
                   << "): shard " << shards[again[0]] << " said "
                   << calls[again[0]].status.error_message();
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, policy.max_backoff);
    SendAll(calls, shards, stubs, send, method, &again);
  }
}

// The methods of the service in the one shape SendAll calls; kWire* send the tensor bytes
// of dense requests and replies coded by common/tensor_coding.h.
inline constexpr auto kWirePull = [](ShardChannel& s, grpc::ClientContext* ctx,
                                     const v1::PullRequest* req, wire::PullResponse* resp,
                                     std::function<void(grpc::Status)> cb) {
  static const std::string* const method = new std::string(ShardChannel::Method("Pull"));
  s.NextLane().pull.UnaryCall(ctx, *method, {}, req, resp, std::move(cb));
};
inline constexpr auto kWirePush = [](ShardChannel& s, grpc::ClientContext* ctx,
                                     const wire::PushRequest* req, v1::PushResponse* resp,
                                     std::function<void(grpc::Status)> cb) {
  static const std::string* const method = new std::string(ShardChannel::Method("Push"));
  s.NextLane().push.UnaryCall(ctx, *method, {}, req, resp, std::move(cb));
};
inline constexpr auto kWirePushPull =
    [](ShardChannel& s, grpc::ClientContext* ctx, const wire::PushPullRequest* req,
       wire::PushPullResponse* resp, std::function<void(grpc::Status)> cb) {
      static const std::string* const method = new std::string(ShardChannel::Method("PushPull"));
      s.NextLane().push_pull.UnaryCall(ctx, *method, {}, req, resp, std::move(cb));
    };
inline constexpr auto kPull = [](ShardChannel& s, grpc::ClientContext* ctx,
                                 const v1::PullRequest* req, v1::PullResponse* resp,
                                 std::function<void(grpc::Status)> cb) {
  s.stub->async()->Pull(ctx, req, resp, std::move(cb));
};
inline constexpr auto kPush = [](ShardChannel& s, grpc::ClientContext* ctx,
                                 const v1::PushRequest* req, v1::PushResponse* resp,
                                 std::function<void(grpc::Status)> cb) {
  s.stub->async()->Push(ctx, req, resp, std::move(cb));
};
inline constexpr auto kPushPull = [](ShardChannel& s, grpc::ClientContext* ctx,
                                     const v1::PushPullRequest* req, v1::PushPullResponse* resp,
                                     std::function<void(grpc::Status)> cb) {
  s.stub->async()->PushPull(ctx, req, resp, std::move(cb));
};
inline constexpr auto kRegister =
    [](ShardChannel& s, grpc::ClientContext* ctx, const v1::RegisterWorkerRequest* req,
       v1::RegisterWorkerResponse* resp, std::function<void(grpc::Status)> cb) {
      s.stub->async()->RegisterWorker(ctx, req, resp, std::move(cb));
    };
inline constexpr auto kHeartbeat = [](ShardChannel& s, grpc::ClientContext* ctx,
                                      const v1::HeartbeatRequest* req, v1::HeartbeatResponse* resp,
                                      std::function<void(grpc::Status)> cb) {
  s.stub->async()->Heartbeat(ctx, req, resp, std::move(cb));
};
inline constexpr auto kLeave = [](ShardChannel& s, grpc::ClientContext* ctx,
                                  const v1::LeaveWorkerRequest* req, v1::LeaveWorkerResponse* resp,
                                  std::function<void(grpc::Status)> cb) {
  s.stub->async()->LeaveWorker(ctx, req, resp, std::move(cb));
};
inline constexpr auto kGetStatus = [](ShardChannel& s, grpc::ClientContext* ctx,
                                      const v1::GetStatusRequest* req, v1::GetStatusResponse* resp,
                                      std::function<void(grpc::Status)> cb) {
  s.stub->async()->GetStatus(ctx, req, resp, std::move(cb));
};
inline constexpr auto kCreateTable =
    [](ShardChannel& s, grpc::ClientContext* ctx, const v1::CreateTableRequest* req,
       v1::CreateTableResponse* resp, std::function<void(grpc::Status)> cb) {
      s.stub->async()->CreateTable(ctx, req, resp, std::move(cb));
    };
inline constexpr auto kAssign = [](ShardChannel& s, grpc::ClientContext* ctx,
                                   const v1::AssignRequest* req, v1::AssignResponse* resp,
                                   std::function<void(grpc::Status)> cb) {
  s.stub->async()->Assign(ctx, req, resp, std::move(cb));
};

// A lost reply (the request may have been applied), or a shard that stopped taking calls
// (CANCELLED: a stopping shard's server cancels what is left): safe to send again with
// its push id. Only where this client cancels none of its own calls.
inline bool ReplyMayBeLost(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::CANCELLED;
}
// ReplyMayBeLost as SendWithRetries asks it.
template <typename Request, typename Response>
bool ReplyMayBeLostAt(const std::vector<Call<Request, Response>>& calls, size_t i) {
  return ReplyMayBeLost(calls[i].status);
}

// For calls sent with `cancel_siblings`: a CANCELLED call was cancelled by this client
// when another call to its shard failed with a status that predicate accepts; if none
// did, the shard's server cancelled it (it was stopping).
template <typename Request, typename Response>
bool CancelledByTheShard(const std::vector<Call<Request, Response>>& calls,
                         const std::vector<int>& shards, size_t i,
                         const std::function<bool(const grpc::Status&)>& cancel_siblings) {
  if (calls[i].status.error_code() != grpc::StatusCode::CANCELLED) return false;
  for (size_t j = 0; j < calls.size(); ++j) {
    const grpc::Status& s = calls[j].status;
    if (shards[j] == shards[i] && !s.ok() && cancel_siblings(s)) return false;
  }
  return true;
}

}  // namespace ps

#endif  // PS_WORKER_CLIENT_GRPC_CALLS_H_
