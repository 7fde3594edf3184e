// FileSystem: the few file operations that durable writes need (write, fsync, rename,
// fsync a directory, read, list, delete, make a directory), behind an interface so that
// tests can replace it and fail a chosen call (common/fault_file_system_testing.h), as
// LevelDB's Env lets db/fault_injection_test.cc do. Code that writes files takes a
// FileSystem* in its constructor or options; DefaultFileSystem() is the POSIX one.
//
// Errors are absl::Status with the code errno maps to (ENOENT: NOT_FOUND, EACCES:
// PERMISSION_DENIED, ENOSPC: RESOURCE_EXHAUSTED, ...) and a message that names the
// operation, the path and the errno text: "fsync /ckpt/.shard-0.tmp: Input/output error".
// Implementations keep that contract, so callers add what they were doing, not the path.
//
// Thread-safe: every method may be called from several threads at once. Nothing here
// orders two calls on the same path; callers that need that serialize themselves.
#ifndef PS_COMMON_FILE_SYSTEM_H_
#define PS_COMMON_FILE_SYSTEM_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates `path` (or truncates it) and writes `data` to it. The bytes need not be
  // durable until SyncFile(path) returns OK. On an error the file may hold a prefix of
  // `data`: the caller deletes it.
  virtual absl::Status WriteFile(const std::string& path, absl::string_view data) = 0;

  // Makes the contents of `path` durable (fsync).
  virtual absl::Status SyncFile(const std::string& path) = 0;

  // Renames `from` to `to` atomically, replacing `to` if it exists. The new name is
  // durable once SyncDir() of its directory returns OK.
  virtual absl::Status Rename(const std::string& from, const std::string& to) = 0;

  // Makes the entries of directory `dir` (creations, renames, deletions) durable.
  virtual absl::Status SyncDir(const std::string& dir) = 0;

  // Returns the whole contents of `path`; NOT_FOUND when it does not exist.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;

  // Returns the names (not paths) of the entries of `dir`, sorted, without "." and "..";
  // NOT_FOUND when `dir` does not exist.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;

  // Removes file `path`; NOT_FOUND when it does not exist.
  virtual absl::Status DeleteFile(const std::string& path) = 0;

  // Creates directory `dir` (its parent must exist); OK when it already is a directory.
  virtual absl::Status CreateDir(const std::string& dir) = 0;
};

// The POSIX file system. Never null; lives for the whole process and holds no state.
FileSystem* DefaultFileSystem();

}  // namespace ps

#endif  // PS_COMMON_FILE_SYSTEM_H_
