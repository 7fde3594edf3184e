#include "server/rpc/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <exception>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "common/host_port.h"
#include "glog/logging.h"

namespace ps {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Builds families of one type whose samples all carry `shard` plus their own labels.
class FamilyBuilder {
 public:
  explicit FamilyBuilder(std::string shard) : shard_(std::move(shard)) {}

  MetricFamily* Family(const std::string& name, const std::string& help, MetricType type) {
    families_.push_back(MetricFamily{name, help, type, {}});
    return &families_.back();
  }

  void Sample(MetricFamily* family, double value,
              std::vector<ClientMetric::Label> labels = {}) const {
    ClientMetric m;
    m.label.push_back({"shard", shard_});
    for (ClientMetric::Label& l : labels) m.label.push_back(std::move(l));
    if (family->type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    family->metric.push_back(std::move(m));
  }

  // Returns the families that have samples (an empty one would print as a bare header).
  std::vector<MetricFamily> Take() {
    std::vector<MetricFamily> out;
    for (MetricFamily& f : families_) {
      if (!f.metric.empty()) out.push_back(std::move(f));
    }
    return out;
  }

 private:
  const std::string shard_;
  std::deque<MetricFamily> families_;  // a deque keeps Family()'s pointers valid
};

// Counts the calls of one ParameterServer or Admin method that end with an error status
// (refusals by the token check among them).
class RejectCounter final : public grpc::experimental::Interceptor {
 public:
  RejectCounter(ServerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (!status.ok()) metrics_->CountRejected(method_, status.error_code());
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  const std::string method_;  // "Push", "Admin.Checkpoint", ...
};

class RejectCounterFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RejectCounterFactory(ServerMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    absl::string_view method = info->method();
    if (absl::ConsumePrefix(&method, "/ps.v1.ParameterServer/")) {
      return new RejectCounter(metrics_, std::string(method));
    }
    if (absl::ConsumePrefix(&method, "/ps.v1.Admin/")) {
      return new RejectCounter(metrics_, absl::StrCat("Admin.", method));
    }
    return nullptr;
  }

 private:
  ServerMetrics* const metrics_;
};

}  // namespace

// Answers every scrape from a fresh status report.
class ServerMetrics::StatusCollector final : public prometheus::Collectable {
 public:
  StatusCollector(int shard_index, StatusFn status)
      : shard_index_(shard_index), status_(std::move(status)) {}

  std::vector<MetricFamily> Collect() const override {
    return StatusFamilies(status_(), shard_index_);
  }

 private:
  const int shard_index_;
  const StatusFn status_;
};

std::vector<MetricFamily> ServerMetrics::StatusFamilies(const v1::GetStatusResponse& status,
                                                        int shard_index) {
  FamilyBuilder b(absl::StrCat(shard_index));
  const MetricType kCounter = MetricType::Counter;
  const MetricType kGauge = MetricType::Gauge;

  b.Sample(b.Family("ps_push_requests_total", "Push calls received.", kCounter),
           status.push_requests());
  b.Sample(b.Family("ps_pull_requests_total", "Pull calls received.", kCounter),
           status.pull_requests());
  b.Sample(b.Family("ps_push_bytes_total", "Gradient bytes received in pushes.", kCounter),
           status.bytes_received());
  b.Sample(b.Family("ps_pull_bytes_total", "Parameter bytes sent in pulls.", kCounter),
           status.bytes_sent());
  b.Sample(b.Family("ps_push_window_bytes_total",
                    "Of ps_push_bytes_total, bytes that came through same-host windows.",
                    kCounter),
           status.window_bytes_received());
  b.Sample(b.Family("ps_pull_window_bytes_total",
                    "Of ps_pull_bytes_total, bytes that went through same-host windows.",
                    kCounter),
           status.window_bytes_sent());
  b.Sample(b.Family("ps_duplicate_pushes_total",
                    "Retried pushes answered without applying them again.", kCounter),
           status.duplicate_pushes());
  b.Sample(b.Family("ps_waiting_pulls",
                    "Pulls waiting now for a version or an SSP clock.", kGauge),
           status.waiting_pulls());
  b.Sample(b.Family("ps_window_bytes_held", "Memory held in same-host transfer windows.",
                    kGauge),
           status.window_bytes_held());
  b.Sample(b.Family("ps_uptime_seconds", "Seconds since the shard started.", kGauge),
           status.uptime_ms() / 1000.0);
  int live = 0;
  for (const v1::WorkerStatus& w : status.workers()) live += w.live() ? 1 : 0;
  b.Sample(b.Family("ps_live_workers", "Workers whose heartbeats are current.", kGauge), live);

  MetricFamily* version = b.Family("ps_table_version", "Table version (steps applied).", kGauge);
  MetricFamily* elements =
      b.Family("ps_table_elements", "Elements (dense) or rows (sparse) on this shard.", kGauge);
  MetricFamily* bytes =
      b.Family("ps_table_bytes", "Bytes of parameters and optimizer state on this shard.", kGauge);
  MetricFamily* pushes = b.Family("ps_table_pushes_total", "Pushes applied.", kCounter);
  MetricFamily* pulls = b.Family("ps_table_pulls_total", "Pulls answered.", kCounter);
  MetricFamily* rejected = b.Family("ps_table_rejected_pushes_total", "Pushes rejected.", kCounter);
  for (const v1::TableStatus& t : status.tables()) {
    const std::vector<ClientMetric::Label> table = {{"table", t.spec().name()}};
    b.Sample(version, t.version(), table);
    b.Sample(elements, t.elements_on_shard(), table);
    b.Sample(bytes, t.bytes_on_shard(), table);
    b.Sample(pushes, t.pushes(), table);
    b.Sample(pulls, t.pulls(), table);
    b.Sample(rejected, t.rejected_pushes(), table);
  }

  MetricFamily* speed =
      b.Family("ps_worker_samples_per_second", "Training throughput a worker reports.", kGauge);
  MetricFamily* loss = b.Family("ps_worker_loss", "Training loss a worker reports.", kGauge);
  MetricFamily* clock = b.Family("ps_worker_clock", "Steps a worker has completed.", kGauge);
  MetricFamily* heartbeat = b.Family("ps_worker_last_heartbeat_seconds",
                                     "Seconds since the worker's last heartbeat.", kGauge);
  for (const v1::WorkerStatus& w : status.workers()) {
    const std::vector<ClientMetric::Label> worker = {{"worker", absl::StrCat(w.worker_index())}};
    b.Sample(speed, w.stats().samples_per_sec(), worker);
    b.Sample(loss, w.stats().loss(), worker);
    b.Sample(clock, w.stats().clock(), worker);
    b.Sample(heartbeat, w.last_heartbeat_ms_ago() / 1000.0, worker);
  }
  return b.Take();
}

ServerMetrics::ServerMetrics(int shard_index, StatusFn status)
    : shard_label_(absl::StrCat(shard_index)),
      registry_(std::make_shared<prometheus::Registry>()),
      collector_(std::make_shared<StatusCollector>(shard_index, std::move(status))) {
  rejected_ = &prometheus::BuildCounter()
                   .Name("ps_rejected_requests_total")
                   .Help("ParameterServer calls that ended with an error, by method and code.")
                   .Register(*registry_);
}

ServerMetrics::~ServerMetrics() {
  if (exposer_ == nullptr) return;
  // civetweb's listener sees the stop request only when its poll() returns, up to two
  // seconds later; a connection ends the wait, so shutting down is not held up.
  absl::Notification stopped;
  std::thread poke([this, &stopped] {
    while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) continue;
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port_));
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      close(fd);
    }
  });
  exposer_.reset();
  stopped.Notify();
  poke.join();
}

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Start(const std::string& host,
                                                                    int port, int shard_index,
                                                                    StatusFn status) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics port=", port, " outside [0, 65535]"));
  }
  std::unique_ptr<ServerMetrics> m(new ServerMetrics(shard_index, std::move(status)));
  // The gRPC service's address: loopback, one interface's (a pod's), or every one.
  const bool loopback = IsLoopbackHost(host);
  const std::string bind =
      JoinHostPort(loopback ? "127.0.0.1" : (host.empty() ? "0.0.0.0" : host), port);
  // prometheus-cpp reports a failed bind by throwing (civetweb's CivetException).
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(bind, /*num_threads=*/2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", bind, ": ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  m->exposer_->RegisterCollectable(m->collector_);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(absl::StrCat("metrics server on ", bind, " has no port"));
  }
  m->port_ = ports[0];
  LOG(INFO) << "metrics on http://" << bind.substr(0, bind.rfind(':')) << ":" << m->port_
            << "/metrics";
  return m;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::NewInterceptorFactory() {
  return std::make_unique<RejectCounterFactory>(this);
}

void ServerMetrics::CountRejected(absl::string_view method, grpc::StatusCode code) {
  rejected_
      ->Add({{"shard", shard_label_},
             {"method", std::string(method)},
             {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
      .Increment();
}

}  // namespace ps
