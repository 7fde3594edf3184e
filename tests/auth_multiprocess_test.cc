// Tokens on real daemons (docs/security.md): 2 ps_server shards with a tokens file, 2
// ps_worker processes training with the worker token, and psctl. A call without a token
// is UNAUTHENTICATED, a worker's token on an operator's call PERMISSION_DENIED, and
// neither changes anything; shards reach each other with the operator's token; a tokens
// file rewritten on disk takes effect without a restart.
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/channel_credentials.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.grpc.pb.h"
#include "proto/v1/ps.pb.h"
#include "tests/cluster.h"
#include "worker/client/grpc_ps_client.h"
#include "worker/client/ps_client.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

constexpr char kWorkerToken[] = "worker-7f3a9c";
constexpr char kOperatorToken[] = "operator-51d2e8";
constexpr char kRotatedWorkerToken[] = "worker-rotated-0b44";

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream(path, std::ios::trunc) << contents;
}

std::unique_ptr<PsClient> ClientWithToken(const ServerCluster& servers, const std::string& token) {
  ClientOptions o;
  o.token = token;
  o.rpc_timeout = absl::Seconds(20);
  o.connect_timeout = absl::Seconds(5);
  return NewGrpcPsClient(servers.addresses(), o);
}

// psctl with `env` (NAME=VALUE...) and `args`; its exit code and output.
std::pair<int, std::string> Psctl(const ServerCluster& servers, const std::string& dir,
                                  const std::vector<std::string>& env,
                                  const std::vector<std::string>& args) {
  static int runs = 0;
  std::vector<std::string> argv = {"/usr/bin/env"};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.push_back(RunfilePath("psctl/psctl"));
  argv.push_back("--servers=" + servers.servers_flag());
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<Process> p = Process::Start(argv, absl::StrCat(dir, "/psctl-", ++runs, ".log"));
  if (!p.ok()) return {-1, std::string(p.status().message())};
  absl::StatusOr<int> code = p->Wait(absl::Seconds(30));
  return {code.value_or(-1), p->Log()};
}

TEST(AuthMultiprocessTest, OnlyTheRightTokenGetsInAndNothingElseChangesAnything) {
  const std::string dir = TempDir("auth");
  const std::string tokens = dir + "/tokens", operator_token = dir + "/operator.token",
                    worker_token = dir + "/worker.token";
  WriteFile(tokens, absl::StrCat("worker ", kWorkerToken, "\noperator ", kOperatorToken, "\n"));
  WriteFile(operator_token, absl::StrCat(kOperatorToken, "\n"));
  WriteFile(worker_token, absl::StrCat(kWorkerToken, "\n"));
  ServerCluster servers;
  ASSERT_TRUE(servers
                  .Start(2, dir,
                         {"--auth_tokens_file=" + tokens, "--token_file=" + operator_token,
                          "--checkpoint_dir=" + dir + "/ckpt"})
                  .ok());

  // Training with the worker token works end to end.
  const int steps = 150;
  std::vector<Process> workers;
  for (int w = 0; w < 2; ++w) {
    absl::StatusOr<Process> p =
        Process::Start({RunfilePath("worker/ps_worker"), "--servers=" + servers.servers_flag(),
                        absl::StrCat("--worker_index=", w), "--num_workers=2", "--mode=sync",
                        "--device=cpu", absl::StrCat("--max_steps=", steps), "--log_every=50",
                        "--same_host=false", "--token_file=" + worker_token},
                       absl::StrCat(dir, "/worker-", w, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }
  for (Process& w : workers) {
    absl::StatusOr<int> code = w.Wait(absl::Minutes(3));
    ASSERT_TRUE(code.ok()) << code.status();
    ASSERT_EQ(*code, 0) << w.Log();
    EXPECT_EQ(DoneField(w.Log(), "steps"), steps);
    EXPECT_LT(DoneField(w.Log(), "last_loss"), 0.7 * DoneField(w.Log(), "first_loss")) << w.Log();
  }

  // What the model is now, read with the operator's token.
  std::unique_ptr<PsClient> op = ClientWithToken(servers, kOperatorToken);
  const int64_t n = 784 * 512;
  std::vector<float> before(n), after(n), grad(n, 1.0f);
  absl::StatusOr<int64_t> v0 = op->Pull({{"fc0.w", n, before.data()}}, 0, -1);
  ASSERT_TRUE(v0.ok()) << v0.status();
  EXPECT_EQ(*v0, steps);

  // No token: every call refused as UNAUTHENTICATED, naming the method.
  std::unique_ptr<PsClient> stranger = ClientWithToken(servers, "");
  absl::Status s = stranger->RegisterWorker(12345, "h", "cpu");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_THAT(s.message(), HasSubstr("RegisterWorker needs a token"));
  s = stranger->Push({{"fc0.w", n, grad.data()}}, steps, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  EXPECT_EQ(stranger->Pull({{"fc0.w", n, after.data()}}, 0, -1).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(stranger->GetStatus().status().code(), absl::StatusCode::kUnauthenticated);
  v1::TableSpec spec;
  spec.set_name("intruder");
  spec.set_kind(v1::DENSE);
  spec.add_shape(4);
  EXPECT_EQ(stranger->CreateTable(spec).code(), absl::StatusCode::kUnauthenticated);
  // A wrong token is no better.
  EXPECT_EQ(ClientWithToken(servers, "guess")->Push({{"fc0.w", n, grad.data()}}, steps, 0).code(),
            absl::StatusCode::kUnauthenticated);

  // psctl: the operator's token sees the whole job (shard 0 asks shard 1 with its own
  // operator token); none is refused; the worker's may look but not checkpoint.
  auto [code, out] = Psctl(servers, dir, {"PS_TOKEN_FILE=" + operator_token}, {"status", "--json"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out.find("cannot reach"), std::string::npos) << out;
  std::tie(code, out) = Psctl(servers, dir, {}, {"status"});
  EXPECT_NE(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("needs a token"));
  std::tie(code, out) = Psctl(servers, dir, {absl::StrCat("PS_TOKEN=", kWorkerToken)}, {"status"});
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) =
      Psctl(servers, dir, {absl::StrCat("PS_TOKEN=", kWorkerToken)}, {"checkpoint"});
  EXPECT_NE(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("Admin.Checkpoint is not for the worker role"));
  std::tie(code, out) = Psctl(servers, dir, {"PS_TOKEN_FILE=" + operator_token}, {"checkpoint"});
  EXPECT_EQ(code, 0) << out;

  // Nothing the refused calls sent changed the table, and no worker was registered.
  absl::StatusOr<int64_t> v1 = op->Pull({{"fc0.w", n, after.data()}}, 0, -1);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(*v1, steps);
  EXPECT_EQ(after, before);
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = op->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  for (const v1::GetStatusResponse& shard : *status) {
    for (const v1::WorkerStatus& w : shard.workers()) EXPECT_NE(w.worker_index(), 12345);
    for (const v1::TableStatus& t : shard.tables()) EXPECT_NE(t.spec().name(), "intruder");
  }

  // The tokens file rewritten on disk (a rotated Secret): the new worker token works and
  // the old one stops, with no restart.
  WriteFile(tokens,
            absl::StrCat("worker ", kRotatedWorkerToken, "\noperator ", kOperatorToken, "\n"));
  std::unique_ptr<PsClient> old_worker = ClientWithToken(servers, kWorkerToken);
  std::unique_ptr<PsClient> new_worker = ClientWithToken(servers, kRotatedWorkerToken);
  absl::Status with_new;
  for (int i = 0; i < 50; ++i) {  // the shards look at the file once a second
    with_new = new_worker->RegisterWorker(5, "h", "cpu");
    if (with_new.ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(with_new.ok()) << with_new;
  EXPECT_EQ(old_worker->RegisterWorker(6, "h", "cpu").code(), absl::StatusCode::kUnauthenticated);
}

// Two workers with tokens of their own: the second cannot register, heartbeat, push,
// leave or open a window as the first, and the first keeps training state and liveness.
TEST(AuthMultiprocessTest, ASecondCredentialCannotActAsAnotherWorker) {
  const std::string dir = TempDir("identity");
  WriteFile(dir + "/tokens",
            "worker alice-token alice\nworker mallory-token mallory\noperator op-token\n");
  WriteFile(dir + "/operator.token", "op-token\n");
  ServerCluster servers;
  ASSERT_TRUE(servers
                  .Start(2, dir,
                         {"--auth_tokens_file=" + dir + "/tokens",
                          "--token_file=" + dir + "/operator.token"})
                  .ok());
  std::unique_ptr<PsClient> alice = ClientWithToken(servers, "alice-token");
  std::unique_ptr<PsClient> mallory = ClientWithToken(servers, "mallory-token");
  std::unique_ptr<PsClient> op = ClientWithToken(servers, "op-token");
  v1::TableSpec spec;
  spec.set_name("w");
  spec.set_kind(v1::DENSE);
  spec.add_shape(1000);
  spec.set_consistency(v1::ASYNC);
  spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::SGD);
  spec.mutable_optimizer()->set_learning_rate(0.5f);
  ASSERT_TRUE(alice->CreateTable(spec).ok());
  ASSERT_TRUE(alice->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> g(1000, 1.0f), before(1000), after(1000);
  ASSERT_TRUE(alice->Push({{"w", 1000, g.data()}}, PsClient::kPerShard, 0).ok());
  ASSERT_TRUE(op->Pull({{"w", 1000, before.data()}}, 0, -1).ok());

  absl::Status s = mallory->RegisterWorker(0, "h", "cpu");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(
      s.message(),
      HasSubstr("RegisterWorker as worker 0: it is registered by another credential ('alice')"));
  v1::WorkerStats stats;
  s = mallory->Heartbeat(0, stats);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  s = mallory->Push({{"w", 1000, g.data()}}, PsClient::kPerShard, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_THAT(s.message(), HasSubstr("Push as worker 0: it is registered by another credential"));
  s = mallory->LeaveWorker(0);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  // A same-host window, asked for directly.
  std::unique_ptr<v1::ParameterServer::Stub> stub = v1::ParameterServer::NewStub(
      NewChannel(servers.addresses()[0], ChannelCredentials{"mallory-token"}));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::OpenWindowRequest window;
  window.set_worker_index(0);
  window.set_bytes(4096);
  window.set_incarnation(alice->incarnation());
  v1::OpenWindowResponse opened;
  grpc::Status gs = stub->OpenWindow(&context, window, &opened);
  EXPECT_EQ(gs.error_code(), grpc::StatusCode::PERMISSION_DENIED) << gs.error_message();
  EXPECT_EQ(opened.push_address(), 0u);

  // Nothing changed: the table, and worker 0 is alice's and live.
  ASSERT_TRUE(op->Pull({{"w", 1000, after.data()}}, 0, -1).ok());
  EXPECT_EQ(after, before);
  absl::StatusOr<std::vector<v1::GetStatusResponse>> status = op->GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  for (const v1::GetStatusResponse& shard : *status) {
    ASSERT_EQ(shard.workers_size(), 1);
    EXPECT_EQ(shard.workers(0).worker_index(), 0);
    EXPECT_TRUE(shard.workers(0).live());
  }
  EXPECT_TRUE(alice->Heartbeat(0, stats).ok());
  // Mallory may be a worker of her own.
  EXPECT_TRUE(mallory->RegisterWorker(1, "h", "cpu").ok());
}

}  // namespace
}  // namespace testing
}  // namespace ps
