// Authorizer: who may call what on a shard (docs/security.md). A caller presents a bearer
// token (`authorization: Bearer <token>`); the shard's tokens file gives each token a
// role, and each method admits some roles:
//
//   monitor:  GetStatus, Admin.ClusterStatus, Admin.Watch (open to anyone with
//             open_monitoring)
//   worker:   the monitor's, and Pull, Push, PushPull, CreateTable, RegisterWorker,
//             Heartbeat, LeaveWorker, OpenWindow, ListRows, Assign
//   operator: the monitor's, and Pull, CreateTable, ListRows, Admin.Checkpoint
//
// No token, or one not on the list, is UNAUTHENTICATED; a token whose role the method
// does not admit is PERMISSION_DENIED; both name the method, and the call changes
// nothing. Each refusal is logged at most once a minute per peer host (the counter
// ps_rejected_requests_total counts every one). The standard health service is not
// behind it (the kubelet's probes carry no token).
//
// Worker identity: the first credential that registers a worker index with this shard,
// or (for an index the shard restored from a checkpoint) first acts for it, owns it for
// the shard's life. Registrations, pulls, pushes, heartbeats, leaves and windows for
// that index from another credential are PERMISSION_DENIED, so one holder of a worker
// token cannot act as another worker. A credential is its token's name (the line's
// third field, else "<role>#<k>" for the role's k-th token) and, with mTLS, the client
// certificate's identity; tokens may share a name, so a token rotated under a running
// job keeps its workers. Without a tokens file nothing is bound.
//
// The tokens file: one "<role> <token> [name]" per line, '#' comments and blank lines
// ignored.
// It is read again when it changes on disk (looked at once a second at most), as a
// Kubernetes Secret is updated in place; a new version that does not parse is refused
// with an error in the log, and the old tokens stay.
//
// Thread-safe.
#ifndef PS_SERVER_RPC_AUTH_H_
#define PS_SERVER_RPC_AUTH_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ps {

enum class Role { kMonitor, kWorker, kOperator };

enum class Method {
  kCreateTable,
  kPull,
  kPush,
  kPushPull,
  kRegisterWorker,
  kHeartbeat,
  kLeaveWorker,
  kGetStatus,
  kOpenWindow,
  kListRows,
  kAssign,
  kClusterStatus,
  kWatch,
  kCheckpoint,
};

struct AuthOptions {
  std::string tokens_file;       // empty: no authorization, every call admitted
  bool open_monitoring = false;  // the monitor's methods need no token
  absl::Duration reload_interval = absl::Seconds(1);
};

class Authorizer {
 public:
  // INVALID_ARGUMENT naming the file (and line) when it cannot be read or parsed, or
  // holds no token.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(const AuthOptions& options);

  // Whether `method` may be called with these call headers from `peer` (gRPC's peer
  // string, "ipv4:10.0.0.7:40312"). The first form reads them from the call.
  // On success `*principal` (when given) is the caller's credential (empty without a
  // tokens file).
  absl::Status Check(const grpc::ServerContextBase& context, Method method,
                     std::string* principal = nullptr);
  absl::Status Check(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                     absl::string_view peer, Method method, std::string* principal = nullptr);

  // A call of `method` for `worker` by `principal`: OK when the index is the
  // principal's, or no one's (then it becomes the principal's); PERMISSION_DENIED, logged
  // as a refusal, when it is another's; RESOURCE_EXHAUSTED past kMaxOwners indices.
  // `*claimed` (when given) tells whether this call bound the index, so that a
  // registration the shard then refuses can give it back (ReleaseWorker). Tools'
  // indices (< 0) and an empty principal (no tokens file) are never bound.
  absl::Status CheckWorker(int worker, const std::string& principal, Method method,
                           bool* claimed = nullptr);
  void ReleaseWorker(int worker, const std::string& principal);
  static constexpr size_t kMaxOwners = 1 << 16;

  static const char* MethodName(Method method);
  static const char* RoleName(Role role);

 private:
  struct Entry {
    Role role;
    std::string token;
    std::string name;  // the credential's name (principal)
  };
  struct FileStamp {
    int64_t mtime_ns = -1, size = -1, inode = -1;
    bool operator==(const FileStamp& o) const {
      return mtime_ns == o.mtime_ns && size == o.size && inode == o.inode;
    }
  };

  explicit Authorizer(const AuthOptions& options) : options_(options) {}
  static absl::StatusOr<std::vector<Entry>> Parse(const std::string& file);
  static FileStamp Stamp(const std::string& file);
  // Reads the file again if it changed since it was last read (at most once per
  // reload_interval).
  void MaybeReload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs a refusal unless one from the same peer host was logged within a minute.
  void LogRefusal(absl::string_view peer, const absl::Status& refusal)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AuthOptions options_;
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  FileStamp stamp_ ABSL_GUARDED_BY(mu_);
  absl::Time next_check_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> last_logged_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int, std::string> owners_ ABSL_GUARDED_BY(mu_);  // worker -> principal
};

}  // namespace ps

#endif  // PS_SERVER_RPC_AUTH_H_
