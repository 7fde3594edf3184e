// ps_server: one parameter-server shard. Every flag can also be given in the environment
// as PS_<FLAG> (e.g. PS_SHARD_INDEX), so one container image serves every shard.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/channel_credentials.h"
#include "common/flags_env.h"
#include "common/host_port.h"
#include "common/malloc_tuning.h"
#include "common/memory_budget.h"
#include "common/tf_config.h"
#include "glog/logging.h"
#include "server/rpc/ps_server.h"

ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address to listen on (gRPC and metrics): this machine only unless told otherwise; "
          "0.0.0.0 for every interface. In a container, the pod's address (docs/security.md).");
ABSL_FLAG(int, port, 50051, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the chosen port is written here once serving.");
ABSL_FLAG(int, shard_index, 0, "This shard's index in --servers.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Tokens and their roles, one \"<role> <token>\" per line (worker, operator, monitor); "
          "calls without a listed token are refused, and the file is read again when it "
          "changes (docs/security.md). Empty: no authorization.");
ABSL_FLAG(bool, open_monitoring, false,
          "With --auth_tokens_file: GetStatus, ClusterStatus and Watch need no token.");
ABSL_FLAG(std::string, token_file, "",
          "The token this shard presents to its peers (an operator's); unset: $PS_TOKEN.");
ABSL_FLAG(bool, plaintext, false,
          "Serve without TLS although --host is reachable from other machines (not "
          "loopback): chosen explicitly, for trusted networks (docs/security.md).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "TLS: this shard's certificate chain (PEM), read again when it changes; with "
          "--tls_key_file. Unset: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "", "TLS: this shard's private key (PEM).");
ABSL_FLAG(std::string, tls_ca_file, "",
          "TLS: the CA bundle that signs client certificates and the peers' certificates.");
ABSL_FLAG(std::string, tls_client_certs, "none",
          "TLS: none, optional (verified when given) or require (mTLS).");
ABSL_FLAG(absl::Duration, tls_refresh_interval, absl::Seconds(60),
          "TLS: how often certificate files are looked at for changes.");
ABSL_FLAG(std::string, servers, "", "Comma-separated host:port of every shard; its length is the shard count.");
ABSL_FLAG(int, num_shards, 0, "Shard count, when --servers is not given.");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(1), "How often workers should heartbeat.");
ABSL_FLAG(absl::Duration, heartbeat_timeout, absl::Seconds(10), "Silence after which a worker is dropped.");
ABSL_FLAG(absl::Duration, max_pull_wait, absl::Minutes(5), "Longest a pull waits for its version.");
ABSL_FLAG(int64_t, max_request_bytes, 64 << 20, "Largest push or pull payload accepted.");
ABSL_FLAG(std::string, checkpoint_dir, "", "Directory for this shard's checkpoints; empty: none. The newest is restored at start.");
ABSL_FLAG(int64_t, checkpoint_every_steps, 0, "Checkpoint sync tables at every multiple of this version (0: off).");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::ZeroDuration(), "Also checkpoint this often (0: off).");
ABSL_FLAG(int, checkpoint_keep, 3, "Newest checkpoint files kept per shard.");
ABSL_FLAG(bool, same_host_windows, true,
          "Offer same-host transfer windows: workers on this host (same boot id, pid and "
          "network namespace) move tensor bytes by cross-memory attach instead of TCP.");
ABSL_FLAG(int64_t, max_sparse_keys, 1 << 17, "Most keys of one sparse table in one request.");
ABSL_FLAG(int64_t, max_tables, 4096, "Most tables (dense and sparse) this shard holds.");
ABSL_FLAG(bool, check_finite_updates, true,
          "Refuse (INVALID_ARGUMENT) a push whose update would make a parameter or optimizer "
          "state inf or NaN; the table stays as it was. Off saves one read pass per push.");
ABSL_FLAG(int64_t, memory_budget_mb, 0,
          "MiB that tables, sync buffers and same-host windows may hold; beyond it requests get "
          "RESOURCE_EXHAUSTED. 0: 80% of the container's (cgroup) or machine's memory.");
ABSL_FLAG(bool, allow_start_without_state, false,
          "Serve even when nothing was restored while a peer shard holds the job's progress "
          "(otherwise every call is refused with STATE_LOST: the shard lost its state).");
ABSL_FLAG(absl::Duration, shutdown_timeout, absl::Seconds(10),
          "On SIGTERM or SIGINT, the longest the shard takes to stop (pending calls, the final "
          "checkpoint); past it the process exits with status 1. Keep it below the "
          "orchestrator's grace period (Kubernetes: terminationGracePeriodSeconds).");
ABSL_FLAG(int, metrics_port, -1,
          "Port of the Prometheus endpoint (/metrics); -1 turns it off, 0 picks a free one.");
ABSL_FLAG(int, health_port, -1,
          "A plaintext port with only the standard health service, mirroring --port's, for "
          "probes that cannot speak TLS (the kubelet's); -1 off, 0 a free one.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the chosen metrics port is written here once serving (before --port_file).");

namespace {

constexpr char kUsage[] = R"(ps_server: one shard of the parameter server.

Usage: ps_server --shard_index=I --servers=host:port,host:port,... [flags]

Every shard of a job gets the same --servers list (in shard order) and its own index.
The model lives here: tables are created by the first worker that asks and kept until the
shard stops (or restored from --checkpoint_dir when it starts again).)";

std::vector<std::string> Servers() {
  return absl::StrSplit(absl::GetFlag(FLAGS_servers), ',', absl::SkipEmpty());
}

int NumShards() {
  if (!Servers().empty()) return static_cast<int>(Servers().size());
  return absl::GetFlag(FLAGS_num_shards) > 0 ? absl::GetFlag(FLAGS_num_shards) : 1;
}

// Writes `port` to `path` atomically, so a reader never sees a partial number.
bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp) << port << "\n";
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

// --memory_budget_mb in bytes (0: the machine's default); -1 after printing why it is bad.
int64_t MemoryBudgetFromFlag() {
  const int64_t mb = absl::GetFlag(FLAGS_memory_budget_mb);
  if (mb < 0 || mb > (int64_t{1} << 40)) {
    std::fprintf(stderr, "ps_server: --memory_budget_mb=%lld is outside [0, 2^40]\n",
                 static_cast<long long>(mb));
    return -1;
  }
  const int64_t bytes = mb > 0 ? mb << 20 : ps::DefaultMemoryBudget();
  LOG(INFO) << "memory budget " << ps::FormatBytesIEC(bytes)
            << (mb > 0 ? "" : " (80% of this container's memory)");
  return bytes;
}

// The server's options from its flags; an error (already printed) for a bad one.
absl::StatusOr<ps::ServerOptions> OptionsFromFlags() {
  ps::ServerOptions options;
  // The first line says how the port is protected (docs/security.md).
  LOG(INFO) << "ps_server on " << absl::GetFlag(FLAGS_host) << ": "
            << (absl::GetFlag(FLAGS_tls_cert_file).empty() ? "plaintext" : "TLS") << ", "
            << (absl::GetFlag(FLAGS_auth_tokens_file).empty()
                    ? "no tokens (anyone who reaches the port may call anything)"
                    : "tokens required");
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.shard_index = absl::GetFlag(FLAGS_shard_index);
  options.num_shards = NumShards();
  options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  options.heartbeat_timeout = absl::GetFlag(FLAGS_heartbeat_timeout);
  options.max_pull_wait = absl::GetFlag(FLAGS_max_pull_wait);
  options.max_request_bytes = absl::GetFlag(FLAGS_max_request_bytes);
  options.max_sparse_keys = absl::GetFlag(FLAGS_max_sparse_keys);
  options.max_tables = absl::GetFlag(FLAGS_max_tables);
  options.check_finite_updates = absl::GetFlag(FLAGS_check_finite_updates);
  options.allow_start_without_state = absl::GetFlag(FLAGS_allow_start_without_state);
  const int64_t budget = MemoryBudgetFromFlag();
  if (budget < 0) return absl::InvalidArgumentError("--memory_budget_mb");
  options.memory_budget_bytes = budget;
  options.same_host_windows = absl::GetFlag(FLAGS_same_host_windows);
  options.checkpoint.dir = absl::GetFlag(FLAGS_checkpoint_dir);
  options.checkpoint.every_steps = absl::GetFlag(FLAGS_checkpoint_every_steps);
  options.checkpoint.interval = absl::GetFlag(FLAGS_checkpoint_interval);
  options.checkpoint.keep = absl::GetFlag(FLAGS_checkpoint_keep);
  if (options.checkpoint.every_steps < 0 || options.checkpoint.keep < 1 ||
      options.checkpoint.interval < absl::ZeroDuration()) {
    LOG(ERROR) << "--checkpoint_every_steps and --checkpoint_interval must be >= 0 and "
                  "--checkpoint_keep >= 1";
    return absl::InvalidArgumentError("--checkpoint_*");
  }
  options.peers = Servers();
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.health_port = absl::GetFlag(FLAGS_health_port);
  options.auth.tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  options.auth.open_monitoring = absl::GetFlag(FLAGS_open_monitoring);
  absl::StatusOr<std::string> token = ps::LoadToken(absl::GetFlag(FLAGS_token_file));
  if (!token.ok()) {
    LOG(ERROR) << token.status().message();
    return token.status();
  }
  options.peer_credentials.token = *token;
  options.tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  if (options.tls.cert_file.empty() && !ps::IsLoopbackHost(options.host) &&
      !absl::GetFlag(FLAGS_plaintext)) {
    LOG(ERROR) << "--host=" << options.host
               << " is reachable from other machines, and this shard has no TLS: give "
                  "--tls_cert_file and --tls_key_file (docs/security.md), or --plaintext to "
                  "serve in the clear";
    return absl::InvalidArgumentError("--plaintext");
  }
  options.tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls.client_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  options.tls.refresh = absl::GetFlag(FLAGS_tls_refresh_interval);
  absl::StatusOr<ps::ServerTls::ClientCerts> client_certs =
      ps::ParseClientCerts(absl::GetFlag(FLAGS_tls_client_certs));
  if (!client_certs.ok()) {
    LOG(ERROR) << client_certs.status().message();
    return client_certs.status();
  }
  options.tls.client_certs = *client_certs;
  // Its peers are shards like it: the same CA, and its own certificate as the client's.
  if (!options.tls.cert_file.empty()) {
    options.peer_credentials.tls_ca_file = options.tls.client_ca_file;
    options.peer_credentials.tls_cert_file = options.tls.cert_file;
    options.peer_credentials.tls_key_file = options.tls.key_file;
    options.peer_credentials.tls_refresh = options.tls.refresh;
    if (options.tls.client_ca_file.empty()) {
      LOG(ERROR) << "--tls_cert_file needs --tls_ca_file: the shards verify each other";
      return absl::InvalidArgumentError("--tls_ca_file");
    }
  }
  return options;
}

int main(int argc, char** argv) {
  ps::KeepFreedMemoryForReuse();
  // Lock-order checking is for the tests (which keep it on); in the daemons it costs
  // about 1% of every pull and push (perf: GraphCycles::GetId).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  google::InitGoogleLogging(argv[0]);
  if (absl::Status s = ps::ApplyTfConfigFromEnv(ps::TfRole::kPs); !s.ok()) {  // before PS_*
    std::fprintf(stderr, "ps_server: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  ps::ParseFlagsOrExit(argc, argv, "ps_server", kUsage);

  // Block the stop signals here so every thread inherits the mask; one thread waits.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<ps::ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) return 2;  // OptionsFromFlags printed why
  absl::StatusOr<std::unique_ptr<ps::PsServer>> server = ps::PsServer::Start(*options);
  if (!server.ok()) {
    LOG(ERROR) << "cannot start: " << server.status();
    return 1;
  }
  const std::string metrics_port_file = absl::GetFlag(FLAGS_metrics_port_file);
  if (!metrics_port_file.empty() &&
      !WritePortFile(metrics_port_file, (*server)->metrics_port())) {
    LOG(ERROR) << "cannot write --metrics_port_file " << metrics_port_file;
    return 1;
  }
  const std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty() && !WritePortFile(port_file, (*server)->port())) {
    LOG(ERROR) << "cannot write --port_file " << port_file;
    return 1;
  }
  const absl::Duration shutdown_timeout = absl::GetFlag(FLAGS_shutdown_timeout);
  if (shutdown_timeout <= absl::ZeroDuration()) {
    LOG(ERROR) << "--shutdown_timeout must be positive";
    return 2;
  }
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    LOG(INFO) << "received signal " << sig << "; stopping within "
              << absl::FormatDuration(shutdown_timeout);
    // Whatever is still pending, the process ends within the bound: a pod's grace
    // period ends in a SIGKILL, which would leave no trace of why.
    std::thread([shutdown_timeout] {
      absl::SleepFor(shutdown_timeout);
      LOG(ERROR) << "still stopping after " << absl::FormatDuration(shutdown_timeout)
                 << " (--shutdown_timeout); exiting without waiting further";
      std::_Exit(1);
    }).detach();
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_thread.detach();
  if (absl::Status s = (*server)->shutdown_status(); !s.ok()) {
    LOG(ERROR) << "exiting with status 1: " << s.message();
    return 1;
  }
  return 0;
}
