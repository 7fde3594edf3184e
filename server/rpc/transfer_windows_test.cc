// Same-host transfer windows over the wire, against a real shard in this process. The
// test and the server share an address space, so the test writes and reads the windows
// at the addresses the server reports, as a worker would with process_vm_writev/readv.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "common/same_host.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.grpc.pb.h"
#include "server/rpc/ps_server.h"
#include "server/table/optimizer.h"
#include "server/table/spec_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Decode;
using ::ps::testing::Encode;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::TableSpec DenseSpec(const std::string& name, int64_t n, v1::ConsistencyMode mode) {
  return ::ps::testing::OnesSgdSpec(name, n, mode);
}

class TransferWindowsTest : public ::testing::Test {
 protected:
  void StartServer(bool windows) {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.same_host_windows = windows;
    absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::ParameterServer::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    for (const char* name : {"a", "b"}) {
      grpc::ClientContext ctx;
      Deadline(&ctx);
      v1::CreateTableRequest request;
      *request.mutable_spec() = DenseSpec(name, 4, v1::ASYNC);
      v1::CreateTableResponse response;
      ASSERT_TRUE(stub_->CreateTable(&ctx, request, &response).ok());
    }
  }

  static void Deadline(grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  grpc::Status Register(int worker, v1::RegisterWorkerResponse* response) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::RegisterWorkerRequest request;
    request.set_worker_index(worker);
    request.set_host("h");
    return stub_->RegisterWorker(&ctx, request, response);
  }

  grpc::Status Open(int worker, int64_t bytes, v1::OpenWindowResponse* response) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::OpenWindowRequest request;
    request.set_worker_index(worker);
    request.set_bytes(bytes);
    return stub_->OpenWindow(&ctx, request, response);
  }

  // Pushes `length` elements of table `table` whose gradient sits at `window_offset`.
  grpc::Status WindowPush(int worker, const std::string& table, int64_t length,
                          int64_t window_offset, const std::string& inline_values = "") {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::PushRequest request;
    request.set_worker_index(worker);
    v1::DenseSlice* d = request.add_dense();
    d->set_table(table);
    d->set_length(length);
    d->set_window_offset(window_offset);
    if (!inline_values.empty()) d->set_values(inline_values);
    v1::PushResponse response;
    return stub_->Push(&ctx, request, &response);
  }

  grpc::Status WindowPull(int worker, const std::string& table, int64_t window_offset,
                          v1::PullResponse* response) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::PullRequest request;
    request.set_worker_index(worker);
    v1::DenseSlice* d = request.add_dense();
    d->set_table(table);
    d->set_length(4);
    d->set_window_offset(window_offset);
    return stub_->Pull(&ctx, request, response);
  }

  // The table's values and version, pulled in-band.
  std::pair<std::vector<float>, int64_t> Values(const std::string& table) {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::PullRequest request;
    request.set_worker_index(-1);
    v1::DenseSlice* d = request.add_dense();
    d->set_table(table);
    d->set_length(4);
    v1::PullResponse response;
    grpc::Status s = stub_->Pull(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok() || response.dense_size() != 1) return {{}, -1};
    return {Decode(response.dense(0).values()), response.dense(0).version()};
  }

  static char* Address(uint64_t a) { return reinterpret_cast<char*>(a); }

  std::unique_ptr<PsServer> server_;
  std::unique_ptr<v1::ParameterServer::Stub> stub_;
};

TEST_F(TransferWindowsTest, RegistrationOffersThisHostAndAReadableProbe) {
  StartServer(true);
  v1::RegisterWorkerResponse response;
  ASSERT_TRUE(Register(0, &response).ok());
  ASSERT_TRUE(response.has_same_host());
  const v1::SameHostOffer& offer = response.same_host();
  const HostIdentity me = LocalHostIdentity();
  EXPECT_EQ(offer.pid(), getpid());
  EXPECT_EQ(offer.boot_id(), me.boot_id);
  EXPECT_EQ(offer.pid_namespace(), me.pid_namespace);
  EXPECT_EQ(offer.net_namespace(), me.net_namespace);
  ASSERT_EQ(offer.probe_token().size(), 16u);
  // What a worker does: read the token out of the server's memory.
  char got[16];
  ASSERT_TRUE(ReadFromProcess(offer.pid(), {{got, offer.probe_address(), 16}}).ok());
  EXPECT_EQ(std::string(got, 16), offer.probe_token());
}

TEST_F(TransferWindowsTest, PushAndPullThroughTheWindowsMatchInBand) {
  StartServer(true);
  v1::RegisterWorkerResponse reg;
  ASSERT_TRUE(Register(3, &reg).ok());
  v1::OpenWindowResponse w;
  ASSERT_TRUE(Open(3, 32, &w).ok());
  EXPECT_EQ(w.bytes(), 32);
  // A second open that fits keeps the same windows.
  v1::OpenWindowResponse again;
  ASSERT_TRUE(Open(3, 8, &again).ok());
  EXPECT_EQ(again.push_address(), w.push_address());
  EXPECT_EQ(again.pull_address(), w.pull_address());
  ASSERT_NE(w.push_address(), 0u);
  ASSERT_NE(w.pull_address(), 0u);

  // Table a's gradient at byte 16 of the push window; SGD lr 0.5 from all ones.
  const std::string grad = Encode({2, 4, -2, 0});
  std::memcpy(Address(w.push_address()) + 16, grad.data(), 16);
  grpc::Status s = WindowPush(3, "a", 4, 16);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Values("a"), (std::pair<std::vector<float>, int64_t>{{0, -1, 2, 1}, 1}));

  v1::PullResponse pulled;
  s = WindowPull(3, "a", 8, &pulled);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(pulled.dense_size(), 1);
  EXPECT_TRUE(pulled.dense(0).values().empty());
  EXPECT_EQ(pulled.dense(0).window_offset(), 8);
  EXPECT_EQ(pulled.dense(0).version(), 1);
  EXPECT_THAT(Decode(std::string(Address(w.pull_address()) + 8, 16)), ElementsAre(0, -1, 2, 1));

  v1::GetStatusResponse status;
  grpc::ClientContext ctx;
  Deadline(&ctx);
  ASSERT_TRUE(stub_->GetStatus(&ctx, v1::GetStatusRequest(), &status).ok());
  EXPECT_EQ(status.window_bytes_received(), 16);
  EXPECT_EQ(status.window_bytes_sent(), 16);
}

TEST_F(TransferWindowsTest, OpenWindowRejectsWhatItCannotServe) {
  StartServer(true);
  v1::OpenWindowResponse w;
  grpc::Status s = Open(5, 16, &w);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("worker 5 is not registered"));

  v1::RegisterWorkerResponse reg;
  ASSERT_TRUE(Register(5, &reg).ok());
  // Two tables of 4 floats: 32 bytes of dense tables on this shard.
  s = Open(5, 33, &w);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("33 bytes"));
  EXPECT_THAT(s.error_message(), HasSubstr("1 to 32"));
  s = Open(5, 0, &w);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Open(5, 32, &w).ok());
}

TEST_F(TransferWindowsTest, BadWindowRequestsChangeNothing) {
  StartServer(true);
  v1::RegisterWorkerResponse reg;
  ASSERT_TRUE(Register(1, &reg).ok());
  ASSERT_TRUE(Register(2, &reg).ok());

  // A window offset before the worker has a window.
  grpc::Status s = WindowPush(1, "a", 4, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("no transfer window"));

  v1::OpenWindowResponse w;
  ASSERT_TRUE(Open(1, 16, &w).ok());
  // Windows come at the shard's whole dense size (two tables of 4 floats), so that they
  // are replaced only when tables are added.
  EXPECT_EQ(w.bytes(), 32);
  // Past the window's end, negative, unaligned, and both values and a window offset.
  s = WindowPush(1, "a", 4, 20);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("table 'a'"));
  EXPECT_THAT(s.error_message(), HasSubstr("32-byte transfer window"));
  s = WindowPush(1, "a", 4, 2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("window offset 2 is not a multiple of 4"));
  s = WindowPush(1, "a", 4, -4);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = WindowPush(1, "a", std::numeric_limits<int64_t>::max() / 2, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = WindowPush(1, "a", 4, 0, Encode({1, 1, 1, 1}));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("both values and a window offset"));
  // A non-finite gradient in the window.
  const std::string bad = Encode({1, std::numeric_limits<float>::infinity(), 1, 1});
  std::memcpy(Address(w.push_address()), bad.data(), 16);
  s = WindowPush(1, "a", 4, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("non-finite gradient inf at element 1"));
  // Worker 2 cannot use worker 1's window.
  s = WindowPush(2, "a", 4, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::PullResponse pulled;
  s = WindowPull(1, "a", 24, &pulled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(Values("a"), (std::pair<std::vector<float>, int64_t>{{1, 1, 1, 1}, 0}));
  // And the shard still serves a good windowed push.
  const std::string grad = Encode({2, 2, 2, 2});
  std::memcpy(Address(w.push_address()), grad.data(), 16);
  ASSERT_TRUE(WindowPush(1, "a", 4, 0).ok());
  EXPECT_EQ(Values("a"), (std::pair<std::vector<float>, int64_t>{{0, 0, 0, 0}, 1}));
}

TEST_F(TransferWindowsTest, LeavingFreesTheWindowsAndAnOffShardOffersNone) {
  StartServer(true);
  v1::RegisterWorkerResponse reg;
  ASSERT_TRUE(Register(1, &reg).ok());
  v1::OpenWindowResponse w;
  ASSERT_TRUE(Open(1, 16, &w).ok());
  {
    grpc::ClientContext ctx;
    Deadline(&ctx);
    v1::LeaveWorkerRequest request;
    request.set_worker_index(1);
    v1::LeaveWorkerResponse response;
    ASSERT_TRUE(stub_->LeaveWorker(&ctx, request, &response).ok());
  }
  grpc::Status s = WindowPush(1, "a", 4, 0);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  server_->Shutdown();
  StartServer(false);
  ASSERT_TRUE(Register(1, &reg).ok());
  EXPECT_FALSE(reg.has_same_host());
  s = Open(1, 16, &w);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("--same_host_windows=false"));
}

}  // namespace
}  // namespace ps
