// deploy/hosts/launch.py for real, over ssh: the test runs its own sshd on a free port of
// 127.0.0.1 with a host key and a client key made for it, and the launcher starts 2 shards
// and 2 workers on two "hosts" (both 127.0.0.1, each process its own ssh session). The job
// trains to 0.85; then a second job is interrupted (SIGINT to the launcher) in the middle
// and no process of it is left. Skipped only where Debian's openssh-server is missing
// (tests/run.sh installs it).
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/deploy_testing.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

// The command lines of every running process that mention `needle`.
std::vector<std::string> ProcessesMentioning(const std::string& needle) {
  std::vector<std::string> found;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return found;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if (std::atoi(e->d_name) == getpid()) continue;
    std::ifstream in(absl::StrCat("/proc/", e->d_name, "/cmdline"));
    std::stringstream ss;
    ss << in.rdbuf();
    std::string cmdline = ss.str();
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (absl::StrContains(cmdline, needle)) found.push_back(absl::StrCat(e->d_name, ": ", cmdline));
  }
  closedir(proc);
  return found;
}

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sshd_ = FindProgram("sshd");
    keygen_ = FindProgram("ssh-keygen");
    if (sshd_.empty() || keygen_.empty() || FindProgram("ssh").empty()) {
      GTEST_SKIP() << "openssh-server or openssh-client is missing";
    }
    dir_ = TempDir(std::string("launcher-") +
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (const char* key : {"host_key", "client_key"}) {
      absl::StatusOr<std::string> out = RunCommand(
          {keygen_, "-q", "-t", "ed25519", "-N", "", "-f", dir_ + "/" + key}, dir_ + "/keygen.log");
      ASSERT_TRUE(out.ok()) << out.status();
    }
    ASSERT_TRUE(RunCommand({"/bin/cp", dir_ + "/client_key.pub", dir_ + "/authorized_keys"},
                           dir_ + "/cp.log")
                    .ok());
    absl::StatusOr<PortReservation> port = PortReservation::Reserve();
    ASSERT_TRUE(port.ok()) << port.status();
    ssh_port_ = port->port();
    port->Release();
    std::ofstream(dir_ + "/sshd_config")
        << "ListenAddress 127.0.0.1\nPort " << ssh_port_ << "\nHostKey " << dir_
        << "/host_key\nAuthorizedKeysFile " << dir_ << "/authorized_keys\n"
        << "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        << "StrictModes no\nPermitRootLogin prohibit-password\nPidFile none\n"
        << "AcceptEnv none\nLogLevel ERROR\n";
    mkdir("/run/sshd", 0755);  // sshd's privilege-separation directory
    absl::StatusOr<Process> sshd =
        Process::Start({sshd_, "-D", "-e", "-f", dir_ + "/sshd_config"}, dir_ + "/sshd.log");
    ASSERT_TRUE(sshd.ok()) << sshd.status();
    sshd_process_ = *std::move(sshd);
    // Ready once a command runs through it.
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (true) {
      std::vector<std::string> argv = Ssh();
      argv.insert(argv.end(), {"127.0.0.1", "true"});
      if (RunCommand(argv, dir_ + "/probe.log", absl::Seconds(10)).ok()) break;
      ASSERT_LT(absl::Now(), deadline) << "sshd did not answer:\n" << sshd_process_.Log();
      absl::SleepFor(absl::Milliseconds(200));
    }
  }

  std::vector<std::string> Ssh() const {
    return {FindProgram("ssh"), "-F", "/dev/null", "-p", std::to_string(ssh_port_), "-i",
            dir_ + "/client_key",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"};
  }

  // The launcher for 2 shards on free ports and 2 workers, all on 127.0.0.1.
  std::vector<std::string> Launcher(const std::string& name,
                                    const std::vector<std::string>& worker_flags) {
    std::vector<std::string> servers;
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<PortReservation> r = PortReservation::Reserve();
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) return {};
      servers.push_back(absl::StrCat("127.0.0.1:", r->port()));
      r->Release();  // the shard binds it moments later
    }
    servers_ = absl::StrJoin(servers, ",");
    std::vector<std::string> argv = {
        "/usr/bin/python3", RunfilePath("deploy/hosts/launch.py"), "--servers=" + servers_,
        "--workers=127.0.0.1,127.0.0.1", "--ps_server=" + RunfilePath("server/ps_server"),
        "--ps_worker=" + RunfilePath("worker/ps_worker"),
        "--ssh=" + absl::StrJoin(Ssh(), " "), "--log_dir=" + dir_ + "/" + name, "--"};
    argv.insert(argv.end(), worker_flags.begin(), worker_flags.end());
    return argv;
  }

  std::string dir_, sshd_, keygen_, servers_;
  int ssh_port_ = 0;
  Process sshd_process_;
};

TEST_F(LauncherTest, TwoShardsAndTwoWorkersOnTwoHostsTrainTo085) {
  absl::StatusOr<Process> launcher = Process::Start(
      Launcher("train", {"--device=cpu", "--epochs=2", "--optimizer=sgd", "--learning_rate=0.1"}),
      dir_ + "/launcher-train.log");
  ASSERT_TRUE(launcher.ok()) << launcher.status();
  absl::StatusOr<int> code = launcher->Wait(absl::Minutes(4));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << launcher->Log();
  const std::string log = launcher->Log();
  EXPECT_EQ(*code, 0) << log;
  EXPECT_THAT(log, HasSubstr("launch: 2 shards (" + servers_ + "), 2 workers on 127.0.0.1,127.0.0.1"));
  EXPECT_THAT(log, HasSubstr("[worker 1 127.0.0.1] worker 1 epoch 2/2 step "));
  EXPECT_THAT(log, HasSubstr("launch: stopping every process (every worker finished)"));
  EXPECT_THAT(log, HasSubstr("launch: done"));
  EXPECT_GE(NumberField(log, "[worker 0 127.0.0.1] worker 0 done", "test_accuracy"), 0.85) << log;
  EXPECT_EQ(NumberField(log, "[worker 1 127.0.0.1] worker 1 done", "steps"), 938) << log;
  // The shards were stopped (SIGTERM through the closed ssh stdin): nothing is left.
  const absl::Time gone_by = absl::Now() + absl::Seconds(10);
  std::vector<std::string> left = ProcessesMentioning("--servers=" + servers_);
  while (!left.empty() && absl::Now() < gone_by) {
    absl::SleepFor(absl::Milliseconds(200));
    left = ProcessesMentioning("--servers=" + servers_);
  }
  EXPECT_THAT(left, ::testing::IsEmpty());
}

TEST_F(LauncherTest, CtrlCStopsEveryProcessOnEveryHost) {
  absl::StatusOr<Process> launcher = Process::Start(
      Launcher("interrupt", {"--device=cpu", "--epochs=50"}), dir_ + "/launcher-interrupt.log");
  ASSERT_TRUE(launcher.ok()) << launcher.status();
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (!absl::StrContains(launcher->Log(), "worker 1 epoch 1/50 step 100/")) {
    ASSERT_LT(absl::Now(), deadline) << launcher->Log();
    ASSERT_EQ(launcher->Wait(absl::ZeroDuration()).status().code(),
              absl::StatusCode::kDeadlineExceeded)
        << launcher->Log();
    absl::SleepFor(absl::Milliseconds(200));
  }
  // 2 shards and 2 workers run, each under its own ssh session.
  int daemons = 0;
  for (const std::string& p : ProcessesMentioning("--servers=" + servers_)) {
    const std::string cmdline = p.substr(p.find(": ") + 2);
    if (absl::StartsWith(cmdline, RunfilePath("server/ps_server") + " ") ||
        absl::StartsWith(cmdline, RunfilePath("worker/ps_worker") + " ")) {
      ++daemons;
    }
  }
  EXPECT_EQ(daemons, 4);
  launcher->Signal(SIGINT);
  absl::StatusOr<int> code = launcher->Wait(absl::Seconds(40));
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << launcher->Log();
  EXPECT_EQ(*code, 130) << launcher->Log();
  EXPECT_THAT(launcher->Log(), HasSubstr("launch: stopping every process (interrupted)"));
  // Every shard and worker, and every ssh session, is gone within a few seconds.
  const absl::Time gone_by = absl::Now() + absl::Seconds(10);
  std::vector<std::string> left = ProcessesMentioning("--servers=" + servers_);
  while (!left.empty() && absl::Now() < gone_by) {
    absl::SleepFor(absl::Milliseconds(200));
    left = ProcessesMentioning("--servers=" + servers_);
  }
  EXPECT_THAT(left, ::testing::IsEmpty()) << launcher->Log();
}

}  // namespace
}  // namespace testing
}  // namespace ps
