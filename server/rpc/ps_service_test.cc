// Starts a real shard on a loopback port and checks over the wire that requests get the
// right gRPC status, that the server keeps serving after bad requests, and that the
// health and status services answer.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/process_stats_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.grpc.pb.h"
#include "server/rpc/ps_server.h"
#include "server/table/optimizer.h"
#include "server/table/spec_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::ThreadCount;

using ::ps::testing::Decode;
using ::ps::testing::Encode;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::TableSpec DenseSpec(const std::string& name, int64_t n, v1::ConsistencyMode mode) {
  return ::ps::testing::OnesSgdSpec(name, n, mode);
}

class PsServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.port = 0;
    absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::ParameterServer::NewStub(channel_);

    ASSERT_TRUE(CreateTable(DenseSpec("dense", 4, v1::ASYNC)).ok());
    ASSERT_TRUE(CreateTable(DenseSpec("synced", 4, v1::SYNC)).ok());
  }

  // Every call carries a deadline, so a hung server fails the test instead of hanging it.
  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  grpc::Status CreateTable(const v1::TableSpec& spec, v1::CreateTableResponse* out = nullptr) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CreateTableRequest request;
    *request.mutable_spec() = spec;
    v1::CreateTableResponse response;
    grpc::Status s = stub_->CreateTable(&context, request, &response);
    if (out != nullptr) *out = response;
    return s;
  }

  grpc::Status Push(int worker, int64_t step, const std::string& table,
                    const std::string& values_bytes, int64_t length,
                    v1::PushResponse* out = nullptr) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::PushRequest request;
    request.set_worker_index(worker);
    request.set_step(step);
    v1::DenseSlice* slice = request.add_dense();
    slice->set_table(table);
    slice->set_offset(0);
    slice->set_length(length);
    slice->set_values(values_bytes);
    v1::PushResponse response;
    grpc::Status s = stub_->Push(&context, request, &response);
    if (out != nullptr) *out = response;
    return s;
  }

  grpc::Status Pull(const std::string& table, int64_t length, v1::DenseSlice* out,
                    int64_t min_version = 0) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::PullRequest request;
    request.set_worker_index(-1);
    request.set_min_version(min_version);
    v1::DenseSlice* slice = request.add_dense();
    slice->set_table(table);
    slice->set_offset(0);
    slice->set_length(length);
    v1::PullResponse response;
    grpc::Status s = stub_->Pull(&context, request, &response);
    if (s.ok()) {
      EXPECT_EQ(response.dense_size(), 1);
      if (response.dense_size() == 1 && out != nullptr) *out = response.dense(0);
    }
    return s;
  }

  v1::GetStatusResponse GetStatus() {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::GetStatusResponse response;
    grpc::Status s = stub_->GetStatus(&context, v1::GetStatusRequest(), &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  // Checks that the server still serves `table` with all values `value` at `version`.
  void ExpectTable(const std::string& table, float value, int64_t version) {
    v1::DenseSlice slice;
    grpc::Status s = Pull(table, 4, &slice);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_THAT(Decode(slice.values()), ElementsAre(value, value, value, value));
    EXPECT_EQ(slice.version(), version);
  }

  std::unique_ptr<PsServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ParameterServer::Stub> stub_;
};

TEST_F(PsServiceTest, ValidPushThenPullOverTheWire) {
  v1::PushResponse response;
  grpc::Status s = Push(0, 0, "dense", Encode({2, 2, 2, 2}), 4, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response.dense_versions(), ElementsAre(1));
  ExpectTable("dense", 0.0f, 1);
}

TEST_F(PsServiceTest, UnknownTableIsNotFound) {
  grpc::Status s = Pull("missing", 4, nullptr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("'missing'"));
  s = Push(0, 0, "missing", Encode({1, 1, 1, 1}), 4);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("'missing'"));
  ExpectTable("dense", 1.0f, 0);
}

TEST_F(PsServiceTest, WrongLengthIsInvalidArgument) {
  grpc::Status s = Push(0, 0, "dense", Encode({1, 1, 1}), 4);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("'dense'"));
  EXPECT_THAT(s.error_message(), HasSubstr("12 bytes"));
  ExpectTable("dense", 1.0f, 0);
}

TEST_F(PsServiceTest, NonFiniteGradientIsInvalidArgument) {
  grpc::Status s =
      Push(0, 0, "dense", Encode({1, std::numeric_limits<float>::quiet_NaN(), 1, 1}), 4);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("'dense'"));
  EXPECT_THAT(s.error_message(), HasSubstr("non-finite"));
  ExpectTable("dense", 1.0f, 0);
}

TEST_F(PsServiceTest, SyncPushForAnotherStepIsFailedPrecondition) {
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::RegisterWorkerRequest reg;
  reg.set_worker_index(0);
  reg.set_host("test-host");
  reg.set_device("cpu");
  v1::RegisterWorkerResponse reg_response;
  ASSERT_TRUE(stub_->RegisterWorker(&context, reg, &reg_response).ok());
  EXPECT_EQ(reg_response.live_workers(), 1);
  EXPECT_EQ(reg_response.heartbeat_interval_ms(), 1000);
  EXPECT_EQ(reg_response.heartbeat_timeout_ms(), 10000);

  grpc::Status s = Push(0, 3, "synced", Encode({1, 1, 1, 1}), 4);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("'synced'"));
  EXPECT_THAT(s.error_message(), HasSubstr("step 3"));
  ExpectTable("synced", 1.0f, 0);

  // The one live worker's push for the current step finishes the step.
  s = Push(0, 0, "synced", Encode({2, 2, 2, 2}), 4);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ExpectTable("synced", 0.0f, 1);
}

// PushPull: the sync step's push, then the pull of the version after it, in one call.
TEST_F(PsServiceTest, PushPullAppliesThePushThenPullsTheNextVersion) {
  grpc::ClientContext reg_ctx;
  SetDeadline(&reg_ctx);
  v1::RegisterWorkerRequest reg;
  reg.set_worker_index(0);
  v1::RegisterWorkerResponse reg_response;
  ASSERT_TRUE(stub_->RegisterWorker(&reg_ctx, reg, &reg_response).ok());

  auto push_pull = [&](int64_t step, const std::string& grad, int pull_worker, int64_t pull_length,
                       v1::PushPullResponse* response) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx);
    v1::PushPullRequest request;
    v1::PushRequest* push = request.mutable_push();
    push->set_worker_index(0);
    push->set_step(step);
    v1::DenseSlice* d = push->add_dense();
    d->set_table("synced");
    d->set_length(4);
    d->set_values(grad);
    v1::PullRequest* pull = request.mutable_pull();
    pull->set_worker_index(pull_worker);
    pull->set_min_version(step + 1);
    d = pull->add_dense();
    d->set_table("synced");
    d->set_length(pull_length);
    return stub_->PushPull(&ctx, request, response);
  };

  // The one live worker's push finishes step 0; the pull gets version 1.
  v1::PushPullResponse response;
  grpc::Status s = push_pull(0, Encode({2, 2, 2, 2}), 0, 4, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response.push().dense_versions(), ElementsAre(1));
  EXPECT_EQ(response.pull_code(), 0);
  ASSERT_EQ(response.pull().dense_size(), 1);
  EXPECT_EQ(response.pull().dense(0).version(), 1);
  EXPECT_THAT(Decode(response.pull().dense(0).values()), ElementsAre(0, 0, 0, 0));

  // A rejected push (a step that is not current) is the call's error; nothing is pulled
  // and nothing changes.
  s = push_pull(5, Encode({2, 2, 2, 2}), 0, 4, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("step 5"));
  ExpectTable("synced", 0.0f, 1);

  // An accepted push with a bad pull: the call succeeds (the step was taken) and the
  // pull's error comes back beside it.
  response.Clear();
  s = push_pull(1, Encode({-2, -2, -2, -2}), 0, 5, &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response.push().dense_versions(), ElementsAre(2));
  EXPECT_EQ(response.pull_code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_THAT(response.pull_message(), HasSubstr("'synced'"));
  EXPECT_EQ(response.pull().dense_size(), 0);
  ExpectTable("synced", 1.0f, 2);

  // The push and the pull must be for the same worker.
  s = push_pull(2, Encode({2, 2, 2, 2}), 1, 4, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("worker 0"));
  ExpectTable("synced", 1.0f, 2);
}

TEST_F(PsServiceTest, PullForAFutureVersionHonoursTheCallDeadline) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  v1::PullRequest request;
  request.set_min_version(1);
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table("synced");
  slice->set_length(4);
  v1::PullResponse response;
  grpc::Status s = stub_->Pull(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ExpectTable("synced", 1.0f, 0);
}

// Polls GetStatus until `want` pulls wait on the shard (at most 10 s).
bool WaitForWaitingPulls(int64_t want, const std::function<v1::GetStatusResponse()>& get_status) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (absl::Now() < give_up) {
    if (get_status().waiting_pulls() == want) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

// A pull that waits for a version holds no server thread: 200 of them wait while the
// process's thread count stays put (a thread per waiting call would add 200), and the
// one push that completes the version answers them all.
TEST_F(PsServiceTest, WaitingPullsHoldNoServerThreads) {
  constexpr int kPulls = 200;
  struct Call {
    grpc::ClientContext context;
    v1::PullResponse response;
    grpc::Status status;
    absl::Notification done;
  };
  std::vector<std::unique_ptr<Call>> calls;
  v1::PullRequest request;
  request.set_worker_index(-1);
  request.set_min_version(1);
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table("dense");
  slice->set_length(4);
  ASSERT_TRUE(WaitForWaitingPulls(0, [this] { return GetStatus(); }));
  const int threads_before = ThreadCount();
  ASSERT_GT(threads_before, 0);
  for (int i = 0; i < kPulls; ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    Call* c = call.get();
    stub_->async()->Pull(&c->context, &request, &c->response, [c](grpc::Status s) {
      c->status = std::move(s);
      c->done.Notify();
    });
    calls.push_back(std::move(call));
  }
  EXPECT_TRUE(WaitForWaitingPulls(kPulls, [this] { return GetStatus(); }));
  EXPECT_LT(ThreadCount() - threads_before, 20);

  EXPECT_TRUE(Push(-1, 0, "dense", Encode({1, 1, 1, 1}), 4).ok());
  // Every call ends (answered or at its 30 s deadline) before anything is checked: the
  // callbacks write into `calls`.
  for (const auto& c : calls) c->done.WaitForNotification();
  for (const auto& c : calls) {
    ASSERT_TRUE(c->status.ok()) << c->status.error_message();
    ASSERT_EQ(c->response.dense_size(), 1);
    EXPECT_EQ(c->response.dense(0).version(), 1);
  }
  EXPECT_EQ(GetStatus().waiting_pulls(), 0);
}

// A client that gives up on a waiting pull takes it out of the shard at once, long before
// the call's own deadline.
TEST_F(PsServiceTest, ACancelledWaitingPullLeavesTheShard) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::PullRequest request;
  request.set_min_version(1);
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table("synced");
  slice->set_length(4);
  v1::PullResponse response;
  grpc::Status status;
  absl::Notification done;
  stub_->async()->Pull(&context, &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  EXPECT_TRUE(WaitForWaitingPulls(1, [this] { return GetStatus(); }));
  context.TryCancel();
  done.WaitForNotification();  // the callback writes `status`; a cancelled call ends at once
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitForWaitingPulls(0, [this] { return GetStatus(); }));
  ExpectTable("synced", 1.0f, 0);
}

TEST_F(PsServiceTest, TableCreatedTwiceWithDifferentSpecsIsAlreadyExists) {
  v1::CreateTableResponse response;
  grpc::Status s = CreateTable(DenseSpec("dense", 4, v1::ASYNC), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(response.created());
  EXPECT_EQ(response.elements_on_shard(), 4);

  s = CreateTable(DenseSpec("dense", 8, v1::ASYNC));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("'dense'"));
  EXPECT_THAT(s.error_message(), HasSubstr("shape"));
  ExpectTable("dense", 1.0f, 0);
}

TEST_F(PsServiceTest, GetStatusReportsTablesWorkersAndCounters) {
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RegisterWorkerRequest reg;
    reg.set_worker_index(2);
    reg.set_host("worker-host");
    reg.set_device("cuda:0");
    v1::RegisterWorkerResponse reg_response;
    ASSERT_TRUE(stub_->RegisterWorker(&context, reg, &reg_response).ok());
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::HeartbeatRequest hb;
    hb.set_worker_index(2);
    hb.mutable_stats()->set_clock(5);
    v1::HeartbeatResponse hb_response;
    ASSERT_TRUE(stub_->Heartbeat(&context, hb, &hb_response).ok());
    EXPECT_EQ(hb_response.live_workers(), 1);
  }
  const v1::GetStatusResponse before = GetStatus();
  ASSERT_TRUE(Push(0, 0, "dense", Encode({2, 2, 2, 2}), 4).ok());
  EXPECT_EQ(Push(0, 0, "dense", Encode({2}), 4).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Pull("dense", 4, nullptr).ok());
  const v1::GetStatusResponse after = GetStatus();

  EXPECT_EQ(after.shard_index(), 0);
  EXPECT_EQ(after.num_shards(), 1);
  ASSERT_EQ(after.tables_size(), 2);
  EXPECT_EQ(after.tables(0).spec().name(), "dense");
  EXPECT_EQ(after.tables(0).version(), 1);
  EXPECT_EQ(after.tables(0).elements_on_shard(), 4);
  EXPECT_EQ(after.tables(0).pushes(), 1);
  EXPECT_EQ(after.tables(0).pulls(), 1);
  EXPECT_EQ(after.tables(1).spec().name(), "synced");
  EXPECT_EQ(after.tables(1).version(), 0);
  ASSERT_EQ(after.workers_size(), 1);
  EXPECT_EQ(after.workers(0).worker_index(), 2);
  EXPECT_TRUE(after.workers(0).live());
  EXPECT_EQ(after.workers(0).host(), "worker-host");
  EXPECT_EQ(after.workers(0).stats().clock(), 5);
  EXPECT_EQ(after.workers(0).stats().device(), "cuda:0");
  EXPECT_EQ(after.push_requests(), before.push_requests() + 2);
  EXPECT_EQ(after.pull_requests(), before.pull_requests() + 1);
  EXPECT_EQ(after.bytes_received(), before.bytes_received() + 16 + 4);
  EXPECT_EQ(after.bytes_sent(), before.bytes_sent() + 16);

  // Leaving shows the worker as no longer live.
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::LeaveWorkerRequest leave;
  leave.set_worker_index(2);
  v1::LeaveWorkerResponse leave_response;
  ASSERT_TRUE(stub_->LeaveWorker(&context, leave, &leave_response).ok());
  const v1::GetStatusResponse left = GetStatus();
  ASSERT_EQ(left.workers_size(), 1);
  EXPECT_FALSE(left.workers(0).live());
}

TEST_F(PsServiceTest, HealthServiceReportsServing) {
  grpc::GenericStub generic(channel_);
  grpc::ClientContext context;
  SetDeadline(&context);
  // An empty HealthCheckRequest (service "") asks about the whole server.
  grpc::Slice empty("", 0);
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer reply;
  grpc::Status status;
  absl::Notification done;
  generic.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &reply,
                    [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  grpc::Slice bytes;
  ASSERT_TRUE(reply.DumpToSingleSlice(&bytes).ok());
  // HealthCheckResponse{status: SERVING (1)}: field 1, varint 1.
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size()),
            std::string("\x08\x01", 2));
}

// Bytes that are not the method's request (here a tag whose length runs past the end)
// are INVALID_ARGUMENT naming the message and the problem, and change nothing.
TEST_F(PsServiceTest, RequestsThatDoNotDecodeAreInvalidArgument) {
  grpc::GenericStub generic(channel_);
  for (const char* method : {"Push", "Pull", "PushPull"}) {
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Slice junk(std::string("\x1a\x7f\x0a\x01", 4));  // field 3, 127 bytes: 2 follow
    grpc::ByteBuffer request(&junk, 1);
    grpc::ByteBuffer reply;
    grpc::Status status;
    absl::Notification done;
    generic.UnaryCall(&context, std::string("/ps.v1.ParameterServer/") + method,
                      grpc::StubOptions(), &request, &reply, [&](grpc::Status s) {
                        status = std::move(s);
                        done.Notify();
                      });
    done.WaitForNotification();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_THAT(status.error_message(),
                HasSubstr(std::string("does not parse as ps.v1.") + method + "Request"))
        << method;
  }
  ExpectTable("dense", 1.0f, 0);
  v1::PushResponse response;
  ASSERT_TRUE(Push(0, 0, "dense", Encode({2, 2, 2, 2}), 4, &response).ok());  // still serving
}

TEST(PsServerStartTest, ShardIndexOutOfRangeIsInvalidArgument) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.num_shards = 2;
  options.shard_index = 2;
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("shard_index=2"));
  options.shard_index = -1;
  EXPECT_EQ(PsServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PsServerStartTest, OtherBadOptionsAreInvalidArgument) {
  ServerOptions options;
  options.host = "127.0.0.1";
  options.num_shards = 0;
  EXPECT_EQ(PsServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.num_shards = 1;
  options.port = 70000;
  EXPECT_EQ(PsServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.port = 0;
  options.heartbeat_timeout = options.heartbeat_interval;
  EXPECT_EQ(PsServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PsServerStartTest, UnbindableAddressIsUnavailable) {
  ServerOptions options;
  options.host = "192.0.2.1";  // TEST-NET-1 (RFC 5737): never a local address
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(server.status().message(), HasSubstr("192.0.2.1"));
}

// gRPC's default SO_REUSEPORT would let the second shard "serve" the port too, and the
// kernel would spread connections over both.
TEST(PsServerStartTest, ASecondShardOnAPortInUseIsUnavailable) {
  ServerOptions options;
  options.host = "127.0.0.1";
  absl::StatusOr<std::unique_ptr<PsServer>> first = PsServer::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.port = (*first)->port();
  absl::StatusOr<std::unique_ptr<PsServer>> second = PsServer::Start(options);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", options.port)));
}

}  // namespace
}  // namespace ps
