// Starts a shard with its Prometheus endpoint on a free port, drives it over gRPC and
// reads /metrics with a plain HTTP GET, as Prometheus does.
#include "server/rpc/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.grpc.pb.h"
#include "server/rpc/ps_server.h"
#include "server/table/optimizer.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

// GETs http://127.0.0.1:<port><path> and returns the body, or "" on any failure.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    // HTTP/1.0: the server closes the connection after the reply, which ends the read.
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
    }
  }
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(response, "HTTP/1.") || body == std::string::npos) return "";
  return response.substr(body + 4);
}

// The value of the sample `name{...}` whose labels include every `label="value"` in
// `labels`; -1 when there is none.
double Sample(const std::string& text, const std::string& name,
              const std::vector<std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, absl::StrCat(name, "{"))) continue;
    const size_t close = line.rfind('}');
    if (close == absl::string_view::npos) continue;
    const absl::string_view label_part = line.substr(0, close);
    bool all = true;
    for (const std::string& l : labels) all = all && absl::StrContains(label_part, l);
    double value = 0;
    if (all && absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(close + 1)), &value)) {
      return value;
    }
  }
  return -1;
}

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.host = "127.0.0.1";
    options.metrics_port = 0;
    absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->metrics_port(), 0);
    ASSERT_NE(server_->metrics_port(), server_->port());
    stub_ = v1::ParameterServer::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));

    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CreateTableRequest request;
    v1::TableSpec* spec = request.mutable_spec();
    spec->set_name("emb");
    spec->set_kind(v1::DENSE);
    spec->add_shape(4);
    *spec->mutable_optimizer() = DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.1f);
    spec->set_consistency(v1::ASYNC);
    v1::CreateTableResponse response;
    ASSERT_TRUE(stub_->CreateTable(&context, request, &response).ok());
  }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  grpc::Status Push(const std::string& table) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::PushRequest request;
    v1::DenseSlice* slice = request.add_dense();
    slice->set_table(table);
    slice->set_length(4);
    slice->set_values(std::string(16, '\0'));
    v1::PushResponse response;
    return stub_->Push(&context, request, &response);
  }

  grpc::Status Pull() {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::PullRequest request;
    request.set_worker_index(-1);
    v1::DenseSlice* slice = request.add_dense();
    slice->set_table("emb");
    slice->set_length(4);
    v1::PullResponse response;
    return stub_->Pull(&context, request, &response);
  }

  std::string Scrape() { return HttpGet(server_->metrics_port(), "/metrics"); }

  std::unique_ptr<PsServer> server_;
  std::unique_ptr<v1::ParameterServer::Stub> stub_;
};

TEST_F(MetricsTest, ScrapeShowsRequestCountersAndTableGauges) {
  ASSERT_TRUE(Push("emb").ok());
  ASSERT_TRUE(Pull().ok());
  const std::string text = Scrape();
  ASSERT_THAT(text, HasSubstr("# TYPE ps_push_requests_total counter"));
  EXPECT_EQ(Sample(text, "ps_push_requests_total", {"shard=\"0\""}), 1);
  EXPECT_EQ(Sample(text, "ps_pull_requests_total", {"shard=\"0\""}), 1);
  EXPECT_EQ(Sample(text, "ps_push_bytes_total", {"shard=\"0\""}), 16);
  EXPECT_EQ(Sample(text, "ps_pull_bytes_total", {"shard=\"0\""}), 16);
  // In-band requests: nothing through same-host windows.
  EXPECT_EQ(Sample(text, "ps_push_window_bytes_total", {"shard=\"0\""}), 0);
  EXPECT_EQ(Sample(text, "ps_pull_window_bytes_total", {"shard=\"0\""}), 0);
  EXPECT_EQ(Sample(text, "ps_duplicate_pushes_total", {"shard=\"0\""}), 0);
  EXPECT_EQ(Sample(text, "ps_waiting_pulls", {"shard=\"0\""}), 0);
  EXPECT_EQ(Sample(text, "ps_window_bytes_held", {"shard=\"0\""}), 0);
  EXPECT_EQ(Sample(text, "ps_table_elements", {"shard=\"0\"", "table=\"emb\""}), 4);
  EXPECT_EQ(Sample(text, "ps_table_version", {"shard=\"0\"", "table=\"emb\""}), 1);
  EXPECT_EQ(Sample(text, "ps_live_workers", {"shard=\"0\""}), 0);
}

TEST_F(MetricsTest, CountersGrowWithEveryPush) {
  ASSERT_TRUE(Push("emb").ok());
  const double before = Sample(Scrape(), "ps_push_requests_total", {"shard=\"0\""});
  ASSERT_GE(before, 1);
  ASSERT_TRUE(Push("emb").ok());
  const std::string text = Scrape();
  EXPECT_EQ(Sample(text, "ps_push_requests_total", {"shard=\"0\""}), before + 1);
  EXPECT_EQ(Sample(text, "ps_table_version", {"table=\"emb\""}), 2);
}

TEST_F(MetricsTest, FailedCallsAreCountedByMethodAndCode) {
  EXPECT_EQ(Push("missing").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Push("missing").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Push("emb").ok());
  const std::string text = Scrape();
  EXPECT_EQ(Sample(text, "ps_rejected_requests_total",
                   {"shard=\"0\"", "method=\"Push\"", "code=\"NOT_FOUND\""}),
            2);
  EXPECT_EQ(Sample(text, "ps_rejected_requests_total", {"code=\"OK\""}), -1);
}

// Calls the token check refuses are counted, by method and code, the Admin service's too.
TEST(MetricsAuthTest, RefusedCallsAreCounted) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string tokens = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/metrics-tokens");
  std::ofstream(tokens) << "worker w-token\noperator o-token\n";
  ServerOptions options;
  options.host = "127.0.0.1";
  options.metrics_port = 0;
  options.auth.tokens_file = tokens;
  absl::StatusOr<std::unique_ptr<PsServer>> server = PsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  for (int i = 0; i < 2; ++i) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::PushResponse response;
    EXPECT_EQ(v1::ParameterServer::NewStub(channel)
                  ->Push(&context, v1::PushRequest(), &response)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  context.AddMetadata("authorization", "Bearer w-token");
  v1::CheckpointResponse checkpoint;
  EXPECT_EQ(v1::Admin::NewStub(channel)
                ->Checkpoint(&context, v1::CheckpointRequest(), &checkpoint)
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  const std::string text = HttpGet((*server)->metrics_port(), "/metrics");
  EXPECT_EQ(Sample(text, "ps_rejected_requests_total",
                   {"method=\"Push\"", "code=\"UNAUTHENTICATED\""}),
            2);
  EXPECT_EQ(Sample(text, "ps_rejected_requests_total",
                   {"method=\"Admin.Checkpoint\"", "code=\"PERMISSION_DENIED\""}),
            1);
}

TEST(ServerMetricsTest, StatusFamiliesCarryShardTableAndWorkerLabels) {
  v1::GetStatusResponse status;
  status.set_push_requests(5);
  v1::TableStatus* t = status.add_tables();
  t->mutable_spec()->set_name("w");
  t->set_bytes_on_shard(4096);
  v1::WorkerStatus* w = status.add_workers();
  w->set_worker_index(3);
  w->set_live(true);
  w->set_last_heartbeat_ms_ago(1500);
  w->mutable_stats()->set_loss(0.5f);
  const std::vector<prometheus::MetricFamily> families = ServerMetrics::StatusFamilies(status, 2);
  auto find = [&](const std::string& name) -> const prometheus::MetricFamily* {
    for (const auto& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  };
  const prometheus::MetricFamily* pushes = find("ps_push_requests_total");
  ASSERT_NE(pushes, nullptr);
  EXPECT_EQ(pushes->type, prometheus::MetricType::Counter);
  ASSERT_EQ(pushes->metric.size(), 1u);
  EXPECT_EQ(pushes->metric[0].counter.value, 5);
  EXPECT_EQ(pushes->metric[0].label[0].name, "shard");
  EXPECT_EQ(pushes->metric[0].label[0].value, "2");
  const prometheus::MetricFamily* bytes = find("ps_table_bytes");
  ASSERT_NE(bytes, nullptr);
  EXPECT_EQ(bytes->metric[0].gauge.value, 4096);
  EXPECT_EQ(bytes->metric[0].label[1].value, "w");
  const prometheus::MetricFamily* heartbeat = find("ps_worker_last_heartbeat_seconds");
  ASSERT_NE(heartbeat, nullptr);
  EXPECT_EQ(heartbeat->metric[0].gauge.value, 1.5);
  EXPECT_EQ(heartbeat->metric[0].label[1].value, "3");
  ASSERT_NE(find("ps_live_workers"), nullptr);
  EXPECT_EQ(find("ps_live_workers")->metric[0].gauge.value, 1);
}

TEST(ServerMetricsTest, PortInUseIsUnavailable) {
  absl::StatusOr<std::unique_ptr<ServerMetrics>> first =
      ServerMetrics::Start("127.0.0.1", 0, 0, [] { return v1::GetStatusResponse(); });
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<std::unique_ptr<ServerMetrics>> second = ServerMetrics::Start(
      "127.0.0.1", (*first)->port(), 0, [] { return v1::GetStatusResponse(); });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", (*first)->port())));
}

}  // namespace
}  // namespace ps
