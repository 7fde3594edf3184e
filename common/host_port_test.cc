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

}  // namespace
}  // namespace ps
