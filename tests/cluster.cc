#include "tests/cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace ps {
namespace testing {

Process::Process(Process&& other) noexcept { *this = std::move(other); }

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = other.pid_;
    log_path_ = std::move(other.log_path_);
    other.pid_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

absl::StatusOr<Process> Process::Start(const std::vector<std::string>& argv,
                                       const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Process p;
  p.log_path_ = log_path;
  const int rc = posix_spawn(&p.pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    p.pid_ = -1;
    return absl::InternalError(absl::StrCat("cannot start ", argv[0], ": ", std::strerror(rc)));
  }
  return p;
}

void Process::Signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

absl::StatusOr<int> Process::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("process not running");
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat("process ", pid_, " still running after ",
                                                      absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

std::string Process::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<PortReservation> PortReservation::Reserve() {
  PortReservation r;
  r.fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // not inherited by children
  if (r.fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int one = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (setsockopt(r.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(r.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(r.fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError(absl::StrCat("cannot reserve a port: ", std::strerror(errno)));
  }
  r.port_ = ntohs(addr.sin_port);
  return r;
}

PortReservation::PortReservation(PortReservation&& other) noexcept { *this = std::move(other); }

void PortReservation::Release() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

PortReservation& PortReservation::operator=(PortReservation&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    port_ = other.port_;
    other.fd_ = -1;
  }
  return *this;
}

PortReservation::~PortReservation() {
  if (fd_ >= 0) close(fd_);
}

std::string RunfilePath(const std::string& relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr) {
    return absl::StrCat(srcdir, "/", workspace != nullptr ? workspace : "ps", "/", relative);
  }
  return absl::StrCat("bazel-bin/", relative);
}

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", name, "-", getpid());
  mkdir(dir.c_str(), 0755);
  return dir;
}

absl::StatusOr<int> WaitForPortFile(const std::string& path, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(path);
    int port = 0;
    if (in >> port && port > 0) return port;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("no port in ", path, " after ",
                                                  absl::FormatDuration(timeout)));
}

absl::Status ServerCluster::Start(int num_shards, const std::string& dir,
                                  const std::vector<std::string>& extra_flags) {
  dir_ = dir;
  reserved_.clear();
  ports_.clear();
  for (int i = 0; i < num_shards; ++i) {
    absl::StatusOr<PortReservation> r = PortReservation::Reserve();
    if (!r.ok()) return r.status();
    ports_.push_back(r->port());
    reserved_.push_back(*std::move(r));
  }
  shards_.resize(num_shards);
  for (int i = 0; i < num_shards; ++i) {
    if (absl::Status s = StartShard(i, ports_[i], extra_flags); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ServerCluster::Restart(int i, const std::vector<std::string>& extra_flags) {
  return StartShard(i, ports_[i], extra_flags);
}

absl::Status ServerCluster::StartShard(int i, int port,
                                       const std::vector<std::string>& extra_flags) {
  const std::string port_file = absl::StrCat(dir_, "/server-", i, ".port");
  std::remove(port_file.c_str());
  if (static_cast<size_t>(i) < reserved_.size()) reserved_[i].Release();
  std::vector<std::string> argv = {RunfilePath("server/ps_server"),
                                   "--host=127.0.0.1",
                                   absl::StrCat("--port=", port),
                                   absl::StrCat("--port_file=", port_file),
                                   absl::StrCat("--shard_index=", i),
                                   absl::StrCat("--servers=", servers_flag())};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  absl::StatusOr<Process> p = Process::Start(argv, absl::StrCat(dir_, "/server-", i, ".log"));
  if (!p.ok()) return p.status();
  shards_[i] = *std::move(p);
  absl::StatusOr<int> got = WaitForPortFile(port_file, absl::Seconds(30));
  if (!got.ok()) return got.status();
  ports_[i] = *got;
  return absl::OkStatus();
}

std::vector<std::string> ServerCluster::addresses() const {
  std::vector<std::string> out;
  for (int p : ports_) out.push_back(absl::StrCat("127.0.0.1:", p));
  return out;
}

std::string ServerCluster::servers_flag() const { return absl::StrJoin(addresses(), ","); }

absl::StatusOr<std::string> FindField(const std::string& text, const std::string& marker,
                                      const std::string& key) {
  std::string found;
  bool any = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.find(marker) == absl::string_view::npos) continue;
    for (absl::string_view field : absl::StrSplit(line, ' ')) {
      if (absl::StartsWith(field, key + "=")) {
        found = std::string(field.substr(key.size() + 1));
        any = true;
      }
    }
  }
  if (!any) {
    return absl::NotFoundError(absl::StrCat("no line with '", marker, "' and ", key, "="));
  }
  return found;
}

double NumberField(const std::string& text, const std::string& marker, const std::string& key) {
  absl::StatusOr<std::string> v = FindField(text, marker, key);
  double d = -1;
  if (!v.ok()) {
    ADD_FAILURE() << v.status() << "\n" << text;
  } else if (!absl::SimpleAtod(*v, &d)) {
    ADD_FAILURE() << key << "=" << *v << " is not a number";
    d = -1;
  }
  return d;
}

}  // namespace testing
}  // namespace ps
