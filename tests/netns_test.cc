// Multi-host test: 2 ps_server and 2 ps_worker daemons, each in a network namespace of its
// own with its own address, joined by a bridge in a further "switch" namespace, so traffic
// crosses real (virtual) links and nothing runs on loopback. Every daemon starts as its pod
// would: deploy/docker/entrypoint.sh with the pod's environment read from deploy/k8s.
// - StatefulSet and Indexed Job (overlays/cpu): only PS_SERVERS points at the namespaces'
//   addresses instead of ps-<i>.ps; shards take their index from HOSTNAME=ps-<i>, workers
//   from JOB_COMPLETION_INDEX.
// - TFJob (tfjob/tfjob.yaml): no cluster settings at all, only TF_CONFIG as Kubeflow's
//   operator writes it, on a port other than the default.
//
// Needs root, iproute2 and kubectl; skips itself otherwise. The host's network is never
// touched: every link and address lives in namespaces this test creates and deletes, also
// when it fails (and namespaces left by a killed run are removed by the next one).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/deploy_testing.h"

namespace ps {
namespace testing {
namespace {

constexpr int kServers = 2;
constexpr int kWorkers = 2;
constexpr char kPrefix[] = "psnet-";  // namespaces are psnet-<test pid>-<host>

using Env = std::map<std::string, std::string>;

class NetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    ip_ = FindProgram("ip");
    if (ip_.empty()) GTEST_SKIP() << "iproute2 (ip) is missing";
    kubectl_ = FindProgram("kubectl");
    if (kubectl_.empty()) GTEST_SKIP() << "kubectl is missing: cannot render the pods' env";
    dir_ = TempDir("netns");
    RemoveStaleNamespaces();
    if (absl::Status s = AddNamespace("probe"); !s.ok()) {
      GTEST_SKIP() << "cannot create a network namespace here: " << s;
    }
    ASSERT_TRUE(Ip({"netns", "del", Namespace("probe")}).ok());
    namespaces_.clear();
    // 10.77.<subnet>.0/24, from the pid: two runs at once never share a switch anyway.
    subnet_ = absl::StrCat("10.77.", getpid() % 200 + 20);
  }

  void TearDown() override {
    for (Process& p : processes_) {
      p.Signal(SIGKILL);
      (void)p.Wait(absl::Seconds(10));
    }
    // Deleting a namespace removes its links (veth peers go with either end).
    for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it) {
      absl::Status s = Ip({"netns", "del", *it});
      EXPECT_TRUE(s.ok()) << s;
    }
  }

  std::string Namespace(const std::string& host) const {
    return absl::StrCat(kPrefix, getpid(), "-", host);
  }

  absl::Status Ip(std::vector<std::string> args) {
    args.insert(args.begin(), ip_);
    return RunCommand(args, absl::StrCat(dir_, "/ip.log"), absl::Seconds(30)).status();
  }

  absl::Status AddNamespace(const std::string& host) {
    const std::string ns = Namespace(host);
    if (absl::Status s = Ip({"netns", "add", ns}); !s.ok()) return s;
    namespaces_.push_back(ns);
    return absl::OkStatus();
  }

  // Removes psnet-<pid>-* namespaces whose test process is gone, and the daemons it left
  // in them.
  void RemoveStaleNamespaces() {
    absl::StatusOr<std::string> list =
        RunCommand({ip_, "netns", "list"}, absl::StrCat(dir_, "/ip-list.log"));
    if (!list.ok()) return;
    for (absl::string_view line : absl::StrSplit(*list, '\n', absl::SkipEmpty())) {
      const std::string name(line.substr(0, line.find(' ')));
      if (name.rfind(kPrefix, 0) != 0) continue;
      const std::string rest = name.substr(sizeof(kPrefix) - 1);
      int pid = 0;
      if (!absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid) || pid <= 0) continue;
      if (kill(pid, 0) == 0 || errno != ESRCH) continue;
      absl::StatusOr<std::string> pids =
          RunCommand({ip_, "netns", "pids", name}, absl::StrCat(dir_, "/ip-pids.log"));
      for (absl::string_view p : absl::StrSplit(pids.value_or(""), '\n', absl::SkipEmpty())) {
        int stale = 0;
        if (absl::SimpleAtoi(p, &stale) && stale > 0) kill(stale, SIGKILL);
      }
      (void)Ip({"netns", "del", name});
    }
  }

  // A namespace for `host` with eth0 at `address`/24, cabled to the switch's bridge.
  absl::Status AddHost(const std::string& host, int port_index, const std::string& address) {
    if (absl::Status s = AddNamespace(host); !s.ok()) return s;
    const std::string ns = Namespace(host), sw = Namespace("sw");
    const std::string peer = absl::StrCat("v", port_index);
    for (const std::vector<std::string>& cmd : std::vector<std::vector<std::string>>{
             {"-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", sw},
             {"-n", sw, "link", "set", peer, "master", "br0"},
             {"-n", sw, "link", "set", peer, "up"},
             {"-n", ns, "addr", "add", address + "/24", "dev", "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"},
             {"-n", ns, "link", "set", "lo", "up"}}) {
      if (absl::Status s = Ip(cmd); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status BuildNetwork() {
    if (absl::Status s = AddNamespace("sw"); !s.ok()) return s;
    if (absl::Status s = Ip({"-n", Namespace("sw"), "link", "add", "br0", "type", "bridge"});
        !s.ok()) {
      return s;
    }
    if (absl::Status s = Ip({"-n", Namespace("sw"), "link", "set", "br0", "up"}); !s.ok()) {
      return s;
    }
    for (int i = 0; i < kServers; ++i) {
      if (absl::Status s = AddHost(absl::StrCat("ps", i), i, ServerAddress(i)); !s.ok()) return s;
    }
    for (int i = 0; i < kWorkers; ++i) {
      const std::string address = absl::StrCat(subnet_, ".", 20 + i);
      if (absl::Status s = AddHost(absl::StrCat("w", i), kServers + i, address); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::string ServerAddress(int i) const { return absl::StrCat(subnet_, ".", 10 + i); }

  // A folder with ps_server and ps_worker, for the entrypoint's PS_BIN_DIR.
  std::string BinDir() {
    const std::string bin = dir_ + "/bin";
    mkdir(bin.c_str(), 0755);
    for (const auto& [name, runfile] : std::map<std::string, std::string>{
             {"ps_server", "server/ps_server"}, {"ps_worker", "worker/ps_worker"}}) {
      char* real = realpath(RunfilePath(runfile).c_str(), nullptr);
      const std::string target = real != nullptr ? real : RunfilePath(runfile);
      free(real);
      const std::string link = absl::StrCat(bin, "/", name);
      unlink(link.c_str());
      EXPECT_EQ(symlink(target.c_str(), link.c_str()), 0) << link;
    }
    return bin;
  }

  // Starts the entrypoint in `host`'s namespace with exactly `env`, as a container would.
  // setpriv (util-linux), where present, makes the daemon die with this test process.
  absl::Status Start(const std::string& host, const Env& env) {
    std::vector<std::string> argv = {ip_, "netns", "exec", Namespace(host)};
    if (const std::string setpriv = FindProgram("setpriv"); !setpriv.empty()) {
      argv.insert(argv.end(), {setpriv, "--pdeathsig", "KILL"});
    }
    argv.insert(argv.end(), {"/usr/bin/env", "-i"});
    for (const auto& [k, v] : env) argv.push_back(absl::StrCat(k, "=", v));
    argv.push_back(RunfilePath("deploy/docker/entrypoint.sh"));
    absl::StatusOr<Process> p = Process::Start(argv, absl::StrCat(dir_, "/", host, ".log"));
    if (!p.ok()) return p.status();
    processes_.push_back(*std::move(p));
    return absl::OkStatus();
  }

  // The environment of `role`'s pods in `manifest` ("overlays/cpu", "tfjob"), plus what a
  // container gets besides: PATH, HOME, and here PS_BIN_DIR.
  Env PodEnv(const std::string& manifest, const std::string& role) {
    absl::StatusOr<Env> env =
        RenderedPodEnv(kubectl_, manifest, role, absl::StrCat(dir_, "/render-", role, ".log"));
    EXPECT_TRUE(env.ok()) << env.status();
    Env out = env.value_or(Env());
    // The Secret ps-auth's files, as its volume would mount them (with test tokens).
    const std::string auth = absl::StrCat(dir_, "/auth");
    mkdir(auth.c_str(), 0700);
    std::ofstream(auth + "/tokens") << "worker netns-worker-token\noperator netns-operator-token\n";
    std::ofstream(auth + "/worker") << "netns-worker-token\n";
    std::ofstream(auth + "/operator") << "netns-operator-token\n";
    // And the Secret ps-tls's, made by its script for the shards' addresses here.
    const std::string tls = absl::StrCat(dir_, "/tls");
    if (!std::ifstream(tls + "/ca.crt").good()) {
      std::vector<std::string> ips;
      for (int i = 0; i < kServers; ++i) ips.push_back(ServerAddress(i));
      absl::StatusOr<std::string> made =
          RunCommand({RunfilePath("deploy/k8s/make-tls-secret.sh"), "--out", tls, "--names",
                      absl::StrJoin(ips, ","), "--days", "2"},
                     absl::StrCat(dir_, "/make-tls-secret.log"));
      EXPECT_TRUE(made.ok()) << made.status();
    }
    for (auto& [name, value] : out) {
      for (const auto& [from, to] :
           {std::pair<std::string, std::string>{"/etc/ps/auth/", auth}, {"/etc/ps/tls/", tls}}) {
        if (absl::StartsWith(value, from)) value = absl::StrCat(to, "/", value.substr(from.size()));
      }
    }
    out["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    out["HOME"] = dir_;
    out["PS_BIN_DIR"] = BinDir();
    return out;
  }

  // Starts shard i with envs[i] in namespace ps<i>; waits until it says it serves as shard
  // i of kServers on `port`.
  void StartServers(const std::vector<Env>& envs, int port) {
    for (int i = 0; i < kServers; ++i) {
      ASSERT_TRUE(Start(absl::StrCat("ps", i), envs[i]).ok());
    }
    for (int i = 0; i < kServers; ++i) {
      const std::string want =
          absl::StrCat("ps_server shard ", i, "/", kServers, " serving on 0.0.0.0:", port,
                       ", TLS, client certificates required, tokens required");
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (processes_[i].Log().find(want) == std::string::npos && absl::Now() < deadline) {
        ASSERT_FALSE(processes_[i].Wait(absl::Milliseconds(100)).ok())
            << "shard " << i << " exited:\n"
            << processes_[i].Log();
      }
      ASSERT_NE(processes_[i].Log().find(want), std::string::npos) << processes_[i].Log();
    }
  }

  // Starts worker w with envs[w] in namespace w<w>, each for one epoch; checks that every
  // worker finishes, its loss falls and worker 0's test accuracy; then stops the shards.
  void TrainAndCheck(std::vector<Env> envs) {
    for (int w = 0; w < kWorkers; ++w) {
      envs[w]["PS_EPOCHS"] = "1";       // one pass over the worker's half, then evaluate
      envs[w]["PS_CPU_THREADS"] = "1";  // four daemons share this machine's cores
      envs[w]["PS_LOG_EVERY"] = "50";
      ASSERT_TRUE(Start(absl::StrCat("w", w), envs[w]).ok());
    }
    for (int w = 0; w < kWorkers; ++w) {
      Process& worker = processes_[kServers + w];
      absl::StatusOr<int> code = worker.Wait(absl::Minutes(5));
      ASSERT_TRUE(code.ok()) << code.status() << "\n" << worker.Log();
      const std::string log = worker.Log();
      ASSERT_EQ(*code, 0) << log;
      const size_t done = log.find(absl::StrCat("worker ", w, " done "));
      ASSERT_NE(done, std::string::npos) << log;
      std::printf("%s", log.substr(done, log.find('\n', done) + 1 - done).c_str());
      EXPECT_GT(DoneField(log, "steps"), 400) << log;  // 30000 examples in batches of 64
      const double first = DoneField(log, "first_loss"), last = DoneField(log, "last_loss");
      EXPECT_GT(first, 0.6) << log;  // an untrained 10-class model starts near ln(10)
      EXPECT_LT(last, 0.65 * first) << log;
      // Other network namespaces are other hosts: no same-host windows, bytes over TCP.
      EXPECT_NE(log.find("tensor bytes go over gRPC (same-host windows: the shard is on "
                         "another host or in other namespaces)"),
                std::string::npos)
          << log;
      EXPECT_EQ(log.find("move through same-host windows"), std::string::npos) << log;
      if (w == 0) {  // worker 0 evaluates
        EXPECT_GT(DoneField(log, "test_accuracy"), 0.75) << log;
      }
    }
    // Shards stop cleanly on SIGTERM, as when Kubernetes deletes their pods.
    for (int i = 0; i < kServers; ++i) {
      processes_[i].Signal(SIGTERM);
      absl::StatusOr<int> code = processes_[i].Wait(absl::Seconds(20));
      ASSERT_TRUE(code.ok()) << code.status();
      EXPECT_EQ(*code, 0) << processes_[i].Log();
    }
  }

  // Runs `argv` in `host`'s namespace (dying with this test where setpriv exists).
  absl::StatusOr<Process> StartIn(const std::string& host, std::vector<std::string> argv,
                                  const std::string& log) {
    std::vector<std::string> prefix = {ip_, "netns", "exec", Namespace(host)};
    if (const std::string setpriv = FindProgram("setpriv"); !setpriv.empty()) {
      prefix.insert(prefix.end(), {setpriv, "--pdeathsig", "KILL"});
    }
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
    return Process::Start(argv, absl::StrCat(dir_, "/", log));
  }

  // The packets dropped so far by `host`'s qdisc on `dev`, from `tc -s qdisc show`.
  int64_t Dropped(const std::string& ns, const std::string& dev) {
    absl::StatusOr<std::string> out =
        RunCommand({FindProgram("tc"), "-n", ns, "-s", "qdisc", "show", "dev", dev},
                   absl::StrCat(dir_, "/tc-show.log"));
    if (!out.ok()) return -1;
    const size_t at = out->find("dropped ");
    int64_t n = -1;
    if (at != std::string::npos) {
      (void)absl::SimpleAtoi(out->substr(at + 8, out->find(',', at) - at - 8), &n);
    }
    return n;
  }

  std::string ip_, kubectl_, dir_, subnet_;
  std::vector<std::string> namespaces_;
  std::vector<Process> processes_;  // servers first, then workers
};

TEST_F(NetnsTest, StatefulSetAndIndexedJobPodsTrain) {
  const Env server = PodEnv("overlays/cpu", "server");
  const Env worker = PodEnv("overlays/cpu", "worker");
  ASSERT_EQ(worker.at("PS_NUM_WORKERS"), absl::StrCat(kWorkers));
  const int port = std::stoi(server.at("PS_PORT"));
  std::vector<std::string> servers;
  for (int i = 0; i < kServers; ++i) servers.push_back(absl::StrCat(ServerAddress(i), ":", port));
  std::vector<Env> server_envs(kServers, server), worker_envs(kWorkers, worker);
  for (int i = 0; i < kServers; ++i) {
    server_envs[i]["HOSTNAME"] = absl::StrCat("ps-", i);  // the StatefulSet's pod name
    server_envs[i]["PS_SERVERS"] = absl::StrJoin(servers, ",");
    server_envs[i]["PS_CHECKPOINT_DIR"] = absl::StrCat(dir_, "/checkpoints-", i);  // the PVC
    mkdir(server_envs[i]["PS_CHECKPOINT_DIR"].c_str(), 0755);
  }
  for (int w = 0; w < kWorkers; ++w) {
    worker_envs[w]["HOSTNAME"] = absl::StrCat("ps-worker-", w, "-x7k2q");
    worker_envs[w]["JOB_COMPLETION_INDEX"] = absl::StrCat(w);  // set by the Indexed Job
    worker_envs[w]["PS_SERVERS"] = absl::StrJoin(servers, ",");
  }
  absl::Status network = BuildNetwork();
  ASSERT_TRUE(network.ok()) << network;
  ASSERT_NO_FATAL_FAILURE(StartServers(server_envs, port));
  ASSERT_NO_FATAL_FAILURE(TrainAndCheck(worker_envs));
}

// Kubeflow's TFJob: no cluster settings in the env, only TF_CONFIG as the training
// operator writes it. The port is not the default, to show that --port comes from it.
TEST_F(NetnsTest, TfJobPodsTrainFromTfConfig) {
  const int port = 50061;
  std::vector<std::string> ps, workers;
  for (int i = 0; i < kServers; ++i)
    ps.push_back(absl::StrCat("\"", ServerAddress(i), ":", port, "\""));
  for (int w = 0; w < kWorkers; ++w) {
    workers.push_back(absl::StrCat("\"", subnet_, ".", 20 + w, ":", port, "\""));
  }
  auto tf_config = [&](const std::string& type, int index) {
    return absl::StrCat("{\"cluster\":{\"ps\":[", absl::StrJoin(ps, ","), "],\"worker\":[",
                        absl::StrJoin(workers, ","), "]},\"task\":{\"type\":\"", type,
                        "\",\"index\":", index, "},\"environment\":\"cloud\"}");
  };
  std::vector<Env> server_envs(kServers, PodEnv("tfjob", "server"));
  std::vector<Env> worker_envs(kWorkers, PodEnv("tfjob", "worker"));
  for (int i = 0; i < kServers; ++i) {
    server_envs[i]["HOSTNAME"] = absl::StrCat("ps-mnist-ps-", i);
    server_envs[i]["TF_CONFIG"] = tf_config("ps", i);
  }
  for (int w = 0; w < kWorkers; ++w) {
    worker_envs[w]["HOSTNAME"] = absl::StrCat("ps-mnist-worker-", w);
    worker_envs[w]["TF_CONFIG"] = tf_config("worker", w);
  }
  absl::Status network = BuildNetwork();
  ASSERT_TRUE(network.ok()) << network;
  ASSERT_NO_FATAL_FAILURE(StartServers(server_envs, port));
  ASSERT_NO_FATAL_FAILURE(TrainAndCheck(worker_envs));
}

// Exact accounting over links that delay and drop packets. The kernel here has no
// netem qdisc, so each worker's link is a token bucket (tc tbf, 40 Mbit/s, a 16 KiB
// bucket and 5 ms of queue) in both directions: under a push or pull's burst the queue
// delays packets and drops what overflows, and TCP resends them. Every acknowledged push
// must count exactly once on every element of both shards.
TEST_F(NetnsTest, CountersAreExactOverLinksThatDelayAndDropPackets) {
  if (FindProgram("tc").empty()) GTEST_SKIP() << "tc (iproute2) is missing";
  absl::Status network = BuildNetwork();
  ASSERT_TRUE(network.ok()) << network;
  for (int w = 0; w < kWorkers; ++w) {
    const std::string port = absl::StrCat("v", kServers + w);  // its cable at the switch
    for (const auto& [ns, dev] :
         {std::pair<std::string, std::string>{Namespace(absl::StrCat("w", w)), "eth0"},
          {Namespace("sw"), port}}) {
      absl::StatusOr<std::string> tc =
          RunCommand({FindProgram("tc"), "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
                      "rate", "40mbit", "burst", "16kb", "latency", "5ms"},
                     absl::StrCat(dir_, "/tc.log"));
      ASSERT_TRUE(tc.ok()) << tc.status();
    }
  }
  const int port = 50071;
  std::vector<std::string> servers;
  for (int i = 0; i < kServers; ++i) servers.push_back(absl::StrCat(ServerAddress(i), ":", port));
  const std::string servers_flag = absl::StrJoin(servers, ",");
  for (int i = 0; i < kServers; ++i) {
    absl::StatusOr<Process> p =
        StartIn(absl::StrCat("ps", i),
                {RunfilePath("server/ps_server"), "--host=" + ServerAddress(i), "--plaintext",
                 absl::StrCat("--port=", port), absl::StrCat("--shard_index=", i),
                 "--servers=" + servers_flag},
                absl::StrCat("ps", i, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    processes_.push_back(*std::move(p));
  }
  const int pushes = 60;
  std::vector<size_t> workers;
  for (int w = 0; w < kWorkers; ++w) {
    absl::StatusOr<Process> p =
        StartIn(absl::StrCat("w", w),
                {RunfilePath("tests/counter_worker"), "--servers=" + servers_flag,
                 absl::StrCat("--worker_index=", w), absl::StrCat("--num_workers=", kWorkers),
                 "--mode=async", absl::StrCat("--pushes=", pushes), "--pause=0s"},
                absl::StrCat("w", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(processes_.size());
    processes_.push_back(*std::move(p));
  }
  int64_t acked = 0;
  for (size_t i : workers) {
    absl::StatusOr<int> code = processes_[i].Wait(absl::Minutes(3));
    ASSERT_TRUE(code.ok()) << code.status() << "\n" << processes_[i].Log();
    ASSERT_EQ(*code, 0) << processes_[i].Log();
    const std::string log = processes_[i].Log();
    for (size_t at = log.find("\nacked "); at != std::string::npos;
         at = log.find("\nacked ", at + 1)) {
      ++acked;
    }
  }
  EXPECT_EQ(acked, kWorkers * pushes);
  int64_t dropped = 0;
  for (int w = 0; w < kWorkers; ++w) {
    for (int64_t d : {Dropped(Namespace(absl::StrCat("w", w)), "eth0"),
                      Dropped(Namespace("sw"), absl::StrCat("v", kServers + w))}) {
      EXPECT_GE(d, 0) << "tc -s qdisc show did not say what it dropped";
      dropped += std::max<int64_t>(d, 0);
    }
  }
  EXPECT_GT(dropped, 0) << "the links dropped nothing: the test proved nothing";
  std::printf("links dropped %lld packets\n", static_cast<long long>(dropped));
  absl::StatusOr<Process> reader =
      StartIn("w0", {RunfilePath("tests/counter_worker"), "--servers=" + servers_flag, "--read"},
              "read.log");
  ASSERT_TRUE(reader.ok()) << reader.status();
  absl::StatusOr<int> code = reader->Wait(absl::Minutes(1));
  ASSERT_TRUE(code.ok() && *code == 0) << reader->Log();
  for (int s = 0; s < kServers; ++s) {
    const std::string want = absl::StrCat("counters shard=", s, " min=", acked, " max=", acked);
    EXPECT_NE(reader->Log().find(want), std::string::npos) << want << "\n" << reader->Log();
  }
}

}  // namespace
}  // namespace testing
}  // namespace ps
