// The POSIX FileSystem (errors name the operation, the path and the errno text, with the
// code errno maps to) and the fault-injecting double (fails once, keeps the code, names
// the path, leaves a torn file on a failed write).
#include "common/file_system.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fault_file_system_testing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::ps::testing::FaultFileSystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class FileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    ASSERT_NE(tmp, nullptr) << "run under bazel test";
    dir_ = absl::StrCat(tmp, "/", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(fs_->CreateDir(dir_).ok());
  }

  FileSystem* fs_ = DefaultFileSystem();
  std::string dir_;
};

TEST_F(FileSystemTest, WriteSyncRenameReadListDelete) {
  const std::string tmp = dir_ + "/.a.tmp", final_path = dir_ + "/a";
  ASSERT_TRUE(fs_->WriteFile(tmp, std::string("x\0y", 3)).ok());
  ASSERT_TRUE(fs_->SyncFile(tmp).ok());
  ASSERT_TRUE(fs_->Rename(tmp, final_path).ok());
  ASSERT_TRUE(fs_->SyncDir(dir_).ok());
  absl::StatusOr<std::string> bytes = fs_->ReadFile(final_path);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, std::string("x\0y", 3));
  ASSERT_TRUE(fs_->WriteFile(dir_ + "/b", "").ok());
  absl::StatusOr<std::vector<std::string>> names = fs_->ListDir(dir_);
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ElementsAre("a", "b"));
  // Writing again truncates.
  ASSERT_TRUE(fs_->WriteFile(final_path, "z").ok());
  EXPECT_EQ(*fs_->ReadFile(final_path), "z");
  ASSERT_TRUE(fs_->DeleteFile(final_path).ok());
  ASSERT_TRUE(fs_->DeleteFile(dir_ + "/b").ok());
  EXPECT_THAT(*fs_->ListDir(dir_), IsEmpty());
  EXPECT_TRUE(fs_->CreateDir(dir_).ok()) << "an existing directory is not an error";
}

TEST_F(FileSystemTest, ErrorsNameThePathAndTheErrnoText) {
  const std::string absent = dir_ + "/absent";
  absl::StatusOr<std::string> read = fs_->ReadFile(absent);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr(absent));
  EXPECT_THAT(read.status().message(), HasSubstr("No such file or directory"));

  absl::Status s = fs_->SyncFile(absent);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("fsync " + absent));

  s = fs_->Rename(absent, dir_ + "/to");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("rename ", absent, " to ", dir_, "/to")));

  EXPECT_EQ(fs_->DeleteFile(absent).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fs_->ListDir(absent).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(fs_->SyncDir(absent).code(), absl::StatusCode::kNotFound);

  s = fs_->WriteFile(absent + "/file", "x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr(absent + "/file"));

  // A file where a directory is wanted.
  ASSERT_TRUE(fs_->WriteFile(dir_ + "/plain", "x").ok());
  s = fs_->CreateDir(dir_ + "/plain");
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("create directory " + dir_ + "/plain: File exists"));
  s = fs_->SyncDir(dir_ + "/plain");
  EXPECT_THAT(s.message(), HasSubstr("Not a directory"));
}

TEST_F(FileSystemTest, FaultFileSystemFailsTheNextCallOnceWithTheChosenCode) {
  FaultFileSystem faults(fs_);
  const std::string path = dir_ + "/f";
  ASSERT_TRUE(faults.WriteFile(path, "abcd").ok());
  faults.FailNext(FaultFileSystem::Op::kSyncFile, absl::UnavailableError("injected"));
  absl::Status s = faults.SyncFile(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), absl::StrCat("fsync ", path, ": injected"));
  EXPECT_TRUE(faults.SyncFile(path).ok()) << "only the next call fails";
  EXPECT_EQ(faults.calls(FaultFileSystem::Op::kSyncFile), 2);

  faults.FailNext(FaultFileSystem::Op::kRename, absl::PermissionDeniedError("injected"));
  s = faults.Rename(path, dir_ + "/g");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("rename ", path, " to ", dir_, "/g")));
  EXPECT_THAT(*faults.ListDir(dir_), ElementsAre("f")) << "a failed rename changes nothing";
}

TEST_F(FileSystemTest, FaultFileSystemFailedWriteLeavesATornFile) {
  FaultFileSystem faults(fs_);
  const std::string path = dir_ + "/torn";
  faults.FailNext(FaultFileSystem::Op::kWriteFile, absl::ResourceExhaustedError("disk full"));
  absl::Status s = faults.WriteFile(path, "12345678");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), absl::StrCat("write ", path, ": disk full"));
  EXPECT_EQ(*fs_->ReadFile(path), "1234");
  EXPECT_EQ(faults.calls(FaultFileSystem::Op::kWriteFile), 1);
  EXPECT_EQ(faults.calls(FaultFileSystem::Op::kRename), 0);
}

}  // namespace
}  // namespace ps
