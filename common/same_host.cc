#include "common/same_host.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace ps {
namespace {

uint64_t NamespaceInode(const char* path) {
  struct stat st;
  if (stat(path, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

absl::Status Copy(int64_t pid, const std::vector<RemoteCopy>& copies, bool write) {
  size_t i = 0;
  size_t done_in_first = 0;  // bytes of copies[i] already moved (after a partial transfer)
  std::vector<iovec> local, remote;
  while (i < copies.size()) {
    local.clear();
    remote.clear();
    size_t want = 0;
    for (size_t j = i; j < copies.size() && local.size() < IOV_MAX; ++j) {
      const size_t skip = j == i ? done_in_first : 0;
      const size_t n = copies[j].bytes - skip;
      if (n == 0) continue;
      local.push_back({copies[j].local + skip, n});
      remote.push_back({reinterpret_cast<void*>(copies[j].remote + skip), n});
      want += n;
    }
    if (local.empty()) break;
    const ssize_t got =
        write ? process_vm_writev(static_cast<pid_t>(pid), local.data(), local.size(),
                                  remote.data(), remote.size(), 0)
              : process_vm_readv(static_cast<pid_t>(pid), local.data(), local.size(),
                                 remote.data(), remote.size(), 0);
    if (got < 0) {
      const int err = errno;
      return absl::UnavailableError(absl::StrCat(write ? "writing to" : "reading from",
                                                 " process ", pid, " failed: ",
                                                 std::strerror(err)));
    }
    if (got == 0 && want > 0) {
      return absl::UnavailableError(absl::StrCat(write ? "writing to" : "reading from",
                                                 " process ", pid, " moved no bytes"));
    }
    // Advance past what was moved.
    size_t left = static_cast<size_t>(got);
    while (i < copies.size() && left > 0) {
      const size_t rest = copies[i].bytes - done_in_first;
      if (left >= rest) {
        left -= rest;
        ++i;
        done_in_first = 0;
      } else {
        done_in_first += left;
        left = 0;
      }
    }
    while (i < copies.size() && copies[i].bytes == done_in_first) {
      ++i;
      done_in_first = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace

HostIdentity LocalHostIdentity() {
  HostIdentity id;
  id.pid = static_cast<int64_t>(getpid());
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string line;
  if (std::getline(in, line)) id.boot_id = std::string(absl::StripAsciiWhitespace(line));
  id.pid_namespace = NamespaceInode("/proc/self/ns/pid");
  id.net_namespace = NamespaceInode("/proc/self/ns/net");
  return id;
}

bool SameHost(const HostIdentity& a, const HostIdentity& b) {
  return !a.boot_id.empty() && a.boot_id == b.boot_id && a.pid_namespace != 0 &&
         a.pid_namespace == b.pid_namespace && a.net_namespace != 0 &&
         a.net_namespace == b.net_namespace;
}

absl::Status ReadFromProcess(int64_t pid, const std::vector<RemoteCopy>& copies) {
  return Copy(pid, copies, /*write=*/false);
}

absl::Status WriteToProcess(int64_t pid, const std::vector<RemoteCopy>& copies) {
  return Copy(pid, copies, /*write=*/true);
}

}  // namespace ps
