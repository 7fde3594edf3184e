// The model's file (docs/model_files.md) with real daemons: 2 shards and 2 workers train
// the demo's MLP for an epoch; `psctl export` writes the model; numpy and a PyTorch
// nn.Module (deploy/local/eval_model.py) measure the accuracy the workers reported; fresh
// shards started from the file (ps_worker --init_from)
// (and one numpy wrote itself) hold the same model; the file is not applied to trained
// tables, and a file of another shape is refused by name.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

constexpr char kPython[] = "/usr/bin/python3";  // Debian's, with python3-numpy and -torch

// Runs argv to its end (bounded), returning its exit code and output in `log`.
int RunToEnd(const std::vector<std::string>& argv, const std::string& log_path, std::string* log,
             absl::Duration timeout = absl::Minutes(2)) {
  absl::StatusOr<Process> p = Process::Start(argv, log_path);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return -1;
  absl::StatusOr<int> code = p->Wait(timeout);
  EXPECT_TRUE(code.ok()) << argv[0] << ": " << code.status();
  *log = p->Log();
  return code.ok() ? *code : -1;
}

std::vector<std::string> Worker(const ServerCluster& servers, int index, int workers) {
  return {RunfilePath("worker/ps_worker"),
          "--servers=" + servers.servers_flag(),
          absl::StrCat("--worker_index=", index),
          absl::StrCat("--num_workers=", workers),
          "--mode=sync",
          "--device=cpu",
          "--epochs=1",
          "--log_every=200",
          "--optimizer=momentum",
          "--learning_rate=0.02"};
}

TEST(ExportMultiprocessTest, TheExportedModelHasTheAccuracyTheWorkersReported) {
  const std::string dir = TempDir("export");
  ServerCluster servers;
  ASSERT_TRUE(servers.Start(2, dir).ok());
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<Process> p =
        Process::Start(Worker(servers, w, 2), absl::StrCat(dir, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  for (Process& w : workers) {
    absl::StatusOr<int> code = w.Wait(absl::Minutes(4));
    ASSERT_TRUE(code.ok()) << code.status();
    ASSERT_EQ(*code, 0) << w.Log();
  }
  const double trained = DoneField(workers[0].Log(), "test_accuracy");
  EXPECT_GT(trained, 0.8) << workers[0].Log();

  const std::string model = dir + "/model.npz";
  std::string log;
  ASSERT_EQ(RunToEnd({RunfilePath("psctl/psctl"), "--servers=" + servers.addresses()[1], "export",
                      "--out=" + model},
                     dir + "/export.log", &log),
            0)
      << log;
  EXPECT_NE(log.find("wrote " + model + ": 6 tables, 535818 values"), std::string::npos) << log;
  EXPECT_NE(log.find("fc0.w: 401408 values, version 469"), std::string::npos) << log;

  ASSERT_EQ(RunToEnd({kPython, RunfilePath("deploy/local/eval_model.py"), model}, dir + "/eval.log",
                     &log),
            0)
      << log;
  // The same float32 model and data: the same predictions, up to a tie or two that the
  // libraries' summation order may break differently.
  EXPECT_NEAR(NumberField(log, "numpy ", "test_accuracy"), trained, 2e-4) << log;
  EXPECT_NEAR(NumberField(log, "torch ", "test_accuracy"), trained, 2e-4) << log;

  // Fresh shards started from the file hold the exported model.
  ServerCluster fresh;
  ASSERT_TRUE(fresh.Start(2, TempDir("export-fresh")).ok());
  std::vector<std::string> eval = Worker(fresh, 0, 1);
  eval.push_back("--eval_only");
  eval.push_back("--init_from=" + model);
  ASSERT_EQ(RunToEnd(eval, dir + "/init.log", &log), 0) << log;
  EXPECT_NE(log.find("--init_from=" + model + ": 6 tables, 535818 values assigned"),
            std::string::npos)
      << log;
  EXPECT_DOUBLE_EQ(NumberField(log, "eval ", "test_accuracy"), trained) << log;

  // A file numpy wrote itself (np.savez_compressed: deflated members, float64 values, no
  // ps_tables.json) starts fresh shards the same way: float32 -> float64 -> float32 is exact.
  const std::string by_numpy = dir + "/by_numpy.npz";
  ASSERT_EQ(RunToEnd({kPython, "-c",
                      "import numpy as np, sys; m = np.load(sys.argv[1]); "
                      "np.savez_compressed(sys.argv[2], **{k: m[k].astype(np.float64) "
                      "for k in m.files if k.startswith('fc')})",
                      model, by_numpy},
                     dir + "/numpy.log", &log),
            0)
      << log;
  ServerCluster fresh_numpy;
  ASSERT_TRUE(fresh_numpy.Start(1, TempDir("export-numpy")).ok());
  eval = Worker(fresh_numpy, 0, 1);
  eval.push_back("--eval_only");
  eval.push_back("--init_from=" + by_numpy);
  ASSERT_EQ(RunToEnd(eval, dir + "/init_numpy.log", &log), 0) << log;
  EXPECT_DOUBLE_EQ(NumberField(log, "eval ", "test_accuracy"), trained) << log;

  // Against the trained shards the file is not applied: they keep their model.
  std::vector<std::string> again = Worker(servers, 0, 2);
  again.push_back("--init_from=" + model);
  ASSERT_EQ(RunToEnd(again, dir + "/again.log", &log), 0) << log;
  EXPECT_NE(log.find("--init_from=" + model + " not applied: assign to shard"), std::string::npos)
      << log;
  EXPECT_NE(log.find("has trained (version 469,"), std::string::npos) << log;

  // A model of other sizes is refused by name, and the shards keep serving.
  ServerCluster other;
  ASSERT_TRUE(other.Start(1, TempDir("export-other")).ok());
  std::vector<std::string> wrong = Worker(other, 0, 1);
  wrong.push_back("--layers=128");
  wrong.push_back("--init_from=" + model);
  EXPECT_EQ(RunToEnd(wrong, dir + "/wrong.log", &log), 1) << log;
  EXPECT_NE(
      log.find(model + ": array 'fc0.w' has shape [784,512] but the table is [784,128] (do the "
                       "model flags, e.g. --layers, match?)"),
      std::string::npos)
      << log;
  EXPECT_TRUE(other.shard(0).running());
}

}  // namespace
}  // namespace testing
}  // namespace ps
