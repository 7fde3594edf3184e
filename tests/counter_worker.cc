// counter_worker: a worker for the exact-accounting tests (tests/exact_accounting_test.cc).
//
// It trains nothing: its "model" is the MLP's tables (fc0.w, fc0.b) initialised to zeros
// with SGD at learning rate 1, and every gradient it pushes is -1 everywhere, so each
// applied push (async, SSP) or step (sync: the mean of the workers' -1s) adds exactly 1
// to every element. It goes through the trainer's own StepExchange, membership and
// recovery code, so the faults the tests inject meet what ps_worker does. With
// --sparse_keys it also pushes -1 rows of those keys to an async sparse table.
//
// Every push is logged before it is sent ("sending N") and once it is acknowledged
// ("acked N at_ms T"), flushed at once, so a test that kills this process knows which
// push was in flight.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "common/placement.h"
#include "kernels/backend.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/model/mlp.h"
#include "worker/train/membership.h"
#include "worker/train/step_exchange.h"

ABSL_FLAG(std::string, servers, "", "Comma-separated host:port of every shard.");
ABSL_FLAG(int, worker_index, 0, "This worker's index.");
ABSL_FLAG(int, num_workers, 1, "Workers in the job (waited for at start).");
ABSL_FLAG(std::string, mode, "async", "sync, async or ssp.");
ABSL_FLAG(int, pushes, 100, "Pushes (steps) this process makes.");
ABSL_FLAG(int, sparse_keys, 0, "Also push rows of keys 0, 7, 14, ... to table 'rows' (async).");
ABSL_FLAG(absl::Duration, pause, absl::Milliseconds(2), "Pause between pushes.");
ABSL_FLAG(bool, same_host, true, "Use same-host transfer windows.");
ABSL_FLAG(bool, read, false,
          "Push nothing: print each shard's smallest and largest counter ('counters shard=S "
          "min=A max=B') and exit (for tests whose own process cannot reach the shards).");

namespace ps {
namespace {

void Line(const std::string& text) {
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

absl::Status CreateTables(PsClient* client, const Mlp& model, v1::ConsistencyMode mode) {
  v1::OptimizerSpec sgd;
  sgd.set_kind(v1::OptimizerSpec::SGD);
  sgd.set_learning_rate(1.0f);
  for (v1::TableSpec spec : model.TableSpecs(sgd, mode, 1)) {
    spec.mutable_initializer()->Clear();  // ZEROS
    if (mode == v1::SSP) spec.set_staleness_bound(3);
    if (absl::Status s = client->CreateTable(spec); !s.ok()) return s;
  }
  if (absl::GetFlag(FLAGS_sparse_keys) > 0) {
    v1::TableSpec rows;
    rows.set_name("rows");
    rows.set_kind(v1::SPARSE);
    rows.set_row_width(4);
    *rows.mutable_optimizer() = sgd;
    rows.set_consistency(v1::ASYNC);
    if (absl::Status s = client->CreateTable(rows); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// --read: every dense counter element, by the shard that holds it.
int ReadCounters(PsClient* client, const Mlp& model) {
  std::vector<float> mins(client->num_shards(), 1e30f), maxs(client->num_shards(), -1e30f);
  for (const DenseTensor& t : model.host_params()) {
    absl::StatusOr<int64_t> v = client->Pull({t}, 0, -1);
    if (!v.ok()) {
      LOG(ERROR) << "read " << t.table << ": " << v.status();
      return 1;
    }
    for (const ShardRange& r : PlaceDense(t.table, t.num_elements, client->num_shards())) {
      for (int64_t i = r.begin; i < r.end; ++i) {
        mins[r.shard] = std::min(mins[r.shard], t.data[i]);
        maxs[r.shard] = std::max(maxs[r.shard], t.data[i]);
      }
    }
  }
  for (int s = 0; s < client->num_shards(); ++s) {
    Line(absl::StrCat("counters shard=", s, " min=", mins[s], " max=", maxs[s]));
  }
  return 0;
}

int Run() {
  const int worker = absl::GetFlag(FLAGS_worker_index);
  v1::ConsistencyMode mode = v1::ASYNC;
  if (!v1::ConsistencyMode_Parse(absl::AsciiStrToUpper(absl::GetFlag(FLAGS_mode)), &mode)) {
    LOG(ERROR) << "unknown --mode " << absl::GetFlag(FLAGS_mode);
    return 2;
  }
  ClientOptions options;
  options.same_host = absl::GetFlag(FLAGS_same_host);
  std::unique_ptr<PsClient> client =
      NewGrpcPsClient(absl::StrSplit(absl::GetFlag(FLAGS_servers), ','), options);
  std::unique_ptr<kernels::ComputeBackend> backend = kernels::NewCpuBackend();
  absl::StatusOr<std::unique_ptr<Mlp>> model = Mlp::Create({256, 128}, 1, backend.get());
  if (!model.ok()) return 1;
  if (absl::GetFlag(FLAGS_read)) return ReadCounters(client.get(), **model);
  if (absl::Status s = CreateTables(client.get(), **model, mode); !s.ok()) {
    LOG(ERROR) << "create tables: " << s;
    return 1;
  }
  absl::StatusOr<std::unique_ptr<HeartbeatThread>> heartbeat = JoinJob(
      client.get(), worker, "cpu", absl::GetFlag(FLAGS_num_workers), absl::Seconds(60));
  if (!heartbeat.ok()) {
    LOG(ERROR) << "join: " << heartbeat.status();
    return 1;
  }
  StepExchangeOptions exchange_options;
  exchange_options.worker = worker;
  exchange_options.device = "cpu";
  exchange_options.mode = mode;
  StepExchange exchange(exchange_options, client.get(), model->get());
  std::vector<int64_t> keys;
  for (int k = 0; k < absl::GetFlag(FLAGS_sparse_keys); ++k) keys.push_back(7 * k);
  const std::vector<float> sparse_grad(keys.size() * 4, -1.0f);
  int64_t acked = 0, refused = 0, sparse_acked = 0;
  for (int i = 1; i <= absl::GetFlag(FLAGS_pushes); ++i) {
    if (absl::Status s = exchange.PrepareStep(false); !s.ok()) {
      LOG(ERROR) << "pull: " << s;
      return 1;
    }
    for (const DenseTensor& g : (*model)->host_grads()) std::fill_n(g.data, g.num_elements, -1.0f);
    Line(absl::StrCat("sending ", i));
    absl::StatusOr<StepExchange::PushReport> pushed = exchange.Push(i == absl::GetFlag(FLAGS_pushes));
    if (!pushed.ok()) {
      LOG(ERROR) << "push: " << pushed.status();
      return 1;
    }
    if (pushed->accepted) {
      Line(absl::StrCat("acked ", i, " at_ms ", NowMs()));
      ++acked;
    } else {
      ++refused;
    }
    if (!keys.empty()) {
      Line(absl::StrCat("sparse_sending ", i));
      if (absl::Status s = client->PushSparse("rows", keys, 4, sparse_grad.data(), 0, worker);
          !s.ok()) {
        LOG(ERROR) << "sparse push: " << s;
        return 1;
      }
      Line(absl::StrCat("sparse_acked ", i, " at_ms ", NowMs()));
      ++sparse_acked;
    }
    (*heartbeat)->SetProgress(acked, 1);
    absl::SleepFor(absl::GetFlag(FLAGS_pause));
  }
  LeaveJob(client.get(), worker, heartbeat->get(), /*send_last_figures=*/true);
  Line(absl::StrCat("counter_worker ", worker, " done acked=", acked, " refused=", refused,
                    " sparse_acked=", sparse_acked));
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  return ps::Run();
}
