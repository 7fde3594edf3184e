// Listening defaults (docs/security.md): a ps_server or ps_worker started without an
// address listens on 127.0.0.1 only, gRPC, metrics and health services alike, so a
// daemon started by hand is not reachable from the network until told to be. The
// listening sockets are read from /proc/net/tcp{,6}.
#include <signal.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

// A local address as /proc/net/tcp{,6} writes it (hex, in memory order): "127.0.0.1" for
// IPv4 loopback (also v4-mapped, as gRPC's dual-stack sockets show it), "any" for
// 0.0.0.0 or ::, else the hex as it stands.
std::string Readable(const std::string& hex) {
  std::string v4 = hex;
  if (hex.size() == 32 && hex.substr(0, 24) == "0000000000000000FFFF0000") v4 = hex.substr(24);
  if (v4 == "0100007F") return "127.0.0.1";
  if (hex.find_first_not_of('0') == std::string::npos) return "any";
  return hex;
}

// The local addresses of sockets listening on `port`.
std::vector<std::string> ListeningOn(int port) {
  std::vector<std::string> addresses;
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const size_t colon = local.find(':');
      if (state == "0A" &&
          std::stoul(local.substr(colon + 1), nullptr, 16) == static_cast<unsigned>(port)) {
        addresses.push_back(Readable(local.substr(0, colon)));
      }
    }
  }
  return addresses;
}

constexpr char kLoopback[] = "127.0.0.1";
constexpr char kAny[] = "any";

TEST(ListenDefaultsTest, AServerStartedWithoutAnAddressListensOnLoopbackOnly) {
  const std::string dir = TempDir("listen-server");
  absl::StatusOr<Process> server =
      Process::Start({RunfilePath("server/ps_server"), "--port=0", "--port_file=" + dir + "/port",
                      "--metrics_port=0", "--metrics_port_file=" + dir + "/metrics_port"},
                     dir + "/server.log");
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<int> port = WaitForPortFile(dir + "/port", absl::Seconds(30));
  ASSERT_TRUE(port.ok()) << port.status() << server->Log();
  absl::StatusOr<int> metrics = WaitForPortFile(dir + "/metrics_port", absl::Seconds(30));
  ASSERT_TRUE(metrics.ok()) << metrics.status() << server->Log();
  EXPECT_EQ(ListeningOn(*port), std::vector<std::string>{kLoopback}) << server->Log();
  EXPECT_EQ(ListeningOn(*metrics), std::vector<std::string>{kLoopback}) << server->Log();
  server->Signal(SIGTERM);
  absl::StatusOr<int> code = server->Wait(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();

  // Every interface without TLS is refused unless plaintext is chosen explicitly.
  absl::StatusOr<Process> refused = Process::Start(
      {RunfilePath("server/ps_server"), "--host=0.0.0.0", "--port=0"}, dir + "/refused.log");
  ASSERT_TRUE(refused.ok()) << refused.status();
  absl::StatusOr<int> refused_code = refused->Wait(absl::Seconds(30));
  ASSERT_TRUE(refused_code.ok()) << refused_code.status();
  EXPECT_NE(*refused_code, 0);
  EXPECT_NE(refused->Log().find("--host=0.0.0.0 is reachable from other machines, and this "
                                "shard has no TLS"),
            std::string::npos)
      << refused->Log();
  absl::StatusOr<Process> open =
      Process::Start({RunfilePath("server/ps_server"), "--host=0.0.0.0", "--plaintext", "--port=0",
                      "--port_file=" + dir + "/open_port"},
                     dir + "/open.log");
  ASSERT_TRUE(open.ok()) << open.status();
  port = WaitForPortFile(dir + "/open_port", absl::Seconds(30));
  ASSERT_TRUE(port.ok()) << port.status() << open->Log();
  EXPECT_EQ(ListeningOn(*port), std::vector<std::string>{kAny}) << open->Log();
  open->Signal(SIGTERM);
  ASSERT_TRUE(open->Wait(absl::Seconds(30)).ok());
}

TEST(ListenDefaultsTest, AWorkersHealthServiceListensOnLoopbackOnly) {
  const std::string dir = TempDir("listen-worker");
  absl::StatusOr<PortReservation> nobody = PortReservation::Reserve();  // no server there
  ASSERT_TRUE(nobody.ok()) << nobody.status();
  absl::StatusOr<Process> worker = Process::Start(
      {RunfilePath("worker/ps_worker"), absl::StrCat("--servers=127.0.0.1:", nobody->port()),
       "--device=cpu", "--health_port=0", "--health_port_file=" + dir + "/health_port"},
      dir + "/worker.log");
  ASSERT_TRUE(worker.ok()) << worker.status();
  absl::StatusOr<int> health = WaitForPortFile(dir + "/health_port", absl::Seconds(60));
  ASSERT_TRUE(health.ok()) << health.status() << worker->Log();
  EXPECT_EQ(ListeningOn(*health), std::vector<std::string>{kLoopback}) << worker->Log();
  worker->Signal(SIGKILL);
  ASSERT_TRUE(worker->Wait(absl::Seconds(30)).ok());
}

}  // namespace
}  // namespace testing
}  // namespace ps
