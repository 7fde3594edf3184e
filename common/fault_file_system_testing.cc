#include "common/fault_file_system_testing.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ps {
namespace testing {

void FaultFileSystem::FailNext(Op op, absl::Status status) {
  absl::MutexLock lock(&mu_);
  armed_[op] = std::move(status);
}

int FaultFileSystem::calls(Op op) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

absl::Status FaultFileSystem::Take(Op op, absl::string_view what) {
  absl::MutexLock lock(&mu_);
  ++calls_[op];
  auto it = armed_.find(op);
  if (it == armed_.end()) return absl::OkStatus();
  const absl::Status armed = std::move(it->second);
  armed_.erase(it);
  return absl::Status(armed.code(), absl::StrCat(what, ": ", armed.message()));
}

absl::Status FaultFileSystem::WriteFile(const std::string& path, absl::string_view data) {
  absl::Status s = Take(Op::kWriteFile, absl::StrCat("write ", path));
  if (s.ok()) return base_->WriteFile(path, data);
  // A torn file for the caller to clean up; what the base says about it does not matter.
  base_->WriteFile(path, data.substr(0, data.size() / 2)).IgnoreError();
  return s;
}

absl::Status FaultFileSystem::SyncFile(const std::string& path) {
  absl::Status s = Take(Op::kSyncFile, absl::StrCat("fsync ", path));
  return s.ok() ? base_->SyncFile(path) : s;
}

absl::Status FaultFileSystem::Rename(const std::string& from, const std::string& to) {
  absl::Status s = Take(Op::kRename, absl::StrCat("rename ", from, " to ", to));
  return s.ok() ? base_->Rename(from, to) : s;
}

absl::Status FaultFileSystem::SyncDir(const std::string& dir) {
  absl::Status s = Take(Op::kSyncDir, absl::StrCat("fsync directory ", dir));
  return s.ok() ? base_->SyncDir(dir) : s;
}

absl::StatusOr<std::string> FaultFileSystem::ReadFile(const std::string& path) {
  absl::Status s = Take(Op::kReadFile, absl::StrCat("read ", path));
  if (!s.ok()) return s;
  return base_->ReadFile(path);
}

absl::StatusOr<std::vector<std::string>> FaultFileSystem::ListDir(const std::string& dir) {
  absl::Status s = Take(Op::kListDir, absl::StrCat("list directory ", dir));
  if (!s.ok()) return s;
  return base_->ListDir(dir);
}

absl::Status FaultFileSystem::DeleteFile(const std::string& path) {
  absl::Status s = Take(Op::kDeleteFile, absl::StrCat("delete ", path));
  return s.ok() ? base_->DeleteFile(path) : s;
}

absl::Status FaultFileSystem::CreateDir(const std::string& dir) {
  absl::Status s = Take(Op::kCreateDir, absl::StrCat("create directory ", dir));
  return s.ok() ? base_->CreateDir(dir) : s;
}

}  // namespace testing
}  // namespace ps
