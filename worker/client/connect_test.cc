#include "worker/client/connect.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

// The messages are gRPC's own (1.51, Debian 12) for each cause.
TEST(ExplainUnreachableTest, NamesTheCauseAndTheFix) {
  EXPECT_THAT(ExplainUnreachable("127.0.0.1:50051",
                                 absl::UnavailableError(
                                     "failed to connect to all addresses; last error: UNKNOWN: "
                                     "ipv4:127.0.0.1:50051: Failed to connect to remote host: "
                                     "Connection refused")),
              HasSubstr("connection refused: nothing listens on port 50051 of 127.0.0.1; is "
                        "ps_server running there"));
  EXPECT_THAT(ExplainUnreachable("nosuch.invalid:50051",
                                 absl::UnavailableError(
                                     "DNS resolution failed for nosuch.invalid:50051: C-ares "
                                     "status is not ARES_SUCCESS qtype=A name=nosuch.invalid "
                                     "is_balancer=0: Domain name not found")),
              HasSubstr("DNS: the name nosuch.invalid does not resolve"));
  EXPECT_THAT(ExplainUnreachable("127.0.0.1:9090",
                                 absl::UnavailableError("Trying to connect an http1.x server")),
              HasSubstr("speaks HTTP/1, not gRPC: probably the shard's --metrics_port"));
  EXPECT_THAT(ExplainUnreachable("[::1]:50051",
                                 absl::UnavailableError("failed to connect to all addresses; "
                                                        "last error: UNKNOWN: ipv6:[::1]:50051: "
                                                        "Ssl handshake failed: SSL_ERROR_SSL")),
              HasSubstr("TLS handshake with [::1]:50051 failed"));
  EXPECT_THAT(ExplainUnreachable("10.0.0.9:50051", absl::DeadlineExceededError("Deadline Exceeded")),
              HasSubstr("no answer from 10.0.0.9:50051: the host is down, or a firewall drops "
                        "packets to port 50051"));
  EXPECT_THAT(ExplainUnreachable("127.0.0.1:50051",
                                 absl::UnauthenticatedError("a token is required")),
              HasSubstr("give --token_file or PS_TOKEN"));
}

TEST(MayBeStartingTest, OnlyUnavailableAndDeadline) {
  EXPECT_TRUE(MayBeStarting(absl::UnavailableError("x")));
  EXPECT_TRUE(MayBeStarting(absl::DeadlineExceededError("x")));
  EXPECT_FALSE(MayBeStarting(absl::UnauthenticatedError("x")));
  EXPECT_FALSE(MayBeStarting(absl::UnimplementedError("x")));
  EXPECT_FALSE(MayBeStarting(absl::UnavailableError(
      "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:9090: "
      "Failed parsing HTTP/2")));
}

TEST(CheckShardIdentityTest, NamesAMissingShardAndTheOrder) {
  EXPECT_TRUE(CheckShardIdentity({"a:1", "b:2"}, 1, 1, 2).ok());

  absl::Status s = CheckShardIdentity({"a:1"}, 0, 0, 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("--servers lists 1 shard (a:1) but a:1 says the job has 2"));

  s = CheckShardIdentity({"b:2", "a:1"}, 0, 1, 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("--servers lists b:2 as shard 0 but it is shard 1 of 2"));
}

}  // namespace
}  // namespace ps
