#include "common/host_port.h"

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(HostPortTest, IPv6LiteralsGoInBracketsAndNothingElseDoes) {
  EXPECT_EQ(JoinHostPort("127.0.0.1", 50051), "127.0.0.1:50051");
  EXPECT_EQ(JoinHostPort("ps-0.ps", 50051), "ps-0.ps:50051");
  EXPECT_EQ(JoinHostPort("fd00::7", 9090), "[fd00::7]:9090");
  EXPECT_EQ(JoinHostPort("[fd00::7]", 9090), "[fd00::7]:9090");
  EXPECT_EQ(JoinHostPort("0.0.0.0", 0), "0.0.0.0:0");
}

TEST(HostPortTest, LoopbackIsThisMachineOnly) {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"0.0.0.0", "::", "10.0.0.7", "fd00::7", "ps-0.ps", ""}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(HostPortTest, HostOfAnAddress) {
  EXPECT_EQ(HostOf("127.0.0.1:50051"), "127.0.0.1");
  EXPECT_EQ(HostOf("ps-0.ps:50051"), "ps-0.ps");
  EXPECT_EQ(HostOf("[::1]:50051"), "::1");
  EXPECT_EQ(HostOf("localhost"), "localhost");
  EXPECT_EQ(HostOf("fd00::7"), "fd00::7");  // a bare v6 literal has no port
}

TEST(HostPortTest, PlaintextToAnotherMachineIsChosenExplicitly) {
  EXPECT_TRUE(CheckPlaintextTo({"127.0.0.1:1", "localhost:2", "[::1]:3"}, false, false).ok());
  absl::Status s = CheckPlaintextTo({"127.0.0.1:1", "ps-1.ps:50051"}, false, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "shard ps-1.ps:50051 is on another machine and this client has no TLS: give "
            "--tls_ca_file (docs/security.md), or --plaintext to talk to it in the clear");
  EXPECT_TRUE(CheckPlaintextTo({"ps-1.ps:50051"}, /*tls=*/true, false).ok());
  EXPECT_TRUE(CheckPlaintextTo({"ps-1.ps:50051"}, false, /*plaintext=*/true).ok());
}

}  // namespace
}  // namespace ps
