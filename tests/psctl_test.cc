// Runs the psctl binary against two real ps_server processes: status as text and JSON,
// watch, checkpoint without a checkpoint directory, export of dense and sparse tables, a
// killed shard, an unreachable server, and usage errors, each with its exit status.
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
#include "common/npz.h"
#include "common/placement.h"
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

  // Creates a sparse table on both shards and gives it rows (keys k, values {k, -k}), each
  // on the shard that holds its key.
  void CreateSparseWithRows(const std::string& name, const std::vector<int64_t>& keys) {
    v1::CreateTableRequest create;
    create.mutable_spec()->set_name(name);
    create.mutable_spec()->set_kind(v1::SPARSE);
    create.mutable_spec()->set_row_width(2);
    create.mutable_spec()->mutable_optimizer()->set_kind(v1::OptimizerSpec::SGD);
    create.mutable_spec()->mutable_optimizer()->set_learning_rate(0.1f);
    create.mutable_spec()->set_consistency(v1::ASYNC);
    const std::vector<std::string> addresses = cluster_.addresses();
    for (int shard = 0; shard < static_cast<int>(addresses.size()); ++shard) {
      auto stub = v1::ParameterServer::NewStub(
          grpc::CreateChannel(addresses[shard], grpc::InsecureChannelCredentials()));
      grpc::ClientContext context;
      v1::CreateTableResponse created;
      ASSERT_TRUE(stub->CreateTable(&context, create, &created).ok());
      v1::AssignRequest assign;
      v1::SparseRows* rows = assign.add_sparse();
      rows->set_table(name);
      std::vector<float> values;
      for (int64_t k : keys) {
        if (ShardForKey(k, static_cast<int>(addresses.size())) != shard) continue;
        rows->add_keys(k);
        values.push_back(static_cast<float>(k));
        values.push_back(-static_cast<float>(k));
      }
      rows->set_values(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
      grpc::ClientContext assign_context;
      v1::AssignResponse assigned;
      grpc::Status s = stub->Assign(&assign_context, assign, &assigned);
      ASSERT_TRUE(s.ok()) << addresses[shard] << ": " << s.error_message();
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

TEST_F(PsctlTest, ExportWritesDenseAndSparseTablesThatReadBack) {
  CreateTable("w", 10);
  const std::vector<int64_t> keys = {3, 17, 40, 1 << 20, -5};
  CreateSparseWithRows("emb", keys);
  const std::string out = dir_ + "/model.npz";
  const PsctlRun r = Psctl({Servers(), "export", "--out=" + out});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("emb: 10 values, version 0"));
  EXPECT_THAT(r.output, HasSubstr("w: 10 values, version 0"));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("wrote ", out, ": 2 tables, 20 values")));
  std::vector<NpzMember> extra;
  absl::StatusOr<std::vector<NpyArray>> arrays = ReadNpz(out, &extra);
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  ASSERT_EQ(arrays->size(), 3u);
  const NpyArray& k = (*arrays)[0];
  const NpyArray& v = (*arrays)[1];
  const NpyArray& w = (*arrays)[2];
  EXPECT_EQ(k.name, "emb/keys");
  EXPECT_EQ(v.name, "emb/values");
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.dtype, "<f4");
  EXPECT_EQ(w.shape, std::vector<int64_t>{10});
  EXPECT_EQ(w.data, std::string(40, '\0'));  // the default initializer: zeros
  ASSERT_EQ(k.shape, std::vector<int64_t>{5});
  ASSERT_EQ(v.shape, (std::vector<int64_t>{5, 2}));
  const int64_t* got_keys = reinterpret_cast<const int64_t*>(k.data.data());
  const float* got_rows = reinterpret_cast<const float*>(v.data.data());
  std::vector<int64_t> seen(got_keys, got_keys + 5);
  EXPECT_THAT(seen, ::testing::UnorderedElementsAreArray(keys));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(got_rows[2 * i], static_cast<float>(got_keys[i]));
    EXPECT_EQ(got_rows[2 * i + 1], -static_cast<float>(got_keys[i]));
  }
  ASSERT_EQ(extra.size(), 1u);
  EXPECT_EQ(extra[0].name, "ps_tables.json");
  EXPECT_THAT(extra[0].data, HasSubstr("\"name\": \"w\", \"version\": 0"));
  EXPECT_THAT(extra[0].data, HasSubstr("\"kind\":\"SPARSE\""));
}

TEST_F(PsctlTest, ExportNeedsAFileEveryShardAndTables) {
  PsctlRun r = Psctl({Servers(), "export"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.output, HasSubstr("psctl: export needs --out=FILE (an .npz file to write)"));
  const std::string out = dir_ + "/model.npz";
  r = Psctl({Servers(), "export", "--out=" + out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output,
              HasSubstr("psctl: export failed: NOT_FOUND: the job holds no tables yet: nothing to export"));
  CreateTable("w", 10);
  cluster_.shard(1).Signal(SIGKILL);
  ASSERT_TRUE(cluster_.shard(1).Wait(absl::Seconds(5)).ok());
  r = Psctl({Servers(), "export", "--out=" + out});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("psctl: export failed: UNAVAILABLE: shard 1 (",
                                               cluster_.addresses()[1], ") could not be asked")));
  EXPECT_FALSE(ReadNpz(out).ok()) << "a failed export wrote " << out;
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
