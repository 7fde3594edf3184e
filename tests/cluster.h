// Helpers for multi-process tests: start real ps_server and ps_worker daemons (from the
// test's runfiles) on free loopback ports, wait for them, signal them, read their logs.
//
// Thread safety: one test thread at a time.
#ifndef PS_TESTS_CLUSTER_H_
#define PS_TESTS_CLUSTER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps {
namespace testing {

// A child process whose stdout and stderr go to `log_path`. Killed (SIGKILL) on
// destruction if still running.
class Process {
 public:
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  ~Process();

  static absl::StatusOr<Process> Start(const std::vector<std::string>& argv,
                                       const std::string& log_path);

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // Sends `sig`; the process is still reaped by Wait().
  void Signal(int sig) const;
  // Waits up to `timeout` for exit; returns the exit code (128 + signal if killed), or
  // DEADLINE_EXCEEDED if it is still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Holds a free loopback port until released, so servers that must know each other's
// addresses before they start can be given them. The port is bound, not listening; the
// server that is to use it can bind it only after Release() (shards refuse a port that
// is held: SO_REUSEPORT is off), which is done just before it starts.
class PortReservation {
 public:
  static absl::StatusOr<PortReservation> Reserve();
  PortReservation(PortReservation&& other) noexcept;
  PortReservation& operator=(PortReservation&& other) noexcept;
  ~PortReservation();

  int port() const { return port_; }
  // Frees the port for the server that is to listen on it. Idempotent.
  void Release();

 private:
  PortReservation() = default;
  int fd_ = -1;
  int port_ = 0;
};

// Path of a binary in this test's runfiles, e.g. "server/ps_server".
std::string RunfilePath(const std::string& relative);
// A fresh directory under TEST_TMPDIR (or /tmp).
std::string TempDir(const std::string& name);
// Waits for a --port_file to appear and returns the port in it.
absl::StatusOr<int> WaitForPortFile(const std::string& path, absl::Duration timeout);

// `num_shards` ps_server processes on 127.0.0.1, each on a free port reserved up front,
// started with --servers listing them all (so each shard's Admin service knows its peers).
class ServerCluster {
 public:
  // Starts every shard and waits until each has written its port.
  absl::Status Start(int num_shards, const std::string& dir,
                     const std::vector<std::string>& extra_flags = {});
  // Starts shard `i` again (after it was killed), on the same port.
  absl::Status Restart(int i, const std::vector<std::string>& extra_flags = {});
  std::string servers_flag() const;  // "127.0.0.1:p0,127.0.0.1:p1"
  std::vector<std::string> addresses() const;
  Process& shard(int i) { return shards_[i]; }
  int size() const { return static_cast<int>(shards_.size()); }

 private:
  absl::Status StartShard(int i, int port, const std::vector<std::string>& extra_flags);
  std::string dir_;
  std::vector<PortReservation> reserved_;  // held for the cluster's life, for Restart()
  std::vector<int> ports_;
  std::vector<Process> shards_;
};

// Returns the value of `key=` in the last line of `text` that contains `marker`.
absl::StatusOr<std::string> FindField(const std::string& text, const std::string& marker,
                                      const std::string& key);
// The same as a number; records a test failure (and returns -1) if it is missing or not
// a number.
double NumberField(const std::string& text, const std::string& marker, const std::string& key);
// A number from a worker's final "worker <i> done key=value ..." line.
inline double DoneField(const std::string& log, const std::string& key) {
  return NumberField(log, " done ", key);
}

}  // namespace testing
}  // namespace ps

#endif  // PS_TESTS_CLUSTER_H_
