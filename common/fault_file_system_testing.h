// FaultFileSystem: a FileSystem for tests that passes every call to another one (usually
// DefaultFileSystem() on the test's temporary directory) and fails the calls it is told
// to, as LevelDB's FaultInjectionTestEnv does, so a test can show what a full disk, a
// failed fsync or a failed rename does to the code above it.
//
// An injected failure keeps the chosen status's code and, as the FileSystem contract
// asks, prefixes its message with the operation and the path:
// FailNext(Op::kSyncFile, absl::UnavailableError("injected")) makes the next SyncFile(p)
// return UNAVAILABLE "fsync <p>: injected". A failed WriteFile first writes the first
// half of the bytes, as a disk that fills up mid-file leaves them; a failed SyncFile,
// Rename or SyncDir changes nothing.
//
// Thread-safe. The wrapped FileSystem must outlive this one.
#ifndef PS_COMMON_FAULT_FILE_SYSTEM_TESTING_H_
#define PS_COMMON_FAULT_FILE_SYSTEM_TESTING_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/file_system.h"

namespace ps {
namespace testing {

class FaultFileSystem final : public FileSystem {
 public:
  enum class Op {
    kWriteFile,
    kSyncFile,
    kRename,
    kSyncDir,
    kReadFile,
    kListDir,
    kDeleteFile,
    kCreateDir,
  };

  explicit FaultFileSystem(FileSystem* base) : base_(base) {}

  // Makes the next call of `op` fail with `status` (not OK), once. Calling it again for
  // the same `op` before that call replaces the status.
  void FailNext(Op op, absl::Status status);

  // Calls of `op` so far, failed ones included.
  int calls(Op op) const;

  absl::Status WriteFile(const std::string& path, absl::string_view data) override;
  absl::Status SyncFile(const std::string& path) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override;
  absl::Status DeleteFile(const std::string& path) override;
  absl::Status CreateDir(const std::string& dir) override;

 private:
  // Counts the call; returns the failure armed for `op` (and disarms it), else OK.
  absl::Status Take(Op op, absl::string_view what);

  FileSystem* const base_;
  mutable absl::Mutex mu_;
  std::map<Op, absl::Status> armed_ ABSL_GUARDED_BY(mu_);
  std::map<Op, int> calls_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testing
}  // namespace ps

#endif  // PS_COMMON_FAULT_FILE_SYSTEM_TESTING_H_
