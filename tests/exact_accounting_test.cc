// Exact accounting under faults: real ps_server daemons on loopback, counter_worker
// processes (tests/counter_worker.cc) whose every applied push (async) or step (sync)
// adds exactly 1 to every element, and faults injected while they push: SIGTERM and
// restart of each shard (shard 0 included) on the same port, SIGKILL of a worker and of a
// shard, SIGSTOP of shard 0 for 30 s. The workers log each push before sending it and
// once acknowledged; after the faults the test compares the acknowledged pushes with the
// values every shard holds, element by element.
#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/placement.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "server/checkpoint/checkpoint_file.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"

namespace ps {
namespace testing {
namespace {

// The counter tables (counter_worker's MLP {256, 128}): fc0.w is split over both shards.
const std::vector<std::pair<std::string, int64_t>> kTables = {{"fc0.w", 256 * 128},
                                                              {"fc0.b", 128}};
constexpr int kSparseKeys = 64;

// What one worker's log says: the time of each acknowledged push, and pushes sent but
// never acknowledged (in flight when the process was killed).
struct WorkerCount {
  std::vector<int64_t> acked_ms;
  int64_t sparse_acked = 0;
  int64_t unacked = 0;         // dense pushes sent and never acknowledged
  int64_t sparse_unacked = 0;  // the same for sparse pushes
  int64_t discarded = 0;       // "gradient discarded" lines (a refused sync step)
};

WorkerCount CountLog(const std::string& log) {
  WorkerCount c;
  bool dense_open = false, sparse_open = false;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    if (f.size() == 2 && f[0] == "sending") {
      if (dense_open) ++c.unacked;  // an earlier incarnation died with it in flight
      dense_open = true;
    } else if (f.size() == 4 && f[0] == "acked") {
      int64_t ms = 0;
      EXPECT_TRUE(absl::SimpleAtoi(f[3], &ms)) << line;
      c.acked_ms.push_back(ms);
      dense_open = false;
    } else if (f.size() == 2 && f[0] == "sparse_sending") {
      if (sparse_open) ++c.sparse_unacked;
      sparse_open = true;
    } else if (f.size() == 4 && f[0] == "sparse_acked") {
      ++c.sparse_acked;
      sparse_open = false;
    } else if (line.find("gradient discarded") != absl::string_view::npos) {
      ++c.discarded;
    }
  }
  c.unacked += dense_open;
  c.sparse_unacked += sparse_open;
  return c;
}

// The smallest and largest value each shard holds over every counter element.
struct Range {
  double min = 1e300, max = -1e300;
  void Add(double v) {
    min = std::min(min, v);
    max = std::max(max, v);
  }
};
struct Counters {
  std::vector<Range> dense;   // per shard
  std::vector<Range> sparse;  // per shard
};

Counters ReadCounters(const std::vector<std::string>& addresses, bool sparse) {
  Counters out;
  const int n = static_cast<int>(addresses.size());
  out.dense.resize(n);
  out.sparse.resize(n);
  std::unique_ptr<PsClient> client = NewGrpcPsClient(addresses);
  for (const auto& [table, size] : kTables) {
    std::vector<float> values(size);
    absl::StatusOr<int64_t> v = client->Pull({{table, size, values.data()}}, 0, -1);
    EXPECT_TRUE(v.ok()) << v.status();
    if (!v.ok()) return out;
    for (const ShardRange& r : PlaceDense(table, size, n)) {
      for (int64_t i = r.begin; i < r.end; ++i) out.dense[r.shard].Add(values[i]);
    }
  }
  if (!sparse) return out;
  std::vector<int64_t> keys;
  for (int k = 0; k < kSparseKeys; ++k) keys.push_back(7 * k);
  std::vector<float> rows(keys.size() * 4);
  absl::StatusOr<int64_t> v = client->PullSparse("rows", keys, 4, rows.data(), -1);
  EXPECT_TRUE(v.ok()) << v.status();
  for (size_t k = 0; k < keys.size(); ++k) {
    for (int j = 0; j < 4; ++j) out.sparse[ShardForKey(keys[k], n)].Add(rows[k * 4 + j]);
  }
  return out;
}

// Waits until the worker's log holds at least `n` acknowledged pushes.
bool WaitForAcks(const Process& worker, int64_t n, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (static_cast<int64_t>(CountLog(worker.Log()).acked_ms.size()) >= n) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

class ExactAccountingTest : public ::testing::Test {
 protected:
  void StartServers(const std::string& name, const std::vector<std::string>& flags,
                    bool checkpoints = true) {
    dir_ = TempDir(name);
    flags_ = flags;
    if (checkpoints) flags_.push_back("--checkpoint_dir=" + dir_ + "/ckpt");
    flags_.push_back("--heartbeat_timeout=10s");
    ASSERT_TRUE(servers_.Start(2, dir_, flags_).ok());
  }

  Process StartWorker(int w, const std::string& mode, int pushes, bool sparse) {
    absl::StatusOr<Process> p = Process::Start(
        {RunfilePath("tests/counter_worker"), "--servers=" + servers_.servers_flag(),
         absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=" + mode,
         absl::StrCat("--pushes=", pushes), absl::StrCat("--sparse_keys=", sparse ? kSparseKeys : 0)},
        absl::StrCat(dir_, "/worker-", w, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : Process();
  }

  // SIGTERM, then the same shard again on its port. Returns how long the stop took.
  absl::Duration StopAndRestart(int shard) {
    const absl::Time start = absl::Now();
    servers_.shard(shard).Signal(SIGTERM);
    absl::StatusOr<int> code = servers_.shard(shard).Wait(absl::Seconds(30));
    const absl::Duration took = absl::Now() - start;
    EXPECT_TRUE(code.ok()) << code.status();
    if (code.ok()) {
      EXPECT_EQ(*code, 0) << servers_.shard(shard).Log();
    }
    EXPECT_TRUE(servers_.Restart(shard, flags_).ok());
    return took;
  }

  void ExpectWorkersFinish(std::vector<Process>& workers) {
    for (size_t w = 0; w < workers.size(); ++w) {
      absl::StatusOr<int> code = workers[w].Wait(absl::Minutes(3));
      ASSERT_TRUE(code.ok()) << code.status() << "\n" << workers[w].Log();
      EXPECT_EQ(*code, 0) << workers[w].Log();
    }
  }

  // Every checkpoint file shard `s` wrote.
  std::vector<std::string> CheckpointFiles(int s) const {
    std::vector<std::string> out;
    const std::string dir = dir_ + "/ckpt";
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name.rfind(absl::StrCat("shard-", s, "-"), 0) == 0) out.push_back(dir + "/" + name);
      }
      closedir(d);
    }
    return out;
  }

  std::string dir_;
  std::vector<std::string> flags_;
  ServerCluster servers_;
};

// Async, dense and sparse: a SIGTERM restart of shard 0 and then of shard 1 loses no
// acknowledged push and applies none twice; the workers carry on through both.
TEST_F(ExactAccountingTest, AsyncSigtermOfEachShardKeepsEveryAcknowledgedPush) {
  StartServers("async-sigterm", {});
  const int pushes = 1500;
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "async", pushes, true));
  ASSERT_TRUE(WaitForAcks(workers[0], 300, absl::Minutes(1))) << workers[0].Log();
  const absl::Duration stop0 = StopAndRestart(0);
  ASSERT_TRUE(WaitForAcks(workers[0], 800, absl::Minutes(1))) << workers[0].Log();
  const absl::Duration stop1 = StopAndRestart(1);
  EXPECT_LT(stop0, absl::Seconds(10));
  EXPECT_LT(stop1, absl::Seconds(10));
  ExpectWorkersFinish(workers);
  int64_t acked = 0, sparse_acked = 0;
  for (Process& w : workers) {
    const WorkerCount c = CountLog(w.Log());
    EXPECT_EQ(c.unacked, 0);
    acked += c.acked_ms.size();
    sparse_acked += c.sparse_acked;
  }
  EXPECT_EQ(acked, 2 * pushes);  // every push acknowledged: none dropped on the way
  EXPECT_EQ(sparse_acked, 2 * pushes);
  const Counters counters = ReadCounters(servers_.addresses(), true);
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(counters.dense[s].min, acked) << "shard " << s;
    EXPECT_EQ(counters.dense[s].max, acked) << "shard " << s;
    EXPECT_EQ(counters.sparse[s].min, sparse_acked) << "shard " << s;
    EXPECT_EQ(counters.sparse[s].max, sparse_acked) << "shard " << s;
  }
}

// Sync: a SIGTERM in the middle of a step keeps the gradients the shard acknowledged
// for it, so every worker's every push counts in exactly one step: each shard ends at
// version `pushes` with every element equal to it, and no gradient was discarded.
TEST_F(ExactAccountingTest, SyncSigtermOfEachShardKeepsEveryAcknowledgedStep) {
  StartServers("sync-sigterm", {});
  const int pushes = 600;
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "sync", pushes, false));
  ASSERT_TRUE(WaitForAcks(workers[0], 150, absl::Minutes(1))) << workers[0].Log();
  const absl::Duration stop0 = StopAndRestart(0);
  ASSERT_TRUE(WaitForAcks(workers[0], 350, absl::Minutes(1))) << workers[0].Log();
  const absl::Duration stop1 = StopAndRestart(1);
  EXPECT_LT(stop0, absl::Seconds(10));
  EXPECT_LT(stop1, absl::Seconds(10));
  ExpectWorkersFinish(workers);
  for (Process& w : workers) {
    const WorkerCount c = CountLog(w.Log());
    EXPECT_EQ(static_cast<int64_t>(c.acked_ms.size()), pushes) << w.Log();
    EXPECT_EQ(c.discarded, 0) << w.Log();
  }
  const Counters counters = ReadCounters(servers_.addresses(), false);
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(counters.dense[s].min, pushes) << "shard " << s;
    EXPECT_EQ(counters.dense[s].max, pushes) << "shard " << s;
  }
}

// A worker SIGKILLed (or SIGTERMed) mid-push and started again (a new process for its
// index): every acknowledged push is there, and the one in flight at the signal is there
// at most once.
class WorkerSignalTest : public ExactAccountingTest,
                         public ::testing::WithParamInterface<int> {};

TEST_P(WorkerSignalTest, AsyncStopOfAWorkerLosesNoAcknowledgedPush) {
  StartServers(absl::StrCat("async-stop-worker-", GetParam()), {});
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "async", 1200, true));
  ASSERT_TRUE(WaitForAcks(workers[1], 400, absl::Minutes(1))) << workers[1].Log();
  workers[1].Signal(GetParam());
  ASSERT_TRUE(workers[1].Wait(absl::Seconds(10)).ok());
  workers[1] = StartWorker(1, "async", 300, true);
  ExpectWorkersFinish(workers);
  int64_t acked = 0, unacked = 0, sparse_acked = 0, sparse_unacked = 0;
  for (Process& w : workers) {
    const WorkerCount c = CountLog(w.Log());
    acked += c.acked_ms.size();
    unacked += c.unacked;
    sparse_acked += c.sparse_acked;
    sparse_unacked += c.sparse_unacked;
  }
  EXPECT_LE(unacked + sparse_unacked, 1);  // one process was killed, mid-way through one push
  const Counters counters = ReadCounters(servers_.addresses(), true);
  for (int s = 0; s < 2; ++s) {
    EXPECT_GE(counters.dense[s].min, acked) << "shard " << s;
    EXPECT_LE(counters.dense[s].max, acked + unacked) << "shard " << s;
    EXPECT_EQ(counters.dense[s].min, counters.dense[s].max) << "shard " << s;
    EXPECT_GE(counters.sparse[s].min, sparse_acked) << "shard " << s;
    EXPECT_LE(counters.sparse[s].max, sparse_acked + sparse_unacked) << "shard " << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Signals, WorkerSignalTest, ::testing::Values(SIGKILL, SIGTERM),
                         [](const ::testing::TestParamInfo<int>& p) {
                           return p.param == SIGKILL ? "Sigkill" : "Sigterm";
                         });

// A shard SIGKILLed and started again restores its newest checkpoint (every second):
// the other shard holds every acknowledged push, the killed one loses at most the pushes
// acknowledged in the interval and the write before the kill (docs/checkpoints.md), and
// none is applied twice.
TEST_F(ExactAccountingTest, AsyncSigkillOfAShardLosesAtMostOneCheckpointInterval) {
  StartServers("async-kill-shard", {"--checkpoint_interval=1s"});
  const int pushes = 1500;
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "async", pushes, false));
  ASSERT_TRUE(WaitForAcks(workers[0], 600, absl::Minutes(1))) << workers[0].Log();
  servers_.shard(1).Signal(SIGKILL);
  const int64_t killed_ms = absl::ToUnixMillis(absl::Now());
  ASSERT_TRUE(servers_.shard(1).Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(servers_.Restart(1, flags_).ok());
  ExpectWorkersFinish(workers);
  int64_t acked = 0, recent = 0;
  for (Process& w : workers) {
    const WorkerCount c = CountLog(w.Log());
    acked += c.acked_ms.size();
    // Acknowledged within the interval, plus three seconds for a write that a loaded
    // machine makes slow, before the kill.
    for (int64_t ms : c.acked_ms) recent += ms > killed_ms - 4000 && ms <= killed_ms + 50;
  }
  EXPECT_EQ(acked, 2 * pushes);
  const Counters counters = ReadCounters(servers_.addresses(), false);
  EXPECT_EQ(counters.dense[0].min, acked);
  EXPECT_EQ(counters.dense[0].max, acked);
  EXPECT_EQ(counters.dense[1].min, counters.dense[1].max);
  const int64_t lost = acked - static_cast<int64_t>(counters.dense[1].min);
  EXPECT_GE(lost, 0);
  EXPECT_LE(lost, recent) << "lost " << lost << " of " << acked;
  LOG(INFO) << "SIGKILL of shard 1 lost " << lost << " of " << acked << " pushes (" << recent
            << " acknowledged in the 4 s before the kill)";
}

// Sync, shard 1 SIGKILLed and started again (checkpoints every 20 steps): it comes back
// at its newest checkpoint's version, the workers rejoin there and finish, and on every
// shard every element equals the shard's version (each step applied once, whole); the
// killed shard is behind the other by at most the checkpoint period and the steps that
// ran while its last file was written.
TEST_F(ExactAccountingTest, SyncSigkillOfAShardLosesAtMostOneCheckpointPeriod) {
  StartServers("sync-kill-shard", {"--checkpoint_every_steps=20"});
  const int pushes = 400;
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "sync", pushes, false));
  ASSERT_TRUE(WaitForAcks(workers[0], 150, absl::Minutes(1))) << workers[0].Log();
  servers_.shard(1).Signal(SIGKILL);
  ASSERT_TRUE(servers_.shard(1).Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(servers_.Restart(1, flags_).ok());
  ExpectWorkersFinish(workers);
  std::unique_ptr<PsClient> client = NewGrpcPsClient(servers_.addresses());
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  std::vector<int64_t> version(2, -1);
  for (int s = 0; s < 2; ++s) {
    for (const v1::TableStatus& t : (*status)[s].tables()) {
      if (t.elements_on_shard() == 0) continue;
      if (version[s] < 0) version[s] = t.version();
      EXPECT_EQ(t.version(), version[s]) << "shard " << s << " table " << t.spec().name();
    }
  }
  const Counters counters = ReadCounters(servers_.addresses(), false);
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(counters.dense[s].min, version[s]) << "shard " << s;
    EXPECT_EQ(counters.dense[s].max, version[s]) << "shard " << s;
  }
  const int64_t lost = version[0] - version[1];
  EXPECT_GE(lost, 0);
  EXPECT_LE(lost, 20 + 10) << "shard 0 at " << version[0] << ", shard 1 at " << version[1];
  LOG(INFO) << "SIGKILL of sync shard 1 lost " << lost << " steps (shard 0 at " << version[0]
            << ")";
}

// Sync with --checkpoint_interval: the interval checkpoints hold the sync tables at the
// same version on every shard (shard 0 has them all written at the newest sync version),
// where each shard used to take its own current version.
TEST_F(ExactAccountingTest, SyncIntervalCheckpointsAreAtOneVersionOnEveryShard) {
  StartServers("sync-interval", {"--checkpoint_interval=300ms", "--checkpoint_keep=1000"});
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "sync", 500, false));
  ExpectWorkersFinish(workers);
  // Stopped, the shards finish what the interval had started and write their last files.
  for (int s = 0; s < 2; ++s) servers_.shard(s).Signal(SIGTERM);
  for (int s = 0; s < 2; ++s) ASSERT_TRUE(servers_.shard(s).Wait(absl::Seconds(20)).ok());
  std::vector<std::vector<int64_t>> versions(2);
  for (int s = 0; s < 2; ++s) {
    for (const std::string& path : CheckpointFiles(s)) {
      absl::StatusOr<v1::ShardCheckpoint> file = ReadCheckpointFile(path);
      ASSERT_TRUE(file.ok()) << file.status();
      int64_t v = -1;
      for (const v1::TableCheckpoint& t : file->tables()) {
        if (t.params().empty()) continue;  // none of the table is on this shard
        if (v < 0) v = t.version();
        EXPECT_EQ(t.version(), v) << path << " " << t.spec().name();
      }
      if (v >= 0) versions[s].push_back(v);
    }
    std::sort(versions[s].begin(), versions[s].end());
  }
  EXPECT_GE(versions[0].size(), 2u) << "fewer interval checkpoints than the run should give";
  // A version on one shard only must be a round the log says failed (a shard already past
  // it on a loaded machine) or a shard's own fallback file: none otherwise.
  std::vector<int64_t> one_side;
  std::set_symmetric_difference(versions[0].begin(), versions[0].end(), versions[1].begin(),
                                versions[1].end(), std::back_inserter(one_side));
  auto count = [](const std::string& log, const std::string& what) {
    int n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  const int explained =
      count(servers_.shard(0).Log(), "interval checkpoint of every shard failed") +
      count(servers_.shard(0).Log(), "writing this shard's own") +
      count(servers_.shard(1).Log(), "writing this shard's own");
  EXPECT_LE(static_cast<int>(one_side.size()), explained)
      << "versions on one shard only: " << one_side.size();
}

// Shard 0 stopped (SIGSTOP) for 30 s: shard 1 keeps both workers live throughout, the
// workers wait for shard 0 and finish once it resumes, and every push counts exactly.
TEST_F(ExactAccountingTest, AsyncShardZeroStoppedFor30sKeepsTheOthersWorkers) {
  StartServers("async-stop-shard0", {});
  const int pushes = 800;
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "async", pushes, false));
  ASSERT_TRUE(WaitForAcks(workers[0], 200, absl::Minutes(1))) << workers[0].Log();
  servers_.shard(0).Signal(SIGSTOP);
  std::unique_ptr<PsClient> shard1 = NewGrpcPsClient({servers_.addresses()[1]});
  for (int i = 0; i < 6; ++i) {
    absl::SleepFor(absl::Seconds(5));
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = shard1->GetStatus();
    ASSERT_TRUE(status.ok()) << status.status();
    int live = 0;
    for (const v1::WorkerStatus& w : (*status)[0].workers()) live += w.live();
    EXPECT_EQ(live, 2) << "after " << 5 * (i + 1) << " s";
  }
  servers_.shard(0).Signal(SIGCONT);
  ExpectWorkersFinish(workers);
  EXPECT_EQ(servers_.shard(1).Log().find("dropped"), std::string::npos) << servers_.shard(1).Log();
  int64_t acked = 0;
  for (Process& w : workers) acked += CountLog(w.Log()).acked_ms.size();
  EXPECT_EQ(acked, 2 * pushes);
  const Counters counters = ReadCounters(servers_.addresses(), false);
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(counters.dense[s].min, acked) << "shard " << s;
    EXPECT_EQ(counters.dense[s].max, acked) << "shard " << s;
  }
}

// A shard SIGKILLed and started again without checkpoints comes back empty while the
// other holds the job's progress: it refuses to serve (STATE_LOST) instead of letting the
// workers re-create its tables from scratch, and the workers stop with that error, as does
// a worker started afresh (which used to re-create the tables, skip its completed steps
// and exit 0 with a half-reset model).
TEST_F(ExactAccountingTest, AShardRestartedWithoutItsStateIsRefusedAndTheWorkersStop) {
  StartServers("empty-restart", {}, /*checkpoints=*/false);
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) workers.push_back(StartWorker(w, "async", 100000, false));
  ASSERT_TRUE(WaitForAcks(workers[0], 200, absl::Minutes(1))) << workers[0].Log();
  servers_.shard(1).Signal(SIGKILL);
  ASSERT_TRUE(servers_.shard(1).Wait(absl::Seconds(10)).ok());
  ASSERT_TRUE(servers_.Restart(1, flags_).ok());
  const std::string refused = "shard 1 started without its state (no --checkpoint_dir)";
  for (Process& w : workers) {
    absl::StatusOr<int> code = w.Wait(absl::Minutes(2));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << w.Log();
    EXPECT_EQ(*code, 1) << w.Log();
    EXPECT_NE(w.Log().find(refused), std::string::npos) << w.Log();
  }
  EXPECT_NE(servers_.shard(1).Log().find(refused), std::string::npos);
  Process fresh = StartWorker(0, "async", 10, false);
  absl::StatusOr<int> code = fresh.Wait(absl::Minutes(1));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1) << fresh.Log();
  EXPECT_NE(fresh.Log().find(refused), std::string::npos) << fresh.Log();
}

}  // namespace
}  // namespace testing
}  // namespace ps
