// deploy/docker/entrypoint.sh against stand-in binaries that print what they were given:
// which daemon each role, argument and TF_CONFIG picks, the indices it derives from the
// StatefulSet host name and the Indexed Job's JOB_COMPLETION_INDEX, and its refusals.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string output;
};

class EntrypointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("entrypoint");
    for (const char* name : {"ps_server", "ps_worker", "psctl"}) {
      const std::string path = absl::StrCat(dir_, "/", name);
      // The addresses it was told go to <name>.hosts.
      std::ofstream(path) << "#!/bin/sh\necho \"" << name
                          << " shard=${PS_SHARD_INDEX-unset} worker=${PS_WORKER_INDEX-unset} "
                             "args=$*\"\n"
                          << "echo \"host=${PS_HOST-unset} health_host=${PS_HEALTH_HOST-unset}\" "
                             ">\"$0.hosts\"\n";
      chmod(path.c_str(), 0755);
    }
  }

  // Runs the entrypoint with only `env` (plus PATH and PS_BIN_DIR) and `args`.
  Result Run(const std::map<std::string, std::string>& env,
             const std::vector<std::string>& args = {}) {
    std::vector<std::string> argv = {"/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                                     "PS_BIN_DIR=" + dir_};
    for (const auto& [k, v] : env) argv.push_back(absl::StrCat(k, "=", v));
    argv.push_back(RunfilePath("deploy/docker/entrypoint.sh"));
    argv.insert(argv.end(), args.begin(), args.end());
    static int runs = 0;  // one log per run: TempDir is the same for every test
    const std::string log = absl::StrCat(dir_, "/run-", ++runs, ".log");
    absl::StatusOr<Process> p = Process::Start(argv, log);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    absl::StatusOr<int> code = p->Wait(absl::Seconds(20));
    EXPECT_TRUE(code.ok()) << code.status();
    return {code.value_or(-1), p->Log()};
  }

  // What the stand-in `name` was told to listen on in its last run.
  std::string Hosts(const std::string& name) {
    std::ifstream in(absl::StrCat(dir_, "/", name, ".hosts"));
    std::string line;
    std::getline(in, line);
    return line;
  }

  std::string dir_;
};

TEST_F(EntrypointTest, ServerTakesShardIndexFromStatefulSetHostName) {
  Result r = Run({{"PS_ROLE", "server"}, {"HOSTNAME", "ps-3"}}, {"--port=1"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "ps_server shard=3 worker=unset args=--port=1\n");
  // An explicit index wins over the host name.
  r = Run({{"PS_ROLE", "server"}, {"HOSTNAME", "ps-3"}, {"PS_SHARD_INDEX", "0"}});
  EXPECT_EQ(r.output, "ps_server shard=0 worker=unset args=\n");
}

TEST_F(EntrypointTest, LoneServerMayHaveAnyHostNameButSeveralMayNot) {
  Result r = Run({{"PS_ROLE", "server"}, {"HOSTNAME", "3f9a2c"}, {"PS_SERVERS", "a:1"}});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "ps_server shard=unset worker=unset args=\n");
  r = Run({{"PS_ROLE", "server"}, {"HOSTNAME", "3f9a2c"}, {"PS_SERVERS", "a:1,b:1"}});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("host name '3f9a2c' does not end in -<ordinal>"));
}

// The daemons listen on 127.0.0.1 unless told otherwise; a container is reached from
// outside, so the entry point makes it every interface there, unless the pod's address
// (or any other) is given.
TEST_F(EntrypointTest, AContainerListensOnEveryInterfaceUnlessGivenAnAddress) {
  EXPECT_EQ(Run({{"PS_ROLE", "server"}, {"HOSTNAME", "ps-0"}}).code, 0);
  EXPECT_EQ(Hosts("ps_server"), "host=0.0.0.0 health_host=unset");
  EXPECT_EQ(Run({{"PS_ROLE", "server"}, {"HOSTNAME", "ps-0"}, {"PS_HOST", "10.1.2.3"}}).code, 0);
  EXPECT_EQ(Hosts("ps_server"), "host=10.1.2.3 health_host=unset");
  EXPECT_EQ(Run({{"PS_ROLE", "worker"}, {"JOB_COMPLETION_INDEX", "0"}}).code, 0);
  EXPECT_EQ(Hosts("ps_worker"), "host=unset health_host=0.0.0.0");
  EXPECT_EQ(Run({{"PS_ROLE", "worker"}, {"PS_HEALTH_HOST", "fd00::7"}}).code, 0);
  EXPECT_EQ(Hosts("ps_worker"), "host=unset health_host=fd00::7");
}

TEST_F(EntrypointTest, WorkerTakesIndexFromIndexedJob) {
  Result r = Run({{"PS_ROLE", "worker"}, {"JOB_COMPLETION_INDEX", "1"}});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "ps_worker shard=unset worker=1 args=\n");
  r = Run({{"PS_ROLE", "worker"}, {"JOB_COMPLETION_INDEX", "1"}, {"PS_WORKER_INDEX", "0"}});
  EXPECT_EQ(r.output, "ps_worker shard=unset worker=0 args=\n");
}

TEST_F(EntrypointTest, FirstArgumentNamingARoleWinsOverPsRole) {
  Result r = Run({{"PS_ROLE", "server"}, {"HOSTNAME", "ps-0"}}, {"psctl", "status"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "psctl shard=unset worker=unset args=status\n");
  r = Run({}, {"Worker", "--max_steps=5"});
  EXPECT_EQ(r.output, "ps_worker shard=unset worker=unset args=--max_steps=5\n");
}

TEST_F(EntrypointTest, TfConfigGivesTheRoleAndLeavesIndicesToTheDaemon) {
  // As Kubeflow writes it, and hand-written with spaces and the TFJob spelling.
  Result r =
      Run({{"TF_CONFIG", R"({"cluster":{"ps":["j-ps-0:2222"]},"task":{"type":"ps","index":0},)"
                         R"("environment":"cloud"})"},
           {"HOSTNAME", "j-ps-7"}});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "ps_server shard=unset worker=unset args=\n");
  r = Run({{"TF_CONFIG", R"({"cluster": {"PS": ["p:1"]}, "task": {"index": 1, "type": "Worker"}})"},
           {"JOB_COMPLETION_INDEX", "5"}});
  EXPECT_EQ(r.output, "ps_worker shard=unset worker=unset args=\n");
}

TEST_F(EntrypointTest, MissingOrUnknownRoleIsRefused) {
  Result r = Run({});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("no role: set PS_ROLE"));
  r = Run({{"PS_ROLE", "evaluator"}});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("PS_ROLE='evaluator' is not one of server, worker, psctl"));
}

}  // namespace
}  // namespace testing
}  // namespace ps
