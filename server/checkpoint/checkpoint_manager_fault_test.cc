// CheckpointManager over a file system that fails: a failed write, fsync or rename is an
// error that names the file, leaves nothing a restore would read, and keeps the newest
// valid checkpoint restorable; a failed directory fsync keeps the older files; a
// directory that cannot be listed stops the restore.
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/fault_file_system_testing.h"
#include "common/file_system.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/checkpoint/checkpoint_file.h"
#include "server/checkpoint/checkpoint_manager.h"
#include "server/checkpoint/checkpoint_manager_testing.h"

namespace ps {
namespace {

using ::ps::testing::Adam;
using ::ps::testing::DenseSpec;
using ::ps::testing::FaultFileSystem;
using ::ps::testing::ListDir;
using ::ps::testing::TestShard;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Op = FaultFileSystem::Op;

class CheckpointFaultTest : public ::ps::testing::CheckpointDirTest {
 protected:
  CheckpointOptions FaultOptions(int keep = 3) {
    CheckpointOptions options = Options(keep);
    options.file_system = &faults_;
    return options;
  }

  // Writes a checkpoint of an async table at version 1, then takes it to version 2.
  // Returns the file's path.
  std::string WriteVersionOneThenStep(TestShard& a) {
    a.Create(DenseSpec("w", 4, v1::ASYNC, Adam()));
    EXPECT_TRUE(a.PushDense(0, 0, "w", {1, 2, 3, 4}).ok());
    absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(0, absl::Seconds(1));
    EXPECT_TRUE(w.ok()) << w.status();
    EXPECT_TRUE(a.PushDense(0, 1, "w", {1, 2, 3, 4}).ok());
    return w.ok() ? w->path() : "";
  }

  // A fresh shard on the real file system restores `path`, at version 1.
  void ExpectRestores(const std::string& path) {
    TestShard b(Options(), &now_);
    absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ(*restored, path);
    EXPECT_EQ(b.manager.latest_version(), 1);
    EXPECT_EQ(b.PullDense("w", 4).second, 1);
  }

  std::string TmpPath() const { return dir_ + "/.shard-0.tmp"; }
  static std::string Base(const std::string& path) { return path.substr(path.rfind('/') + 1); }

  FaultFileSystem faults_{DefaultFileSystem()};
};

struct FailedStep {
  const char* name;
  Op op;
  absl::StatusCode code;
  const char* verb;  // how the file system's message names the operation
};

void PrintTo(const FailedStep& step, std::ostream* os) { *os << step.name; }

class FailedStepTest : public CheckpointFaultTest,
                       public ::testing::WithParamInterface<FailedStep> {};

TEST_P(FailedStepTest, IsAnErrorNamingTheFileAndTheOlderCheckpointIsRestored) {
  const FailedStep& step = GetParam();
  TestShard a(FaultOptions(), &now_);
  const std::string older = WriteVersionOneThenStep(a);
  ASSERT_FALSE(older.empty());

  faults_.FailNext(step.op, absl::Status(step.code, "injected"));
  const int calls_before = faults_.calls(step.op);
  absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(0, absl::Seconds(1));
  EXPECT_EQ(faults_.calls(step.op), calls_before + 1);
  EXPECT_EQ(w.status().code(), step.code);
  EXPECT_THAT(w.status().message(), HasSubstr("shard 0: checkpoint at version 2 not written"));
  EXPECT_THAT(w.status().message(), HasSubstr(absl::StrCat(step.verb, " ", TmpPath())));
  EXPECT_THAT(w.status().message(), HasSubstr(": injected"));
  if (step.op == Op::kRename) {
    EXPECT_THAT(w.status().message(),
                HasSubstr(absl::StrCat(" to ", dir_, "/shard-0-000000000002-")));
  }
  // Only the older file is left: no temporary file, nothing under version 2.
  EXPECT_THAT(ListDir(dir_), ElementsAre(Base(older)));
  EXPECT_THAT(FilesAt(2), ::testing::IsEmpty());
  EXPECT_EQ(a.manager.latest_path(), older);
  EXPECT_EQ(a.manager.latest_version(), 1);
  ExpectRestores(older);

  // The failure was once: the next checkpoint is written.
  w = a.manager.Checkpoint(0, absl::Seconds(1));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version(), 2);
  EXPECT_THAT(ListDir(dir_), ElementsAre(Base(older), Base(w->path())));
  EXPECT_TRUE(ReadCheckpointFile(w->path()).ok());
}

INSTANTIATE_TEST_SUITE_P(
    CheckpointFaultTest, FailedStepTest,
    ::testing::Values(
        FailedStep{"Write", Op::kWriteFile, absl::StatusCode::kResourceExhausted, "write"},
        FailedStep{"Fsync", Op::kSyncFile, absl::StatusCode::kUnavailable, "fsync"},
        FailedStep{"Rename", Op::kRename, absl::StatusCode::kPermissionDenied, "rename"}),
    [](const ::testing::TestParamInfo<FailedStep>& info) { return info.param.name; });

TEST_F(CheckpointFaultTest, FailedDirectoryFsyncIsAnErrorAndPrunesNothing) {
  TestShard a(FaultOptions(/*keep=*/1), &now_);
  const std::string older = WriteVersionOneThenStep(a);
  ASSERT_FALSE(older.empty());
  faults_.FailNext(Op::kSyncDir, absl::DataLossError("injected"));
  absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(0, absl::Seconds(1));
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(w.status().message(), HasSubstr("fsync directory " + dir_ + ": injected"));
  EXPECT_THAT(w.status().message(), HasSubstr("maybe not durable"));
  // The new file is complete under its name, but may not survive a crash: the older one
  // stays although keep is 1.
  ASSERT_EQ(FilesAt(2).size(), 1u);
  const std::string newer = absl::StrCat(dir_, "/", FilesAt(2).at(0));
  EXPECT_THAT(w.status().message(), HasSubstr(newer));
  EXPECT_THAT(ListDir(dir_), ElementsAre(Base(older), Base(newer)));
  EXPECT_EQ(a.manager.latest_path(), newer);
  absl::StatusOr<v1::ShardCheckpoint> file = ReadCheckpointFile(newer);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(CheckpointVersion(*file), 2);
}

TEST_F(CheckpointFaultTest, UnreadableNewestFileIsSkippedForTheOlderOne) {
  std::string older;
  {
    TestShard a(Options(), &now_);
    older = WriteVersionOneThenStep(a);
    ASSERT_TRUE(a.manager.Checkpoint(0, absl::Seconds(1)).ok());
  }
  TestShard b(FaultOptions(), &now_);
  faults_.FailNext(Op::kReadFile, absl::UnavailableError("injected"));
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, older);
  EXPECT_EQ(faults_.calls(Op::kReadFile), 2);
}

TEST_F(CheckpointFaultTest, UnlistableDirectoryFailsTheRestore) {
  TestShard b(FaultOptions(), &now_);
  faults_.FailNext(Op::kListDir, absl::PermissionDeniedError("injected"));
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(restored.status().message(), HasSubstr("list directory " + dir_ + ": injected"));
}

TEST_F(CheckpointFaultTest, AbsentDirectoryRestoresNothing) {
  CheckpointOptions options = FaultOptions();
  options.dir = dir_ + "/not-yet";
  for (const std::string& name : ListDir(options.dir)) {
    ASSERT_TRUE(DefaultFileSystem()->DeleteFile(options.dir + "/" + name).ok());
  }
  std::remove(options.dir.c_str());  // left by an earlier run in the same TEST_TMPDIR
  TestShard b(options, &now_);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, "");
  // The first checkpoint creates it.
  b.Create(DenseSpec("w", 4, v1::ASYNC, Adam()));
  absl::StatusOr<v1::CheckpointResponse::Written> w = b.manager.Checkpoint(0, absl::Seconds(1));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(faults_.calls(Op::kCreateDir), 1);
  EXPECT_THAT(ListDir(options.dir), ElementsAre(Base(w->path())));
}

}  // namespace
}  // namespace ps
