// PsServer's own contract: the health service follows SetReady(), the Admin service is
// always served, and bad peer lists are rejected at Start().
#include "server/rpc/ps_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/checkpoint/checkpoint_manager.h"
#include "gmock/gmock.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

constexpr int kServing = 1;
constexpr int kNotServing = 2;

// Calls grpc.health.v1.Health/Check for `service` and returns the reply's status field
// (HealthCheckResponse.status, field 1), or -(gRPC code) when the call fails.
int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  // HealthCheckRequest{service}: field 1, length-delimited (names here are < 128 bytes);
  // the empty name is the empty message.
  const std::string body =
      service.empty() ? "" : std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  grpc::Slice slice(body);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  grpc::Status status;
  absl::Notification done;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                    &reply, [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  grpc::Slice bytes;
  if (!reply.DumpToSingleSlice(&bytes).ok()) return -100;
  const std::string got(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  if (got.size() != 2 || got[0] != '\x08') return -101;
  return got[1];
}

TEST(PsServerTest, HealthIsNotServingUntilReady) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.start_not_ready = true;
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(channel, ""), kNotServing);
  EXPECT_EQ(HealthStatus(channel, "ps.v1.ParameterServer"), kNotServing);
  EXPECT_EQ(HealthStatus(channel, "ps.v1.Admin"), kServing);  // operators may look meanwhile
  (*server)->SetReady(true);
  EXPECT_EQ(HealthStatus(channel, ""), kServing);
  EXPECT_EQ(HealthStatus(channel, "ps.v1.ParameterServer"), kServing);
  (*server)->SetReady(false);
  EXPECT_EQ(HealthStatus(channel, ""), kNotServing);
}

// The plaintext health-only port (for probes that cannot speak TLS) follows the main
// port's readiness, and goes NOT_SERVING when the shard stops.
TEST(PsServerTest, TheHealthOnlyPortMirrorsTheMainPort) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.start_not_ready = true;
  options.health_port = 0;
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->health_port(), 0);
  auto health = grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*server)->health_port()),
                                    grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(health, ""), kNotServing);
  (*server)->SetReady(true);
  EXPECT_EQ(HealthStatus(health, ""), kServing);
  (*server)->SetReady(false);
  EXPECT_EQ(HealthStatus(health, ""), kNotServing);
  (*server)->SetReady(true);
  (*server)->Shutdown();
  EXPECT_EQ(HealthStatus(health, ""), kNotServing);
}

TEST(PsServerTest, ReadyByDefault) {
  ServerOptions options;
  options.host = "127.0.0.1";
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(channel, ""), kServing);
  EXPECT_EQ(HealthStatus(channel, "ps.v1.ParameterServer"), kServing);
  EXPECT_EQ(HealthStatus(channel, "no.such.Service"), -static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ((*server)->metrics_port(), -1);
}

TEST(PsServerTest, PeersOfTheWrongLengthAreInvalidArgument) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.num_shards = 2;
  options.peers = {"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"};
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("peers lists 3 addresses but num_shards=2"));
}

std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/" + name;
  std::system(("rm -rf '" + dir + "'").c_str());
  return dir;
}

absl::Status CreateSyncTable(PsServer* server, const std::string& name) {
  v1::CreateTableRequest request;
  v1::TableSpec* spec = request.mutable_spec();
  spec->set_name(name);
  spec->set_kind(v1::DENSE);
  spec->add_shape(8);
  spec->mutable_optimizer()->set_kind(v1::OptimizerSpec::SGD);
  spec->mutable_optimizer()->set_learning_rate(0.1f);
  spec->set_consistency(v1::SYNC);
  v1::CreateTableResponse response;
  return server->store()->CreateTable(request, &response);
}

// The last checkpoint could not be written (its directory became a file): the shutdown
// says so, and ps_server then exits 1 rather than 0 as if the state were saved.
TEST(PsServerTest, AFailedFinalCheckpointIsTheShutdownStatus) {
  const std::string dir = FreshDir("final-checkpoint-fails");
  ServerOptions options;
  options.host = "127.0.0.1";
  options.checkpoint.dir = dir;
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(CreateSyncTable(server->get(), "w").ok());
  ASSERT_EQ(std::system(("rm -rf '" + dir + "' && touch '" + dir + "'").c_str()), 0);
  (*server)->Shutdown();
  (*server)->Wait();
  EXPECT_FALSE((*server)->shutdown_status().ok());
  EXPECT_THAT((*server)->shutdown_status().message(), HasSubstr("final checkpoint failed"));
}

// A checkpoint request waiting for a version no step will reach (training stopped) no
// longer holds a stopping shard up (it took 59 s before): it is answered UNAVAILABLE at
// once, and the final checkpoint is written.
TEST(PsServerTest, ShutdownAnswersACheckpointWaitingForAFutureVersion) {
  const std::string dir = FreshDir("pending-checkpoint");
  ServerOptions options;
  options.host = "127.0.0.1";
  options.checkpoint.dir = dir;
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(CreateSyncTable(server->get(), "w").ok());
  absl::Status pending;
  std::thread waiter([&] {
    pending = (*server)->checkpoints()->Checkpoint(5, absl::Seconds(60)).status();
  });
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  (*server)->Shutdown();
  (*server)->Wait();
  waiter.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(pending.code(), absl::StatusCode::kUnavailable) << pending;
  EXPECT_THAT(pending.message(), HasSubstr("is stopping"));
  EXPECT_TRUE((*server)->shutdown_status().ok()) << (*server)->shutdown_status();
}

}  // namespace
}  // namespace ps
