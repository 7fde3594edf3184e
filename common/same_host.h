// Same-host transfers: moving tensor bytes between a worker and a server on one host with
// cross-memory attach (process_vm_readv / process_vm_writev) instead of through TCP.
// See docs/same_host.md for the protocol and the safety argument.
#ifndef PS_COMMON_SAME_HOST_H_
#define PS_COMMON_SAME_HOST_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ps {

// What makes two processes "the same host" for these transfers: the kernel's boot id and
// the pid and network namespaces. Pods on one Kubernetes node differ in both namespaces,
// so they never use windows with each other; nor do the network-namespace test's hosts.
struct HostIdentity {
  int64_t pid = 0;
  std::string boot_id;
  uint64_t pid_namespace = 0;
  uint64_t net_namespace = 0;
};

// This process's identity; fields that cannot be read stay empty / zero, and an identity
// with an empty boot id or a zero namespace never matches anything.
HostIdentity LocalHostIdentity();
bool SameHost(const HostIdentity& a, const HostIdentity& b);

// One contiguous copy between this process and another: `bytes` at `local` and at
// `remote` (an address in the other process).
struct RemoteCopy {
  char* local;
  uint64_t remote;
  size_t bytes;
};

// Copies every range from (read) or to (write) process `pid`, in batches of at most
// IOV_MAX ranges, continuing after partial transfers. An error names the pid, the
// direction and errno's text (EPERM: no ptrace permission; ESRCH: no such process;
// EFAULT: an address outside the other process's mappings).
absl::Status ReadFromProcess(int64_t pid, const std::vector<RemoteCopy>& copies);
absl::Status WriteToProcess(int64_t pid, const std::vector<RemoteCopy>& copies);

}  // namespace ps

#endif  // PS_COMMON_SAME_HOST_H_
