#include "server/shard/shard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "common/input_checks.h"
#include "common/value_format.h"
#include "glog/logging.h"

namespace ps {
namespace {

// Logs a rejected request once per call; the client gets the same text as its status.
absl::Status LogRejected(const char* what, int worker, absl::Status s) {
  // A deadline or a cancellation is the caller's doing, not a rejection.
  if (!s.ok() && s.code() != absl::StatusCode::kDeadlineExceeded &&
      s.code() != absl::StatusCode::kCancelled) {
    // Escaped: the message may quote what the client sent (a table name, say).
    LOG(WARNING) << what << " from worker " << worker
                 << " rejected: " << Printable(Describe(s), 1000);
  }
  return s;
}

bool UsesWindow(const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices) {
  for (const v1::DenseSlice& d : slices) {
    if (d.has_window_offset()) return true;
  }
  return false;
}

// Adds the tensor bytes of `slices` to `total`, and those that went through a transfer
// window to `windowed` as well.
void CountBytes(const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices,
                std::atomic<int64_t>* total, std::atomic<int64_t>* windowed) {
  int64_t bytes = 0, window_bytes = 0;
  for (const v1::DenseSlice& d : slices) {
    bytes += d.values().size();
    if (d.has_window_offset()) window_bytes += d.length() * 4;
  }
  total->fetch_add(bytes + window_bytes, std::memory_order_relaxed);
  windowed->fetch_add(window_bytes, std::memory_order_relaxed);
}

}  // namespace

Shard::Shard(const ShardOptions& options)
    : options_(options),
      start_(options.clock()),
      budget_(options.memory_budget_bytes),
      registry_(options.heartbeat_timeout, options.clock),
      store_(options.store, &registry_, &budget_),
      windows_(options.same_host_windows, &budget_) {}

absl::Status Shard::CreateTable(const v1::CreateTableRequest& request,
                                v1::CreateTableResponse* response) {
  if (!refusal_.ok()) return refusal_;
  return LogRejected("CreateTable", -1, store_.CreateTable(request, response));
}

absl::Status Shard::Assign(const v1::AssignRequest& request) {
  if (!refusal_.ok()) return refusal_;
  return LogRejected("Assign", -1, store_.Assign(request));
}

absl::Status Shard::ListRows(const v1::ListRowsRequest& request, v1::ListRowsResponse* response) {
  if (!refusal_.ok()) return refusal_;
  return LogRejected("ListRows", -1, store_.ListRows(request, response));
}

absl::Status Shard::Register(const v1::RegisterWorkerRequest& request,
                             v1::RegisterWorkerResponse* response) {
  if (!refusal_.ok()) return refusal_;
  absl::Status s = registry_.Register(request.worker_index(), request.host(), request.device(),
                                      request.incarnation());
  if (!s.ok()) return s;
  store_.OnWorkerRegistered(request.worker_index(), request.clock());
  response->set_heartbeat_interval_ms(absl::ToInt64Milliseconds(options_.heartbeat_interval));
  response->set_heartbeat_timeout_ms(absl::ToInt64Milliseconds(options_.heartbeat_timeout));
  response->set_live_workers(registry_.num_live());
  response->set_shard_index(options_.store.shard_index);
  response->set_num_shards(options_.store.num_shards);
  if (windows_.enabled()) windows_.FillOffer(response->mutable_same_host());
  return absl::OkStatus();
}

absl::Status Shard::Heartbeat(const v1::HeartbeatRequest& request,
                              v1::HeartbeatResponse* response) {
  if (!refusal_.ok()) return refusal_;
  absl::Status s =
      registry_.Heartbeat(request.worker_index(), request.stats(), request.incarnation());
  if (s.ok()) response->set_live_workers(registry_.num_live());
  return s;
}

absl::Status Shard::Leave(const v1::LeaveWorkerRequest& request) {
  absl::Status s = registry_.Leave(request.worker_index(), request.incarnation());
  if (!s.ok()) return LogRejected("LeaveWorker", request.worker_index(), s);
  // Only the incarnation that leaves loses its windows: it has stopped writing them.
  windows_.Close(request.worker_index(), request.incarnation());
  store_.OnMembershipChange();
  return absl::OkStatus();
}

absl::Status Shard::OpenWindow(const v1::OpenWindowRequest& request,
                               v1::OpenWindowResponse* response) {
  if (!refusal_.ok()) return refusal_;
  const int worker = request.worker_index();
  if (windows_.enabled()) {
    if (!registry_.IsLive(worker)) {
      return LogRejected(
          "OpenWindow", worker,
          WithReason(absl::FailedPreconditionError(absl::StrCat(
                         "worker ", worker, " is not registered with shard ",
                         options_.store.shard_index, "; register before opening transfer windows")),
                     kReasonUnknownWorker));
    }
    if (absl::Status s = registry_.CheckIncarnation(worker, request.incarnation()); !s.ok()) {
      return LogRejected("OpenWindow", worker, s);
    }
  }
  int64_t dense_bytes = 0;
  for (DenseTable* t : store_.Tables()) dense_bytes += t->local_size() * 4;
  absl::StatusOr<std::shared_ptr<const TransferWindows::Window>> w =
      windows_.Open(worker, request.incarnation(), request.bytes(), dense_bytes);
  if (!w.ok()) return LogRejected("OpenWindow", worker, w.status());
  response->set_push_address(reinterpret_cast<uint64_t>((*w)->push.get()));
  response->set_pull_address(reinterpret_cast<uint64_t>((*w)->pull.get()));
  response->set_bytes((*w)->bytes);
  return absl::OkStatus();
}

absl::StatusOr<Shard::WindowedSlices> Shard::ResolveWindows(
    int worker, uint64_t incarnation,
    const google::protobuf::RepeatedPtrField<v1::DenseSlice>& slices, bool push) const {
  WindowedSlices out;
  if (!UsesWindow(slices)) return out;
  out.hold = windows_.Get(worker, incarnation);
  if (out.hold == nullptr) {
    return WithReason(absl::FailedPreconditionError(
                          absl::StrCat("worker ", worker,
                                       " sent a slice with a window offset but has no "
                                       "transfer window on shard ",
                                       options_.store.shard_index, "; call OpenWindow first")),
                      kReasonWindowGone);
  }
  char* base = push ? out.hold->push.get() : out.hold->pull.get();
  out.at.assign(slices.size(), nullptr);
  for (int i = 0; i < slices.size(); ++i) {
    const v1::DenseSlice& d = slices[i];
    if (!d.has_window_offset()) continue;
    if (absl::Status s =
            CheckWindowRange(d.table(), d.window_offset(), d.length(), out.hold->bytes);
        !s.ok()) {
      return s;
    }
    out.at[i] = base + d.window_offset();
  }
  return out;
}

absl::Time Shard::PullDeadline(absl::Time call_deadline) const {
  return std::min(call_deadline, absl::Now() + options_.max_pull_wait);
}

uint64_t Shard::PullAsync(const v1::PullRequest& request, absl::Time deadline,
                          v1::PullResponse* response, Done done) {
  pull_requests_.fetch_add(1, std::memory_order_relaxed);
  if (!refusal_.ok()) {
    done(refusal_);
    return 0;
  }
  const int worker = request.worker_index();
  // Same-host: windowed values go into the worker's pull window instead of the reply.
  // `hold` keeps the window alive while the pull waits for its version.
  absl::StatusOr<WindowedSlices> out =
      ResolveWindows(worker, request.incarnation(), request.dense(), /*push=*/false);
  if (!out.ok()) {
    done(LogRejected("Pull", worker, out.status()));
    return 0;
  }
  std::vector<char*> at = std::move(out->at);
  return store_.PullAsync(request, PullDeadline(deadline), response, std::move(at),
                          [this, worker, hold = std::move(out->hold), response,
                           done = std::move(done)](absl::Status s) mutable {
                            if (s.ok())
                              CountBytes(response->dense(), &bytes_sent_, &window_bytes_sent_);
                            hold.reset();  // the values are in the window: it may go now
                            done(LogRejected("Pull", worker, std::move(s)));
                          });
}

absl::Status Shard::Pull(const v1::PullRequest& request, absl::Time deadline,
                         v1::PullResponse* response) {
  return WaitForAnswer([&](Done done) { PullAsync(request, deadline, response, std::move(done)); });
}

absl::Status Shard::Push(const v1::PushRequest& request, v1::PushResponse* response,
                         const std::vector<const char*>* wire_values) {
  push_requests_.fetch_add(1, std::memory_order_relaxed);
  if (!refusal_.ok()) return refusal_;
  return LogRejected("Push", request.worker_index(), ApplyPush(request, response, wire_values));
}

absl::Status Shard::ApplyPush(const v1::PushRequest& request, v1::PushResponse* response,
                              const std::vector<const char*>* wire_values) {
  if (wire_values != nullptr && wire_values->size() != static_cast<size_t>(request.dense_size())) {
    return absl::InternalError("push: the gradients outside the message do not match its slices");
  }
  const int worker = request.worker_index();
  const bool has_id = request.id().incarnation() != 0;
  if (has_id) {
    // Another process holds this worker index: refused. A worker that never registered
    // (async tools) may push; its id still makes the push exactly-once.
    absl::Status s = registry_.CheckIncarnation(worker, request.id().incarnation());
    if (!s.ok() && !HasReason(s, kReasonUnknownWorker)) return s;
  }
  // A copy of a push applied before is answered before its window is looked for: a
  // shard restarted from its checkpoint knows the push (its ledger) but not the window,
  // and refusing it for the window would have the client send it again in-band.
  if (has_id && ledger_.Begin(worker, request.id()) == PushLedger::Claim::kDuplicate) {
    duplicate_pushes_.fetch_add(1, std::memory_order_relaxed);
    response->set_duplicate(true);
    return absl::OkStatus();
  }
  // Same-host: windowed gradients are read straight out of the worker's push window. (A
  // copy first would protect nothing: a process that can write the window can write
  // anywhere in this one; see docs/same_host.md.)
  const uint64_t incarnation = has_id ? request.id().incarnation() : 0;
  absl::StatusOr<WindowedSlices> in =
      ResolveWindows(worker, incarnation, request.dense(), /*push=*/true);
  if (!in.ok()) {
    if (has_id) ledger_.End(worker, request.id(), /*applied=*/false);
    return in.status();
  }
  CountBytes(request.dense(), &bytes_received_, &window_bytes_received_);
  std::vector<const char*> values(in->at.begin(), in->at.end());
  if (wire_values != nullptr) {
    values.resize(request.dense_size(), nullptr);
    int64_t wire_bytes = 0, float_bytes = 0;
    for (int i = 0; i < request.dense_size(); ++i) {
      if ((*wire_values)[i] == nullptr) continue;
      if (values[i] != nullptr) {
        if (has_id) ledger_.End(worker, request.id(), /*applied=*/false);
        return absl::InvalidArgumentError(absl::StrCat("push: table '", request.dense(i).table(),
                                                       "' slice at ", request.dense(i).offset(),
                                                       " carries both values and a window offset"));
      }
      values[i] = (*wire_values)[i];
      // The bytes as they came: 16-bit values were widened by the wire decoder.
      wire_bytes +=
          request.dense(i).length() * static_cast<int64_t>(ValueBytes(request.dense(i).format()));
      float_bytes += request.dense(i).length() * 4;
    }
    bytes_received_.fetch_add(wire_bytes, std::memory_order_relaxed);
    // The store counts only the bytes in the message against the request limit; these
    // count as the float32 the shard holds them in (a 16-bit push was widened to it).
    int64_t bytes = float_bytes;
    for (const v1::DenseSlice& d : request.dense()) bytes += d.values().size();
    for (const v1::SparseRows& r : request.sparse()) bytes += r.values().size();
    if (bytes > store_.max_request_bytes()) {
      if (has_id) ledger_.End(worker, request.id(), /*applied=*/false);
      return absl::ResourceExhaustedError(
          absl::StrCat("push of ", bytes, " bytes exceeds the limit of ",
                       store_.max_request_bytes(), " bytes per request; split it into chunks"));
    }
  }
  absl::Status s = store_.Push(request, response, values.empty() ? nullptr : &values);
  if (has_id) ledger_.End(worker, request.id(), s.ok());
  return s;
}

uint64_t Shard::PushPullAsync(const v1::PushPullRequest& request, absl::Time deadline,
                              v1::PushPullResponse* response, Done done,
                              const std::vector<const char*>* wire_values) {
  if (request.push().worker_index() != request.pull().worker_index()) {
    done(absl::InvalidArgumentError(
        absl::StrCat("push-pull: the push is from worker ", request.push().worker_index(),
                     " but the pull for worker ", request.pull().worker_index())));
    return 0;
  }
  // The call's status is the push's: a rejected push is not followed by a pull.
  if (absl::Status s = Push(request.push(), response->mutable_push(), wire_values); !s.ok()) {
    done(std::move(s));
    return 0;
  }
  return PullAsync(request.pull(), deadline, response->mutable_pull(),
                   [response, done = std::move(done)](absl::Status pulled) {
                     if (!pulled.ok()) {
                       response->clear_pull();
                       response->set_pull_code(static_cast<int>(pulled.code()));
                       response->set_pull_message(std::string(pulled.message()));
                     }
                     done(absl::OkStatus());
                   });
}

absl::Status Shard::PushPull(const v1::PushPullRequest& request, absl::Time deadline,
                             v1::PushPullResponse* response) {
  return WaitForAnswer(
      [&](Done done) { PushPullAsync(request, deadline, response, std::move(done)); });
}

void Shard::GetStatus(v1::GetStatusResponse* response) const {
  store_.FillStatus(response);
  response->set_uptime_ms(absl::ToInt64Milliseconds(options_.clock() - start_));
  for (v1::WorkerStatus& w : registry_.Snapshot()) *response->add_workers() = std::move(w);
  response->set_push_requests(push_requests_.load());
  response->set_pull_requests(pull_requests_.load());
  response->set_duplicate_pushes(duplicate_pushes_.load());
  response->set_window_bytes_held(windows_.bytes_held());
  response->set_waiting_pulls(store_.waiting_pulls());
  response->set_memory_used_bytes(budget_.used());
  response->set_memory_budget_bytes(budget_.limit());
  response->set_bytes_received(bytes_received_.load());
  response->set_bytes_sent(bytes_sent_.load());
  response->set_window_bytes_received(window_bytes_received_.load());
  response->set_window_bytes_sent(window_bytes_sent_.load());
  if (decorate_) decorate_(response);
}

int Shard::ExpireStale() {
  const std::vector<int> dropped = registry_.ExpireStale();
  if (!dropped.empty()) store_.OnMembershipChange();
  return static_cast<int>(dropped.size());
}

void Shard::Shutdown() { store_.Shutdown(); }

}  // namespace ps
