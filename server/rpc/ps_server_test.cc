// PsServer's own contract: the health service follows SetReady(), the Admin service is
// always served, and bad peer lists are rejected at Start().
#include "server/rpc/ps_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
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

}  // namespace
}  // namespace ps
