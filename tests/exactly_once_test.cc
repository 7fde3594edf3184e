// Pushes are applied exactly once when replies are lost. Every third push reply is
// dropped on its way back to the client (a client interceptor turns it into UNAVAILABLE
// after the shard applied the request); the client sends those requests again with the
// same push id, and the shards answer the copies without applying them. Each push adds
// exactly 1 to every element, so the values count the applied pushes.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/rpc/ps_server.h"
#include "worker/client/grpc_ps_client.h"

namespace ps {
namespace {

class DropEveryThirdPushReply : public grpc::experimental::Interceptor {
 public:
  DropEveryThirdPushReply(bool is_push, std::atomic<int>* seen, std::atomic<int>* dropped)
      : is_push_(is_push), seen_(seen), dropped_(dropped) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (is_push_ && methods->QueryInterceptionHookPoint(
                        grpc::experimental::InterceptionHookPoints::POST_RECV_STATUS)) {
      grpc::Status* status = methods->GetRecvStatus();
      if (status->ok() && seen_->fetch_add(1) % 3 == 2) {
        *status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "reply dropped by the test");
        dropped_->fetch_add(1);
      }
    }
    methods->Proceed();
  }

 private:
  const bool is_push_;
  std::atomic<int>* const seen_;
  std::atomic<int>* const dropped_;
};

class DropFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  DropFactory(std::atomic<int>* seen, std::atomic<int>* dropped) : seen_(seen), dropped_(dropped) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    const std::string method = info->method();
    const bool is_push = method == "/ps.v1.ParameterServer/Push" ||
                         method == "/ps.v1.ParameterServer/PushPull";
    return new DropEveryThirdPushReply(is_push, seen_, dropped_);
  }

 private:
  std::atomic<int>* const seen_;
  std::atomic<int>* const dropped_;
};

class ExactlyOnceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    for (int i = 0; i < 2; ++i) {
      ServerOptions o;
      o.host = "127.0.0.1";
      o.shard_index = i;
      o.num_shards = 2;
      absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(o);
      ASSERT_TRUE(server.ok()) << server.status();
      addresses_.push_back((*server)->address());
      servers_.push_back(*std::move(server));
    }
    ClientOptions options;
    options.same_host = GetParam();
    options.max_chunk_bytes = 256 << 10;  // several chunk requests per shard
    options.push_retry_backoff = absl::Milliseconds(1);
    client_ = NewGrpcPsClient(
        addresses_, options, [this](const std::string& address, const grpc::ChannelArguments& args) {
          std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
          f.push_back(std::make_unique<DropFactory>(&seen_, &dropped_));
          return grpc::experimental::CreateCustomChannelWithInterceptors(
              address, grpc::InsecureChannelCredentials(), args, std::move(f));
        });
  }

  // Every element starts at 0; a gradient of -1 with SGD at learning rate 1 adds 1.
  static v1::TableSpec CounterSpec(const std::string& name, int64_t n, v1::ConsistencyMode mode) {
    v1::TableSpec spec;
    spec.set_name(name);
    spec.set_kind(n > 0 ? v1::DENSE : v1::SPARSE);
    if (n > 0) spec.add_shape(n);
    if (n == 0) spec.set_row_width(4);
    spec.mutable_optimizer()->set_kind(v1::OptimizerSpec::SGD);
    spec.mutable_optimizer()->set_learning_rate(1.0f);
    spec.set_consistency(mode);
    return spec;
  }

  int64_t DuplicatesAnswered() {
    absl::StatusOr<std::vector<v1::GetStatusResponse>> status = client_->GetStatus();
    EXPECT_TRUE(status.ok()) << status.status();
    int64_t n = 0;
    if (status.ok()) {
      for (const v1::GetStatusResponse& s : *status) n += s.duplicate_pushes();
    }
    return n;
  }

  std::vector<std::unique_ptr<PsServer>> servers_;
  std::vector<std::string> addresses_;
  std::atomic<int> seen_{0};
  std::atomic<int> dropped_{0};
  std::unique_ptr<PsClient> client_;
};

TEST_P(ExactlyOnceTest, DenseAsyncAndSspPushesCountExactlyDespiteLostReplies) {
  const int64_t n = 300000;  // 1.2 MB: split over both shards, several chunks each
  for (v1::ConsistencyMode mode : {v1::ASYNC, v1::SSP}) {
    const std::string name = v1::ConsistencyMode_Name(mode);
    ASSERT_TRUE(client_->CreateTable(CounterSpec(name, n, mode)).ok());
    ASSERT_TRUE(client_->RegisterWorker(0, "h", "cpu").ok());
    std::vector<float> grad(n, -1.0f), values(n);
    const int pushes = 30;
    for (int i = 0; i < pushes; ++i) {
      client_->set_clock(i + 1);
      absl::Status s = client_->Push({{name, n, grad.data()}}, 0, 0);
      ASSERT_TRUE(s.ok()) << name << " push " << i << ": " << s;
    }
    ASSERT_TRUE(client_->Pull({{name, n, values.data()}}, 0, 0).ok());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(values[i], pushes) << name << " element " << i;
  }
  EXPECT_GT(dropped_.load(), 10);
  EXPECT_EQ(DuplicatesAnswered(), dropped_.load());
}

TEST_P(ExactlyOnceTest, SyncStepsCountExactlyDespiteLostReplies) {
  const int64_t n = 300000;
  ASSERT_TRUE(client_->CreateTable(CounterSpec("w", n, v1::SYNC)).ok());
  ASSERT_TRUE(client_->RegisterWorker(0, "h", "cpu").ok());
  std::vector<float> grad(n, -1.0f), values(n);
  const int steps = 20;
  for (int step = 0; step < steps; ++step) {
    ASSERT_TRUE(client_->Push({{"w", n, grad.data()}}, PsClient::kPerShard, 0).ok()) << step;
    absl::StatusOr<int64_t> v = client_->Pull({{"w", n, values.data()}}, PsClient::kPerShard, 0);
    ASSERT_TRUE(v.ok()) << step << ": " << v.status();
    ASSERT_EQ(*v, step + 1);
  }
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(values[i], steps) << i;
  EXPECT_GT(dropped_.load(), 5);
  EXPECT_EQ(DuplicatesAnswered(), dropped_.load());
}

TEST_P(ExactlyOnceTest, SparsePushesCountExactlyDespiteLostReplies) {
  ASSERT_TRUE(client_->CreateTable(CounterSpec("emb", 0, v1::ASYNC)).ok());
  ASSERT_TRUE(client_->RegisterWorker(0, "h", "cpu").ok());
  std::vector<int64_t> keys;
  for (int64_t k = 0; k < 1000; ++k) keys.push_back(k * 7919);
  std::vector<float> grad(keys.size() * 4, -1.0f), rows(keys.size() * 4);
  const int pushes = 30;
  for (int i = 0; i < pushes; ++i) {
    ASSERT_TRUE(client_->PushSparse("emb", keys, 4, grad.data(), 0, 0).ok()) << i;
  }
  ASSERT_TRUE(client_->PullSparse("emb", keys, 4, rows.data(), 0).ok());
  for (size_t i = 0; i < rows.size(); ++i) ASSERT_EQ(rows[i], pushes) << i;
  EXPECT_GT(dropped_.load(), 10);
  EXPECT_EQ(DuplicatesAnswered(), dropped_.load());
}

INSTANTIATE_TEST_SUITE_P(Transports, ExactlyOnceTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "SameHostWindows" : "Tcp";
                         });

}  // namespace
}  // namespace ps
