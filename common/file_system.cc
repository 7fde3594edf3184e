#include "common/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace ps {
namespace {

// "<op> <path>: <errno text>", with the code that `error` maps to.
absl::Status ErrnoError(int error, const char* op, const std::string& path) {
  return absl::ErrnoToStatus(error, absl::StrCat(op, " ", path));
}

// The same for the call that just failed. Takes errno before anything else runs: building
// the message allocates, and a failed allocation would overwrite it.
absl::Status LastError(const char* op, const std::string& path) {
  return ErrnoError(errno, op, path);
}

// Closes `fd`; a failed close() can be the first report of a failed write (NFS).
absl::Status Close(int fd, const std::string& path) {
  if (::close(fd) != 0) return LastError("close", path);
  return absl::OkStatus();
}

class PosixFileSystem final : public FileSystem {
 public:
  absl::Status WriteFile(const std::string& path, absl::string_view data) override {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return LastError("open", path);
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      const ssize_t n = ::write(fd, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        const absl::Status s = LastError("write", path);
        ::close(fd);
        return s;
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    return Close(fd, path);
  }

  // Opens the file again to fsync it. Linux reports a writeback error to every
  // descriptor opened before the error and to the first one opened after it that asks,
  // so the new descriptor sees what the writer's would have.
  absl::Status SyncFile(const std::string& path) override {
    return SyncPath(path, O_RDONLY | O_CLOEXEC, "fsync");
  }

  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (std::rename(from.c_str(), to.c_str()) != 0) {
      const int error = errno;
      return absl::ErrnoToStatus(error, absl::StrCat("rename ", from, " to ", to));
    }
    return absl::OkStatus();
  }

  absl::Status SyncDir(const std::string& dir) override {
    return SyncPath(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, "fsync directory");
  }

  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LastError("open", path);
    std::string out;
    char buffer[1 << 16];
    while (true) {
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n == 0) break;
      if (n < 0) {
        if (errno == EINTR) continue;
        const absl::Status s = LastError("read", path);
        ::close(fd);
        return s;
      }
      out.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);  // read-only: nothing a failed close could lose
    return out;
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return LastError("list directory", dir);
    std::vector<std::string> names;
    while (true) {
      errno = 0;  // readdir() returns null both at the end and on an error
      const dirent* e = ::readdir(d);
      if (e == nullptr) break;
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    const int error = errno;
    ::closedir(d);
    if (error != 0) return ErrnoError(error, "list directory", dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  absl::Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return LastError("delete", path);
    return absl::OkStatus();
  }

  absl::Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) == 0) return absl::OkStatus();
    const int error = errno;
    struct stat st;
    if (error == EEXIST && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      return absl::OkStatus();
    }
    return ErrnoError(error, "create directory", dir);
  }

 private:
  static absl::Status SyncPath(const std::string& path, int flags, const char* op) {
    const int fd = ::open(path.c_str(), flags);
    if (fd < 0) return LastError(op, path);
    if (::fsync(fd) != 0) {
      const absl::Status s = LastError(op, path);
      ::close(fd);
      return s;
    }
    return Close(fd, path);
  }
};

}  // namespace

FileSystem* DefaultFileSystem() {
  static FileSystem* const fs = new PosixFileSystem();  // never destroyed: no exit order
  return fs;
}

}  // namespace ps
