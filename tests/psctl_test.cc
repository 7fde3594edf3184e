// Runs the psctl binary against two real ps_server processes: status as text and JSON,
// watch, checkpoint without a checkpoint directory, a killed shard, an unreachable
// server, and usage errors, each with its exit status.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.grpc.pb.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct PsctlRun {
  int code = -1;
  std::string output;  // stdout and stderr together
};

class PsctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(cluster_.Start(2, dir_).ok());
  }

  // Creates a dense table on both shards, as a worker does.
  void CreateTable(const std::string& name, int64_t elements) {
    v1::CreateTableRequest request;
    request.mutable_spec()->set_name(name);
    request.mutable_spec()->set_kind(v1::DENSE);
    request.mutable_spec()->add_shape(elements);
    request.mutable_spec()->mutable_optimizer()->set_kind(v1::OptimizerSpec::SGD);
    request.mutable_spec()->mutable_optimizer()->set_learning_rate(0.1f);
    request.mutable_spec()->set_consistency(v1::SYNC);
    for (const std::string& address : cluster_.addresses()) {
      auto stub = v1::ParameterServer::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      v1::CreateTableResponse response;
      grpc::Status s = stub->CreateTable(&context, request, &response);
      ASSERT_TRUE(s.ok()) << address << ": " << s.error_message();
    }
  }

  PsctlRun Psctl(std::vector<std::string> args) {
    args.insert(args.begin(), RunfilePath("psctl/psctl"));
    const std::string log = absl::StrCat(dir_, "/psctl-", runs_++, ".log");
    absl::StatusOr<Process> p = Process::Start(args, log);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    absl::StatusOr<int> code = p->Wait(absl::Seconds(20));
    EXPECT_TRUE(code.ok()) << code.status();
    return {code.ok() ? *code : -1, p->Log()};
  }

  std::string Servers() const { return "--servers=" + cluster_.servers_flag(); }

  std::string dir_;
  ServerCluster cluster_;
  int runs_ = 0;
};

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(PsctlTest, StatusListsEveryShardAndTable) {
  CreateTable("weights", 32768);  // 128 KiB: split over both shards
  const PsctlRun r = Psctl({Servers(), "status"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("2 shards (2 reachable), 1 tables"));
  for (int i = 0; i < 2; ++i) {
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat(i, "      ", cluster_.addresses()[i], "  yes")))
        << r.output;
  }
  EXPECT_THAT(r.output, HasSubstr("weights  dense[32768]  sync  0      16384"));
  EXPECT_THAT(r.output, HasSubstr("weights  dense[32768]  sync  1      16384"));
  EXPECT_THAT(r.output, Not(HasSubstr("psctl:")));
}

TEST_F(PsctlTest, StatusJsonParsesBackIntoClusterStatus) {
  CreateTable("weights", 32768);
  const PsctlRun r = Psctl({Servers(), "status", "--json"});
  ASSERT_EQ(r.code, 0) << r.output;
  v1::ClusterStatusResponse cluster;
  const auto parsed = google::protobuf::util::JsonStringToMessage(r.output, &cluster);
  ASSERT_TRUE(parsed.ok()) << parsed.ToString() << "\n" << r.output;
  ASSERT_EQ(cluster.shards_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(cluster.shards(i).address(), cluster_.addresses()[i]);
    EXPECT_TRUE(cluster.shards(i).reachable());
    EXPECT_EQ(cluster.shards(i).status().shard_index(), i);
    ASSERT_EQ(cluster.shards(i).status().tables_size(), 1);
    EXPECT_EQ(cluster.shards(i).status().tables(0).elements_on_shard(), 16384);
  }
}

TEST_F(PsctlTest, WatchWithCountPrintsThatManySnapshots) {
  const PsctlRun r = Psctl({Servers(), "watch", "--count=2", "--interval=100ms"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(Count(r.output, "cluster status at "), 2) << r.output;
  EXPECT_EQ(Count(r.output, "\n----\n"), 1) << r.output;  // not a TTY: separated, not redrawn
  EXPECT_EQ(Count(r.output, "\033[2J"), 0);
}

TEST_F(PsctlTest, KilledShardFailsStatusAndIsNamed) {
  cluster_.shard(1).Signal(SIGKILL);
  ASSERT_TRUE(cluster_.shard(1).Wait(absl::Seconds(5)).ok());
  const std::string dead = cluster_.addresses()[1];
  const PsctlRun r = Psctl({Servers(), "status"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("2 shards (1 reachable)"));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("1      ", dead, "  no")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("psctl: shard 1: cannot reach ", dead)));
  // The table comes first, the error line after it.
  EXPECT_LT(r.output.find("SHARD"), r.output.find("psctl: shard 1"));
}

TEST_F(PsctlTest, FirstServerDownAsksTheNext) {
  cluster_.shard(0).Signal(SIGKILL);
  ASSERT_TRUE(cluster_.shard(0).Wait(absl::Seconds(5)).ok());
  const PsctlRun r = Psctl({Servers(), "tables"});
  EXPECT_EQ(r.code, 1) << r.output;  // shard 0 is still unreachable: named, exit 1
  EXPECT_THAT(r.output, HasSubstr("no tables"));
  EXPECT_THAT(r.output,
              HasSubstr(absl::StrCat("psctl: shard 0: cannot reach ", cluster_.addresses()[0])));
}

TEST_F(PsctlTest, UnreachableServerExitsOneNamingIt) {
  absl::StatusOr<PortReservation> unused = PortReservation::Reserve();  // nothing listens
  ASSERT_TRUE(unused.ok());
  const std::string address = absl::StrCat("127.0.0.1:", unused->port());
  const PsctlRun r = Psctl({"--servers=" + address, "status"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("psctl: cannot reach ", address,
                                               ": failed to connect to all addresses")));
}

TEST_F(PsctlTest, CheckpointWithoutCheckpointDirFails) {
  const PsctlRun r = Psctl({Servers(), "checkpoint"});
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(r.output, HasSubstr("--checkpoint_dir"));
}

TEST_F(PsctlTest, ServersComeFromTheEnvironment) {
  setenv("PS_SERVERS", cluster_.servers_flag().c_str(), 1);
  const PsctlRun r = Psctl({"workers"});
  unsetenv("PS_SERVERS");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no workers"));
}

TEST_F(PsctlTest, UsageErrorsExitTwo) {
  PsctlRun r = Psctl({Servers(), "frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("psctl: unknown command 'frobnicate'"));
  r = Psctl({"status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("psctl: no servers"));
  r = Psctl({Servers(), "--no_such_flag", "status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("psctl: unknown flag --no_such_flag"));
  r = Psctl({Servers(), "--count=many", "watch"});
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace testing
}  // namespace ps
