#include "common/health_server.h"

#include <grpcpp/generic/generic_stub.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

// Calls grpc.health.v1.Health/Check for the whole server and returns the reply's bytes.
std::string Check(int port) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice empty("", 0);  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer reply;
  grpc::Status status;
  absl::Notification done;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                    &reply, [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  EXPECT_TRUE(status.ok()) << status.error_message();
  grpc::Slice bytes;
  if (!reply.DumpToSingleSlice(&bytes).ok()) return "";
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST(HealthServerTest, ReportsServingThenNotServing) {
  absl::StatusOr<std::unique_ptr<HealthServer>> server = HealthServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  EXPECT_EQ(Check((*server)->port()), std::string("\x08\x01", 2));  // SERVING
  (*server)->SetServing(false);
  EXPECT_EQ(Check((*server)->port()), std::string("\x08\x02", 2));  // NOT_SERVING
}

TEST(HealthServerTest, UnbindableAddressIsUnavailable) {
  absl::StatusOr<std::unique_ptr<HealthServer>> server = HealthServer::Start("192.0.2.1", 0);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ps
