// Fuzzes every request handler of the transport-free Shard (server/shard/shard.h): each
// input is a sequence of up to 64 calls (CreateTable, Register, Heartbeat, Leave, Push,
// Pull, PushPull, OpenWindow, GetStatus, ExpireStale, a clock step, Assign, ListRows)
// whose fields come from the input's bytes (common/fuzz_input_testing.h), against one shard with a 16 MiB memory
// budget and a clock the input moves. A call may be refused, but only with a code a
// client can act on; the shard must not crash, leak, trip a sanitizer, answer UNKNOWN or
// INTERNAL, hold more memory than its budget, leave a pull parked past its deadline or serve
// a value that is inf or NaN.
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "common/fuzz_input_testing.h"
#include "proto/v1/ps.pb.h"
#include "server/shard/shard.h"

namespace ps {
namespace {

constexpr int64_t kBudget = 16 << 20;

class Session {
 public:
  explicit Session(FuzzInput* in) : in_(*in), shard_(Options(in)) {}

  void Run() {
    for (int call = 0; call < 64 && !in_.done(); ++call) {
      switch (in_.Byte() % 13) {
        case 0: Check(CreateTable()); break;
        case 1: Check(Register()); break;
        case 2: Check(Heartbeat()); break;
        case 3: Check(Leave()); break;
        case 4: Check(Push()); break;
        case 5: Check(Pull()); break;
        case 6: Check(PushPull()); break;
        case 7: Check(OpenWindow()); break;
        case 8: CheckStatus(); break;
        case 9: shard_.ExpireStale(); break;
        case 10: now_ += absl::Milliseconds(in_.Int(0, 20000)); break;
        case 11: Check(Assign()); break;
        case 12: Check(ListRows()); break;
      }
    }
    CheckStatus();
  }

 private:
  ShardOptions Options(FuzzInput* in) {
    ShardOptions options;
    options.store.num_shards = static_cast<int>(in->Int(1, 3));
    options.store.shard_index = static_cast<int>(in->Int(0, options.store.num_shards - 1));
    options.store.max_request_bytes = 1 << 20;
    options.store.max_sparse_keys = 1024;
    options.store.max_tables = 8;
    options.heartbeat_timeout = absl::Seconds(10);
    options.memory_budget_bytes = kBudget;
    options.clock = [this] { return now_; };
    return options;
  }

  std::string Name() {
    static const char* const kNames[] = {"w", "b", "emb", "fc0.w"};
    const uint8_t pick = in_.Byte();
    if (pick < 240) return kNames[pick % 4];
    return in_.Bytes(40);  // anything, control characters included
  }
  int Worker() { return static_cast<int>(in_.Int(-1, 3)); }
  uint64_t Incarnation() { return static_cast<uint64_t>(in_.Int(0, 3)); }

  absl::Status CreateTable() {
    v1::CreateTableRequest request;
    v1::TableSpec* spec = request.mutable_spec();
    spec->set_name(Name());
    spec->set_kind(static_cast<v1::TableKind>(in_.Int(0, 3)));
    for (int64_t d = in_.Int(0, 3); d > 0; --d) spec->add_shape(in_.Int(-1, 300));
    spec->set_row_width(in_.Int(-1, 16));
    spec->set_consistency(static_cast<v1::ConsistencyMode>(in_.Int(0, 4)));
    spec->set_staleness_bound(static_cast<int32_t>(in_.Int(-1, 3)));
    spec->set_backup_workers(static_cast<int32_t>(in_.Int(-1, 2)));
    v1::OptimizerSpec* opt = spec->mutable_optimizer();
    opt->set_kind(static_cast<v1::OptimizerSpec::Kind>(in_.Int(0, 6)));
    opt->set_learning_rate(in_.Bool() ? 0.1f : in_.Float());
    if (in_.Bool()) opt->set_momentum(in_.Float());
    if (in_.Bool()) opt->set_beta1(in_.Float());
    if (in_.Bool()) opt->set_epsilon(in_.Float());
    if (in_.Bool()) opt->set_weight_decay(in_.Float());
    if (in_.Bool()) opt->set_lr_decay(in_.Float());
    v1::Initializer* init = spec->mutable_initializer();
    init->set_kind(static_cast<v1::Initializer::Kind>(in_.Int(0, 4)));
    init->set_value(in_.Float());
    init->set_stddev(in_.Float());
    v1::CreateTableResponse response;
    return shard_.CreateTable(request, &response);
  }

  absl::Status Register() {
    v1::RegisterWorkerRequest request;
    request.set_worker_index(Worker());
    request.set_incarnation(Incarnation());
    request.set_host(in_.Bool() ? "host-a" : in_.Bytes(300));
    request.set_clock(in_.Int(-1, 10));
    v1::RegisterWorkerResponse response;
    return shard_.Register(request, &response);
  }

  absl::Status Heartbeat() {
    v1::HeartbeatRequest request;
    request.set_worker_index(Worker());
    request.set_incarnation(Incarnation());
    v1::HeartbeatResponse response;
    return shard_.Heartbeat(request, &response);
  }

  absl::Status Leave() {
    v1::LeaveWorkerRequest request;
    request.set_worker_index(Worker());
    request.set_incarnation(Incarnation());
    return shard_.Leave(request);
  }

  absl::Status OpenWindow() {
    v1::OpenWindowRequest request;
    request.set_worker_index(Worker());
    request.set_incarnation(Incarnation());
    request.set_bytes(in_.Int(-1, 4 << 20));
    v1::OpenWindowResponse response;
    return shard_.OpenWindow(request, &response);
  }

  absl::Status Assign() {
    v1::AssignRequest request;
    for (int64_t n = in_.Int(0, 3); n > 0; --n) AddDense(request.add_dense(), true);
    for (int64_t n = in_.Int(0, 2); n > 0; --n) AddSparse(request.add_sparse(), true);
    return shard_.Assign(request);
  }

  absl::Status ListRows() {
    v1::ListRowsRequest request;
    request.set_table(Name());
    request.set_start(in_.Int(-2, 20));
    request.set_max_rows(in_.Int(-2, 20));
    v1::ListRowsResponse response;
    absl::Status s = shard_.ListRows(request, &response);
    if (s.ok() && (response.next() > response.total_rows() ||
                   static_cast<int64_t>(response.rows().keys_size()) > response.total_rows())) {
      std::fprintf(stderr, "ListRows: next %lld, %d rows of %lld\n",
                   static_cast<long long>(response.next()), response.rows().keys_size(),
                   static_cast<long long>(response.total_rows()));
      std::abort();
    }
    return s;
  }

  void AddDense(v1::DenseSlice* d, bool values) {
    d->set_table(Name());
    d->set_offset(in_.Int(-1, 400));
    d->set_length(in_.Int(-1, 400));
    if (in_.Byte() < 32) d->set_window_offset(in_.Int(-4, 1 << 20));
    if (!values || d->has_window_offset()) return;
    const int64_t floats = in_.Byte() < 16 ? in_.Int(0, 8) : std::max<int64_t>(0, d->length());
    std::string bytes(static_cast<size_t>(floats) * 4, '\0');
    for (int64_t i = 0; i < floats; ++i) {
      const float f = in_.Float();
      std::memcpy(&bytes[i * 4], &f, 4);
    }
    d->set_values(std::move(bytes));
  }

  void AddSparse(v1::SparseRows* s, bool values) {
    s->set_table(Name());
    for (int64_t k = in_.Int(0, 8); k > 0; --k) s->add_keys(in_.Int(-3, 1000));
    if (!values) return;
    const int64_t floats = s->keys_size() * in_.Int(0, 16);
    std::string bytes(static_cast<size_t>(floats) * 4, '\0');
    for (int64_t i = 0; i < floats; ++i) {
      const float f = in_.Float();
      std::memcpy(&bytes[i * 4], &f, 4);
    }
    s->set_values(std::move(bytes));
  }

  void FillPush(v1::PushRequest* request) {
    request->set_worker_index(Worker());
    request->set_step(in_.Int(-1, 6));
    request->set_clock(in_.Int(-1, 8));
    for (int64_t n = in_.Int(0, 3); n > 0; --n) AddDense(request->add_dense(), true);
    for (int64_t n = in_.Int(0, 2); n > 0; --n) AddSparse(request->add_sparse(), true);
    if (in_.Bool()) {
      request->mutable_id()->set_incarnation(Incarnation());
      request->mutable_id()->set_sequence(in_.Int(-1, 6));
      request->mutable_id()->set_part(static_cast<int32_t>(in_.Int(-1, 3)));
    }
  }

  void FillPull(v1::PullRequest* request) {
    request->set_worker_index(Worker());
    request->set_incarnation(Incarnation());
    request->set_min_version(in_.Int(-1, 6));
    request->set_clock(in_.Int(-1, 8));
    for (int64_t n = in_.Int(0, 3); n > 0; --n) AddDense(request->add_dense(), false);
    for (int64_t n = in_.Int(0, 2); n > 0; --n) AddSparse(request->add_sparse(), false);
  }

  absl::Status Push() {
    v1::PushRequest request;
    FillPush(&request);
    v1::PushResponse response;
    return shard_.Push(request, &response);
  }

  // Pulls never wait here: a deadline already passed answers one that is not ready with
  // DEADLINE_EXCEEDED at once.
  absl::Status Pull() {
    v1::PullRequest request;
    FillPull(&request);
    v1::PullResponse response;
    absl::Status s = shard_.Pull(request, absl::InfinitePast(), &response);
    if (s.ok()) CheckFinite(response);
    return s;
  }

  // No update may have left a value inf or NaN (numeric safety: ParameterStore refuses it).
  static void CheckFinite(const v1::PullResponse& response) {
    auto check = [](const std::string& bytes, const std::string& table) {
      for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
        float v;
        std::memcpy(&v, bytes.data() + i, 4);
        if (!std::isfinite(v)) {
          std::fprintf(stderr, "table '%s' serves a non-finite value at %zu\n", table.c_str(), i / 4);
          std::abort();
        }
      }
    };
    for (const v1::DenseSlice& d : response.dense()) check(d.values(), d.table());
    for (const v1::SparseRows& r : response.sparse()) check(r.values(), r.table());
  }

  absl::Status PushPull() {
    v1::PushPullRequest request;
    FillPush(request.mutable_push());
    FillPull(request.mutable_pull());
    v1::PushPullResponse response;
    const absl::Status pushed = shard_.PushPull(request, absl::InfinitePast(), &response);
    if (pushed.ok()) Check(absl::Status(static_cast<absl::StatusCode>(response.pull_code()), ""));
    return pushed;
  }

  void CheckStatus() {
    v1::GetStatusResponse status;
    shard_.GetStatus(&status);
    if (status.memory_used_bytes() > kBudget || status.waiting_pulls() != 0) {
      std::fprintf(stderr, "memory %lld of %lld, %lld pulls waiting\n",
                   static_cast<long long>(status.memory_used_bytes()),
                   static_cast<long long>(kBudget),
                   static_cast<long long>(status.waiting_pulls()));
      std::abort();
    }
  }

  static void Check(const absl::Status& status) {
    switch (status.code()) {
      case absl::StatusCode::kUnknown:
      case absl::StatusCode::kInternal:
      case absl::StatusCode::kDataLoss:
      case absl::StatusCode::kUnimplemented:
        std::fprintf(stderr, "unexpected status: %s\n", status.ToString().c_str());
        std::abort();
      default:
        break;
    }
  }

  FuzzInput& in_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
  Shard shard_;
};

}  // namespace
}  // namespace ps

// Refusals are logged as warnings; a fuzzer makes millions of them.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 3;  // FATAL only
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ps::FuzzInput in(data, size);
  ps::Session session(&in);
  session.Run();
  return 0;
}
