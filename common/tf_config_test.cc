#include "common/tf_config.h"

#include <cstdlib>

#include "absl/flags/flag.h"
#include "common/flags_env.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// The flags ApplyTfConfigFromEnv sets, as ps_server and ps_worker define them.
ABSL_FLAG(std::string, servers, "", "");
ABSL_FLAG(int, port, 50051, "");
ABSL_FLAG(int, shard_index, 0, "");
ABSL_FLAG(int, worker_index, 0, "");
ABSL_FLAG(int, num_workers, 1, "");

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Exactly what Kubeflow's training operator writes for a TFJob "mnist" in namespace
// "default" with 2 PS and 3 Worker replicas whose container port "tfjob-port" is 50051.
std::string KubeflowTfConfig(const std::string& type, int index) {
  return "{\"cluster\":{\"ps\":[\"mnist-ps-0.default.svc:50051\",\"mnist-ps-1.default.svc:50051\"],"
         "\"worker\":[\"mnist-worker-0.default.svc:50051\",\"mnist-worker-1.default.svc:50051\","
         "\"mnist-worker-2.default.svc:50051\"]},"
         "\"task\":{\"type\":\"" +
         type + "\",\"index\":" + std::to_string(index) + "},\"environment\":\"cloud\"}";
}

TEST(ParseTfConfigTest, PsTaskGivesShardIndexAndOwnPort) {
  absl::StatusOr<ClusterFromTfConfig> c = ParseTfConfig(KubeflowTfConfig("ps", 1));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->role, TfRole::kPs);
  EXPECT_EQ(c->index, 1);
  EXPECT_EQ(c->port, 50051);
  EXPECT_THAT(c->ps, ElementsAre("mnist-ps-0.default.svc:50051", "mnist-ps-1.default.svc:50051"));
  EXPECT_EQ(c->num_workers, 3);
}

TEST(ParseTfConfigTest, WorkerTaskGivesWorkerIndexAndCount) {
  absl::StatusOr<ClusterFromTfConfig> c = ParseTfConfig(KubeflowTfConfig("worker", 2));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->role, TfRole::kWorker);
  EXPECT_EQ(c->index, 2);
  EXPECT_EQ(c->num_workers, 3);
  EXPECT_EQ(c->ps.size(), 2u);
}

TEST(ParseTfConfigTest, ReplicaTypesMatchInAnyCase) {
  // Older operators and hand-written configs keep the TFJob spelling "PS"/"Worker".
  absl::StatusOr<ClusterFromTfConfig> c = ParseTfConfig(R"({
      "cluster": {"PS": ["10.0.0.1:7000"], "Worker": ["10.0.0.2:7001", "10.0.0.3:7001"]},
      "task": {"type": "Worker", "index": 1}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->role, TfRole::kWorker);
  EXPECT_EQ(c->index, 1);
  EXPECT_EQ(c->num_workers, 2);
  EXPECT_EQ(c->port, 7001);
  EXPECT_THAT(c->ps, ElementsAre("10.0.0.1:7000"));
}

TEST(ParseTfConfigTest, ChiefIsWorkerZeroAndShiftsTheWorkers) {
  const std::string cluster =
      R"("cluster": {"chief": ["j-chief-0:2222"], "ps": ["j-ps-0:2222"],
                     "worker": ["j-worker-0:2222", "j-worker-1:2222"]})";
  absl::StatusOr<ClusterFromTfConfig> chief =
      ParseTfConfig("{" + cluster + R"(, "task": {"type": "chief", "index": 0}})");
  ASSERT_TRUE(chief.ok()) << chief.status();
  EXPECT_EQ(chief->role, TfRole::kWorker);
  EXPECT_EQ(chief->index, 0);
  EXPECT_EQ(chief->num_workers, 3);
  absl::StatusOr<ClusterFromTfConfig> worker =
      ParseTfConfig("{" + cluster + R"(, "task": {"type": "worker", "index": 1}})");
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_EQ(worker->index, 2);
  EXPECT_EQ(worker->num_workers, 3);
}

TEST(ParseTfConfigTest, MasterCountsAsChief) {
  absl::StatusOr<ClusterFromTfConfig> c = ParseTfConfig(R"({
      "cluster": {"master": ["j-master-0:2222"], "ps": ["j-ps-0:2222"], "worker": ["j-worker-0:2222"]},
      "task": {"type": "worker", "index": 0}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->index, 1);
  EXPECT_EQ(c->num_workers, 2);
}

TEST(ParseTfConfigTest, MissingIndexMeansZeroAndIPv6AddressesWork) {
  absl::StatusOr<ClusterFromTfConfig> c =
      ParseTfConfig(R"({"cluster": {"ps": ["[fd00::1]:50051"]}, "task": {"type": "ps"}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->index, 0);
  EXPECT_EQ(c->port, 50051);
  EXPECT_EQ(c->num_workers, 0);
}

void ExpectInvalid(const std::string& json, const std::string& message) {
  absl::StatusOr<ClusterFromTfConfig> c = ParseTfConfig(json);
  ASSERT_FALSE(c.ok()) << json;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(message)) << json;
  EXPECT_THAT(std::string(c.status().message()), ::testing::StartsWith("TF_CONFIG: "));
}

TEST(ParseTfConfigTest, UnknownTaskTypeIsNamed) {
  ExpectInvalid(KubeflowTfConfig("foo", 0), "task.type 'foo' is neither ps nor worker");
  ExpectInvalid(R"({"cluster": {"ps": ["a:1"], "evaluator": ["e:1"]},
                    "task": {"type": "evaluator", "index": 0}})",
                "task.type 'evaluator' is neither ps nor worker");
}

TEST(ParseTfConfigTest, MalformedJsonIsRejected) {
  ExpectInvalid("", "not a JSON object");
  ExpectInvalid("{\"cluster\": ", "not a JSON object");
  ExpectInvalid("[1, 2]", "not a JSON object");
}

TEST(ParseTfConfigTest, MissingPartsAreNamed) {
  ExpectInvalid(R"({"task": {"type": "ps", "index": 0}})", "'cluster' is missing");
  ExpectInvalid(R"({"cluster": [], "task": {"type": "ps"}})", "'cluster' is not an object");
  ExpectInvalid(R"({"cluster": {"worker": ["w:1"]}, "task": {"type": "worker", "index": 0}})",
                "cluster.ps is missing or empty");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"]}})", "'task' is missing");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"]}, "task": {"index": 0}})", "task.type is missing");
  ExpectInvalid(R"({"cluster": {"ps": "p:1"}, "task": {"type": "ps"}})",
                "cluster.ps is not a list");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1", 7]}, "task": {"type": "ps"}})",
                "cluster.ps[1] is not a host:port string");
}

TEST(ParseTfConfigTest, BadIndexIsRejected) {
  ExpectInvalid(KubeflowTfConfig("ps", 2), "task.index 2 is out of range: cluster.ps has 2");
  ExpectInvalid(KubeflowTfConfig("worker", 3),
                "task.index 3 is out of range: cluster.worker has 3");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"]}, "task": {"type": "ps", "index": -1}})",
                "task.index is not a non-negative integer");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"]}, "task": {"type": "ps", "index": 0.5}})",
                "task.index is not a non-negative integer");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"]}, "task": {"type": "ps", "index": "0"}})",
                "task.index is not a non-negative integer");
}

TEST(ParseTfConfigTest, AddressesNeedAPort) {
  ExpectInvalid(R"({"cluster": {"ps": ["p:1", "p2"]}, "task": {"type": "ps", "index": 0}})",
                "cluster.ps[1] 'p2' is not host:port");
  ExpectInvalid(R"({"cluster": {"ps": ["p:99999"]}, "task": {"type": "ps", "index": 0}})",
                "cluster.ps[0] 'p:99999' is not host:port");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"], "worker": ["[fd00::2]"]},
                    "task": {"type": "worker", "index": 0}})",
                "cluster.worker[0] '[fd00::2]' is not host:port");
}

TEST(ParseTfConfigTest, UnsupportedShapesAreRejected) {
  // TFJob's enableDynamicWorker: each worker sees only itself.
  ExpectInvalid(R"({"sparseCluster": {"ps": ["p:1"], "worker": {"1": "w1:1"}},
                    "task": {"type": "worker", "index": 1}})",
                "'sparseCluster' (TFJob enableDynamicWorker) is not supported");
  ExpectInvalid(R"({"cluster": {"chief": ["c:1", "c2:1"], "ps": ["p:1"]},
                    "task": {"type": "chief", "index": 0}})",
                "2 chief/master tasks");
  ExpectInvalid(R"({"cluster": {"ps": ["p:1"], "PS": ["p:2"]}, "task": {"type": "ps"}})",
                "replica type 'ps' twice");
}

class ApplyTfConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("TF_CONFIG");
    unsetenv("PS_SHARD_INDEX");
    absl::SetFlag(&FLAGS_servers, "");
    absl::SetFlag(&FLAGS_port, 50051);
    absl::SetFlag(&FLAGS_shard_index, 0);
    absl::SetFlag(&FLAGS_worker_index, 0);
    absl::SetFlag(&FLAGS_num_workers, 1);
  }
  void TearDown() override {
    unsetenv("TF_CONFIG");
    unsetenv("PS_SHARD_INDEX");
  }
};

TEST_F(ApplyTfConfigTest, UnsetChangesNothing) {
  ASSERT_TRUE(ApplyTfConfigFromEnv(TfRole::kPs).ok());
  ASSERT_TRUE(ApplyTfConfigFromEnv(TfRole::kWorker).ok());
  setenv("TF_CONFIG", "", 1);
  ASSERT_TRUE(ApplyTfConfigFromEnv(TfRole::kWorker).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_servers), "");
  EXPECT_EQ(absl::GetFlag(FLAGS_num_workers), 1);
}

TEST_F(ApplyTfConfigTest, SetsServerFlags) {
  setenv("TF_CONFIG",
         R"({"cluster":{"ps":["j-ps-0.ns.svc:7070","j-ps-1.ns.svc:7071"],"worker":["w:1"]},)"
         R"("task":{"type":"ps","index":1}})",
         1);
  absl::Status s = ApplyTfConfigFromEnv(TfRole::kPs);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(absl::GetFlag(FLAGS_servers), "j-ps-0.ns.svc:7070,j-ps-1.ns.svc:7071");
  EXPECT_EQ(absl::GetFlag(FLAGS_shard_index), 1);
  EXPECT_EQ(absl::GetFlag(FLAGS_port), 7071);
}

TEST_F(ApplyTfConfigTest, SetsWorkerFlags) {
  setenv("TF_CONFIG", KubeflowTfConfig("worker", 2).c_str(), 1);
  absl::Status s = ApplyTfConfigFromEnv(TfRole::kWorker);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(absl::GetFlag(FLAGS_servers),
            "mnist-ps-0.default.svc:50051,mnist-ps-1.default.svc:50051");
  EXPECT_EQ(absl::GetFlag(FLAGS_worker_index), 2);
  EXPECT_EQ(absl::GetFlag(FLAGS_num_workers), 3);
}

TEST_F(ApplyTfConfigTest, PsEnvironmentVariablesWinOverTfConfig) {
  // main() applies TF_CONFIG first, then PS_<FLAG>, then the command line.
  setenv("TF_CONFIG", KubeflowTfConfig("ps", 1).c_str(), 1);
  setenv("PS_SHARD_INDEX", "0", 1);
  ASSERT_TRUE(ApplyTfConfigFromEnv(TfRole::kPs).ok());
  ASSERT_TRUE(SetFlagsFromEnv({"shard_index", "port"}).ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_shard_index), 0);
  EXPECT_EQ(absl::GetFlag(FLAGS_port), 50051);
}

TEST_F(ApplyTfConfigTest, WrongRoleAndBadJsonAreInvalidArgument) {
  setenv("TF_CONFIG", KubeflowTfConfig("worker", 0).c_str(), 1);
  absl::Status s = ApplyTfConfigFromEnv(TfRole::kPs);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("this is ps_server"));
  EXPECT_EQ(absl::GetFlag(FLAGS_servers), "");  // nothing set on failure

  setenv("TF_CONFIG", "{not json", 1);
  s = ApplyTfConfigFromEnv(TfRole::kWorker);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("TF_CONFIG: not a JSON object"));
}

}  // namespace
}  // namespace ps
