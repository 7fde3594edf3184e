// Starts two real shards on loopback ports that know each other and checks the Admin
// service over the wire: the cluster view from either shard, an unreachable peer, Watch,
// and Checkpoint with and without a (fake) checkpointer.
#include "server/rpc/admin_service.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.grpc.pb.h"
#include "server/checkpoint/checkpointer.h"
#include "server/rpc/ps_server.h"
#include "server/table/optimizer.h"
#include "tests/cluster.h"

namespace ps {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// 32768 floats (128 KiB) is over placement's 64 KiB bound: the table is split over both
// shards.
constexpr int64_t kElements = 32768;

// Records the versions it was asked for and reports a checkpoint written at each.
class FakeCheckpointer final : public Checkpointer {
 public:
  explicit FakeCheckpointer(int shard, absl::Status fail_with = absl::OkStatus())
      : shard_(shard), fail_with_(std::move(fail_with)) {}

  absl::StatusOr<v1::CheckpointResponse::Written> Checkpoint(int64_t at_version,
                                                             absl::Duration) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back(at_version);
    if (!fail_with_.ok()) return fail_with_;
    v1::CheckpointResponse::Written w;
    w.set_shard_index(shard_);
    w.set_path(absl::StrCat("/fake/shard-", shard_, "/ckpt-", at_version));
    w.set_version(at_version);
    w.set_bytes(1000 + shard_);
    return w;
  }

  std::vector<int64_t> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  const int shard_;
  const absl::Status fail_with_;
  mutable absl::Mutex mu_;
  std::vector<int64_t> calls_ ABSL_GUARDED_BY(mu_);
};

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

class AdminServiceTest : public ::testing::Test {
 protected:
  // Starts shards 0 and 1 on reserved ports, each knowing both addresses.
  void StartShards(Checkpointer* c0 = nullptr, Checkpointer* c1 = nullptr,
                   const std::function<void(int, ServerOptions*)>& customize = nullptr) {
    std::vector<std::string> peers;
    for (int i = 0; i < 2; ++i) {
      absl::StatusOr<testing::PortReservation> r = testing::PortReservation::Reserve();
      ASSERT_TRUE(r.ok()) << r.status();
      peers.push_back(absl::StrCat("127.0.0.1:", r->port()));
      reserved_.push_back(*std::move(r));
    }
    Checkpointer* checkpointers[2] = {c0, c1};
    for (int i = 0; i < 2; ++i) {
      ServerOptions options;
      options.host = "127.0.0.1";
      options.port = reserved_[i].port();
      options.shard_index = i;
      options.num_shards = 2;
      options.peers = peers;
      options.checkpointer = checkpointers[i];
      if (customize) customize(i, &options);
      reserved_[i].Release();
      absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
      ASSERT_TRUE(server.ok()) << server.status();
      ASSERT_EQ((*server)->address(), peers[i]);
      std::shared_ptr<grpc::Channel> channel =
          grpc::CreateChannel(peers[i], grpc::InsecureChannelCredentials());
      ps_.push_back(v1::ParameterServer::NewStub(channel));
      admin_.push_back(v1::Admin::NewStub(channel));
      servers_.push_back(*std::move(server));
    }
    addresses_ = peers;
  }

  // Creates `name` on both shards, as a worker does.
  void CreateTable(const std::string& name, v1::ConsistencyMode mode) {
    v1::CreateTableRequest request;
    v1::TableSpec* spec = request.mutable_spec();
    spec->set_name(name);
    spec->set_kind(v1::DENSE);
    spec->add_shape(kElements);
    *spec->mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.1f);
    spec->set_consistency(mode);
    for (auto& stub : ps_) {
      grpc::ClientContext context;
      SetDeadline(&context);
      v1::CreateTableResponse response;
      grpc::Status s = stub->CreateTable(&context, request, &response);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }

  v1::ClusterStatusResponse ClusterStatus(int shard) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::ClusterStatusResponse response;
    grpc::Status s = admin_[shard]->ClusterStatus(&context, v1::ClusterStatusRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  grpc::Status Checkpoint(int shard, bool all_shards, v1::CheckpointResponse* response) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CheckpointRequest request;
    request.set_all_shards(all_shards);
    return admin_[shard]->Checkpoint(&context, request, response);
  }

  std::vector<testing::PortReservation> reserved_;
  std::vector<std::string> addresses_;
  std::vector<std::unique_ptr<PsServer>> servers_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> ps_;
  std::vector<std::unique_ptr<v1::Admin::Stub>> admin_;
};

TEST_F(AdminServiceTest, ClusterStatusFromAnyShardShowsEveryShardAndTable) {
  StartShards();
  CreateTable("weights", v1::ASYNC);
  const v1::ClusterStatusResponse c = ClusterStatus(1);
  ASSERT_EQ(c.shards_size(), 2);
  int64_t elements = 0;
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(c.shards(i).address(), addresses_[i]);
    EXPECT_TRUE(c.shards(i).reachable());
    EXPECT_EQ(c.shards(i).error(), "");
    EXPECT_EQ(c.shards(i).status().shard_index(), i);
    EXPECT_EQ(c.shards(i).status().num_shards(), 2);
    ASSERT_EQ(c.shards(i).status().tables_size(), 1);
    EXPECT_EQ(c.shards(i).status().tables(0).spec().name(), "weights");
    EXPECT_GT(c.shards(i).status().tables(0).elements_on_shard(), 0);
    elements += c.shards(i).status().tables(0).elements_on_shard();
  }
  EXPECT_EQ(elements, kElements);
  EXPECT_GT(c.timestamp_ms(), 0);
}

TEST_F(AdminServiceTest, ShutDownPeerIsUnreachableWithItsAddressInTheError) {
  StartShards();
  ASSERT_TRUE(ClusterStatus(1).shards(0).reachable());
  servers_[0].reset();  // shuts shard 0 down; its port stays reserved, so nothing answers
  const absl::Time start = absl::Now();
  const v1::ClusterStatusResponse c = ClusterStatus(1);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // the per-peer deadline is 2 s
  ASSERT_EQ(c.shards_size(), 2);
  EXPECT_FALSE(c.shards(0).reachable());
  EXPECT_EQ(c.shards(0).address(), addresses_[0]);
  EXPECT_THAT(c.shards(0).error(), HasSubstr(absl::StrCat("cannot reach ", addresses_[0])));
  EXPECT_THAT(c.shards(0).error(), HasSubstr("UNAVAILABLE"));
  EXPECT_FALSE(c.shards(0).has_status());
  EXPECT_TRUE(c.shards(1).reachable());
  EXPECT_EQ(c.shards(1).status().shard_index(), 1);
}

TEST_F(AdminServiceTest, WatchSendsExactlyMaxUpdates) {
  StartShards();
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::WatchRequest request;
  request.set_interval_ms(100);
  request.set_max_updates(3);
  const absl::Time start = absl::Now();
  std::unique_ptr<grpc::ClientReader<v1::ClusterStatusResponse>> reader =
      admin_[0]->Watch(&context, request);
  v1::ClusterStatusResponse update;
  int updates = 0;
  while (reader->Read(&update)) {
    ++updates;
    EXPECT_EQ(update.shards_size(), 2);
    EXPECT_TRUE(update.shards(1).reachable());
  }
  grpc::Status s = reader->Finish();
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(updates, 3);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));  // two intervals between three
}

TEST_F(AdminServiceTest, WatchEndsWhenTheClientCancels) {
  StartShards();
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::WatchRequest request;
  request.set_interval_ms(100);  // max_updates 0: until cancelled
  std::unique_ptr<grpc::ClientReader<v1::ClusterStatusResponse>> reader =
      admin_[0]->Watch(&context, request);
  v1::ClusterStatusResponse update;
  ASSERT_TRUE(reader->Read(&update));
  ASSERT_TRUE(reader->Read(&update));
  context.TryCancel();
  while (reader->Read(&update)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(AdminServiceTest, WatchWithNegativeIntervalIsInvalidArgument) {
  StartShards();
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::WatchRequest request;
  request.set_interval_ms(-5);
  std::unique_ptr<grpc::ClientReader<v1::ClusterStatusResponse>> reader =
      admin_[0]->Watch(&context, request);
  v1::ClusterStatusResponse update;
  EXPECT_FALSE(reader->Read(&update));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("interval_ms=-5"));
}

TEST_F(AdminServiceTest, CheckpointWithoutCheckpointerIsFailedPrecondition) {
  StartShards();
  for (bool all_shards : {false, true}) {
    SCOPED_TRACE(all_shards);
    v1::CheckpointResponse response;
    grpc::Status s = Checkpoint(0, all_shards, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(s.error_message(),
              "checkpoints are not configured: start ps_server with --checkpoint_dir");
  }
}

TEST_F(AdminServiceTest, CheckpointAllShardsWritesEveryShardAtTheNewestSyncVersion) {
  FakeCheckpointer c0(0), c1(1);
  StartShards(&c0, &c1);
  CreateTable("synced", v1::SYNC);
  CreateTable("free", v1::ASYNC);

  // One worker, known to shard 0 only, completes step 0 there: shard 0's part of
  // "synced" reaches version 1 while shard 1's stays at 0.
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RegisterWorkerRequest reg;
    reg.set_worker_index(0);
    v1::RegisterWorkerResponse reg_response;
    ASSERT_TRUE(ps_[0]->RegisterWorker(&context, reg, &reg_response).ok());
  }
  const v1::TableStatus* part = nullptr;
  const v1::ClusterStatusResponse before = ClusterStatus(0);
  for (const v1::TableStatus& t : before.shards(0).status().tables()) {
    if (t.spec().name() == "synced") part = &t;
  }
  ASSERT_NE(part, nullptr);
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::PushRequest push;
    push.set_worker_index(0);
    push.set_step(0);
    v1::DenseSlice* slice = push.add_dense();
    slice->set_table("synced");
    slice->set_offset(part->offset());
    slice->set_length(part->elements_on_shard());
    slice->set_values(std::string(part->elements_on_shard() * 4, '\0'));  // zero gradient
    v1::PushResponse response;
    grpc::Status s = ps_[0]->Push(&context, push, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_THAT(response.dense_versions(), ElementsAre(1));
  }
  EXPECT_EQ(MaxSyncVersion(ClusterStatus(1)), 1);

  v1::CheckpointResponse response;
  grpc::Status s = Checkpoint(1, /*all_shards=*/true, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(c0.calls(), ElementsAre(1));
  EXPECT_THAT(c1.calls(), ElementsAre(1));
  ASSERT_EQ(response.written_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(response.written(i).shard_index(), i);
    EXPECT_EQ(response.written(i).version(), 1);
    EXPECT_EQ(response.written(i).path(), absl::StrCat("/fake/shard-", i, "/ckpt-1"));
  }
}

TEST_F(AdminServiceTest, CheckpointOfOneShardUsesTheRequestedVersion) {
  FakeCheckpointer c0(0), c1(1);
  StartShards(&c0, &c1);
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::CheckpointRequest request;
  request.set_at_version(7);
  v1::CheckpointResponse response;
  grpc::Status s = admin_[1]->Checkpoint(&context, request, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(c0.calls().empty());
  EXPECT_THAT(c1.calls(), ElementsAre(7));
  ASSERT_EQ(response.written_size(), 1);
  EXPECT_EQ(response.written(0).shard_index(), 1);
}

TEST_F(AdminServiceTest, CheckpointAllShardsFailureNamesTheShard) {
  FakeCheckpointer c0(0);
  FakeCheckpointer c1(1, absl::FailedPreconditionError("table 'synced' is past version 0"));
  StartShards(&c0, &c1);
  v1::CheckpointResponse response;
  grpc::Status s = Checkpoint(0, /*all_shards=*/true, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            absl::StrCat("shard 1 at ", addresses_[1], ": table 'synced' is past version 0"));
  EXPECT_THAT(c0.calls(), ElementsAre(0));  // no sync tables: both capture now
  EXPECT_THAT(c1.calls(), ElementsAre(0));
}

TEST(AdminServiceAloneTest, ShardWithoutPeersReportsItselfAtItsAddress) {
  ServerOptions options;
  options.host = "127.0.0.1";
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto admin = v1::Admin::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::ClusterStatusResponse c;
  ASSERT_TRUE(admin->ClusterStatus(&context, v1::ClusterStatusRequest(), &c).ok());
  ASSERT_EQ(c.shards_size(), 1);
  EXPECT_EQ(c.shards(0).address(), (*server)->address());
  EXPECT_TRUE(c.shards(0).reachable());
  EXPECT_EQ(c.shards(0).status().num_shards(), 1);
}

TEST(MaxSyncVersionTest, IgnoresAsyncTablesAndUnreachableShards) {
  v1::ClusterStatusResponse c;
  auto add = [&](bool reachable, v1::ConsistencyMode mode, int64_t version) {
    v1::ShardStatus* s = c.add_shards();
    s->set_reachable(reachable);
    v1::TableStatus* t = s->mutable_status()->add_tables();
    t->mutable_spec()->set_consistency(mode);
    t->set_version(version);
  };
  EXPECT_EQ(MaxSyncVersion(c), 0);
  add(true, v1::SYNC, 4);
  add(true, v1::ASYNC, 90);
  add(false, v1::SYNC, 50);
  add(true, v1::SYNC, 6);
  EXPECT_EQ(MaxSyncVersion(c), 6);
}

// Interval checkpoints of sync tables are asked by shard 0 of every shard at a version
// two steps ahead; with no training that version never comes. Stopping shard 0 then must
// not wait for it (the writer's thread, which the stop joins, is in that request): the
// local wait ends and the calls to the peers are cancelled.
TEST_F(AdminServiceTest, AStoppingShardZeroDoesNotWaitForItsIntervalRequest) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/interval-stop";
  StartShards(nullptr, nullptr, [&](int i, ServerOptions* options) {
    options->checkpoint.dir = absl::StrCat(dir, "-", i);
    options->checkpoint.interval = absl::Milliseconds(100);
  });
  CreateTable("synced", v1::SYNC);
  absl::SleepFor(absl::Milliseconds(400));  // a round is waiting for version 2 by now
  const absl::Time start = absl::Now();
  servers_[0]->Shutdown();
  servers_[0]->Wait();
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
  EXPECT_TRUE(servers_[0]->shutdown_status().ok()) << servers_[0]->shutdown_status();
}

}  // namespace
}  // namespace ps
