// A stock gRPC client that is not ours (Python's grpcio, running tests/grpc_interop.py)
// checks a real ps_server's health service and lists its services through reflection,
// as Kubernetes probes, grpc_health_probe and grpcurl do. Skipped where no python3 with
// the grpc module is installed (Debian: python3-grpcio).
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

// Exit status of grpc_interop.py when the grpc module is missing.
constexpr int kNoGrpcModule = 77;

// The first python3 that can import grpc, or "". Debian's python3-grpcio is installed
// for /usr/bin/python3, which need not be the first python3 on PATH.
std::string FindPythonWithGrpc(const std::string& dir) {
  for (const std::string python : {"/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"}) {
    if (access(python.c_str(), X_OK) != 0) continue;
    absl::StatusOr<Process> p = Process::Start({python, "-c", "import grpc"}, dir + "/probe.log");
    if (!p.ok()) continue;
    absl::StatusOr<int> code = p->Wait(absl::Seconds(20));
    if (code.ok() && *code == 0) return python;
  }
  return "";
}

TEST(GrpcInteropTest, StockPythonClientChecksHealthAndListsServices) {
  const std::string dir = TempDir("grpc-interop");
  const std::string python = FindPythonWithGrpc(dir);
  if (python.empty()) GTEST_SKIP() << "no python3 with the grpc module (python3-grpcio)";

  ServerCluster cluster;
  ASSERT_TRUE(cluster.Start(1, dir).ok());
  absl::StatusOr<Process> p = Process::Start(
      {python, RunfilePath("tests/grpc_interop.py"), cluster.addresses()[0]},
      dir + "/interop.log");
  ASSERT_TRUE(p.ok()) << p.status();
  absl::StatusOr<int> code = p->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  const std::string log = p->Log();
  if (*code == kNoGrpcModule) GTEST_SKIP() << log;
  EXPECT_EQ(*code, 0) << log;
  EXPECT_THAT(log, HasSubstr("health '': 1"));
  EXPECT_THAT(log, HasSubstr("health 'ps.v1.ParameterServer': 1"));
  EXPECT_THAT(log, HasSubstr("health 'no.such.Service': NOT_FOUND"));
  EXPECT_THAT(log, HasSubstr("grpc.health.v1.Health"));
  EXPECT_THAT(log, HasSubstr("ps.v1.Admin ps.v1.ParameterServer"));  // sorted, adjacent
  EXPECT_THAT(log, HasSubstr("ps.v1.Admin methods: ClusterStatus Watch Checkpoint"));
  EXPECT_THAT(log, HasSubstr("\nok\n"));
}

}  // namespace
}  // namespace testing
}  // namespace ps
