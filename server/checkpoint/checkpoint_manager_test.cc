// CheckpointManager: files written atomically and restored exactly (values, optimizer
// slots, versions, workers' history), sync tables captured at an exact version, periodic
// checkpoints and pruning, and corrupt, truncated or foreign files refused.
#include "server/checkpoint/checkpoint_manager.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/checkpoint/checkpoint_file.h"
#include "server/checkpoint/checkpoint_manager_testing.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace {

using ::ps::testing::Adam;
using ::ps::testing::Decode;
using ::ps::testing::DenseSpec;
using ::ps::testing::ListDir;
using ::ps::testing::ReadFile;
using ::ps::testing::Sgd;
using ::ps::testing::WriteFile;

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

using Shard = ::ps::testing::TestShard;

class CheckpointManagerTest : public ::ps::testing::CheckpointDirTest {};

TEST_F(CheckpointManagerTest, WithoutADirectoryCheckpointIsFailedPrecondition) {
  Shard shard(CheckpointOptions(), &now_);
  shard.Create(DenseSpec("w", 4, v1::ASYNC, Sgd()));
  absl::StatusOr<v1::CheckpointResponse::Written> w = shard.manager.Checkpoint(0, absl::Seconds(1));
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(w.status().message(), HasSubstr("checkpoint_dir"));
  absl::StatusOr<std::string> restored = shard.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, "");
}

TEST_F(CheckpointManagerTest, RestoreKeepsValuesSlotsVersionsAndWorkers) {
  std::map<std::string, v1::TableCheckpoint> expected;
  v1::CheckpointResponse::Written written;
  {
    Shard a(Options(), &now_);
    a.Join(0);
    a.Join(1);
    a.Create(DenseSpec("adam", 6, v1::ASYNC, Adam()));
    a.Create(DenseSpec("sgd", 4, v1::SYNC, Sgd()));
    v1::TableSpec sparse;
    sparse.set_name("emb");
    sparse.set_kind(v1::SPARSE);
    sparse.set_row_width(3);
    *sparse.mutable_optimizer() = Adam();
    sparse.set_consistency(v1::ASYNC);
    a.Create(sparse);
    ASSERT_TRUE(a.PushDense(0, 0, "adam", {1, -2, 3, -4, 5, -6}).ok());
    ASSERT_TRUE(a.PushDense(1, 0, "adam", {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f}).ok());
    ASSERT_TRUE(a.PushDense(1, 0, "adam", {1, 1, 1, 1, 1, 1}).ok());
    for (int64_t step = 0; step < 2; ++step) {
      ASSERT_TRUE(a.PushDense(0, step, "sgd", {1, 2, 3, 4}).ok());
      ASSERT_TRUE(a.PushDense(1, step, "sgd", {3, 2, 1, 0}).ok());
    }
    ASSERT_TRUE(a.PushSparse("emb", {4, 900}, {1, 2, 3, -1, -2, -3}).ok());
    v1::WorkerStats stats;
    stats.set_clock(7);
    stats.set_epoch(2);
    stats.set_loss(0.25f);
    ASSERT_TRUE(a.registry.Heartbeat(0, stats).ok());
    stats.set_clock(5);
    ASSERT_TRUE(a.registry.Heartbeat(1, stats).ok());

    absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(0, absl::Seconds(1));
    ASSERT_TRUE(w.ok()) << w.status();
    written = *w;
    expected = a.CaptureAll();
  }
  ASSERT_THAT(expected, SizeIs(3));
  EXPECT_EQ(expected["adam"].version(), 3);
  EXPECT_EQ(expected["sgd"].version(), 2);
  EXPECT_EQ(expected["emb"].version(), 1);
  EXPECT_THAT(expected["adam"].slots(), SizeIs(2));
  EXPECT_THAT(expected["emb"].slots(), SizeIs(2));
  EXPECT_EQ(written.version(), 2);  // a shard with sync tables is named by their version
  EXPECT_EQ(written.shard_index(), 0);
  ASSERT_THAT(FilesAt(2), SizeIs(1));
  EXPECT_EQ(written.path(), absl::StrCat(dir_, "/", FilesAt(2).at(0)));
  EXPECT_EQ(static_cast<size_t>(written.bytes()), ReadFile(written.path()).size());
  EXPECT_THAT(ListDir(dir_), SizeIs(1));
  ExpectOnlyCheckpointFiles();

  Shard b(Options(), &now_);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, written.path());
  EXPECT_EQ(b.manager.latest_path(), written.path());
  EXPECT_EQ(b.manager.latest_version(), 2);
  std::map<std::string, v1::TableCheckpoint> got = b.CaptureAll();
  ASSERT_THAT(got, SizeIs(3));
  for (const auto& [name, want] : expected) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got[name], want)) << name;
  }
  // The workers are known again with their last figures, and live, as they were when
  // the checkpoint was written.
  std::vector<v1::WorkerStatus> workers = b.registry.Snapshot();
  ASSERT_THAT(workers, SizeIs(2));
  EXPECT_EQ(workers[0].worker_index(), 0);
  EXPECT_TRUE(workers[0].live());
  EXPECT_EQ(workers[0].host(), "host-0");
  EXPECT_EQ(workers[0].stats().clock(), 7);
  EXPECT_EQ(workers[0].stats().epoch(), 2);
  EXPECT_EQ(workers[0].stats().loss(), 0.25f);
  EXPECT_EQ(workers[1].worker_index(), 1);
  EXPECT_TRUE(workers[1].live());
  EXPECT_EQ(workers[1].stats().clock(), 5);
  EXPECT_THAT(b.registry.LiveWorkers(), ElementsAre(0, 1));

  // Training goes on from the restored state: the sync table takes step 2, not 0, and
  // waits for both workers.
  EXPECT_EQ(b.PushDense(0, 0, "sgd", {1, 1, 1, 1}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b.PushDense(0, 2, "sgd", {1, 1, 1, 1}).ok());
  EXPECT_EQ(b.PullDense("sgd", 4).second, 2);
  ASSERT_TRUE(b.PushDense(1, 2, "sgd", {1, 1, 1, 1}).ok());
  EXPECT_EQ(b.PullDense("sgd", 4).second, 3);
}

// A shard stopped in the middle of a sync step keeps the gradients it acknowledged for
// it: worker 0's whole gradient and half of worker 1's are in the checkpoint, and the
// restarted shard finishes the step with the other half, applying the average of both.
// The pushes it had applied are duplicates after the restart (the ledger is saved too).
TEST_F(CheckpointManagerTest, ASyncStepInProgressAndThePushLedgerSurviveARestart) {
  std::vector<float> initial;
  {
    Shard a(Options(), &now_);
    a.Join(0);
    a.Join(1);
    a.Create(DenseSpec("w", 4, v1::SYNC, Sgd()));
    initial = a.PullDense("w", 4).first;
    ASSERT_TRUE(a.PushDense(0, 0, "w", {4, 4, 4, 4}).ok());
    v1::PushId id;
    id.set_incarnation(77);
    id.set_sequence(1);
    ASSERT_EQ(a.ledger.Begin(0, id), PushLedger::Claim::kApply);
    a.ledger.End(0, id, /*applied=*/true);
    v1::PushRequest half;
    half.set_worker_index(1);
    half.set_step(0);
    v1::DenseSlice* slice = half.add_dense();
    slice->set_table("w");
    slice->set_offset(0);
    slice->set_length(2);
    const float g[2] = {2, 2};
    slice->set_values(reinterpret_cast<const char*>(g), sizeof(g));
    v1::PushResponse response;
    ASSERT_TRUE(a.store.Push(half, &response).ok());
    ASSERT_TRUE(a.manager.Checkpoint(0, absl::Seconds(1)).ok());
  }
  Shard b(Options(), &now_);
  ASSERT_TRUE(b.manager.RestoreNewest().ok());
  v1::PushId id;
  id.set_incarnation(77);
  id.set_sequence(1);
  EXPECT_EQ(b.ledger.Begin(0, id), PushLedger::Claim::kDuplicate);
  EXPECT_EQ(b.PullDense("w", 4).second, 0);
  // Worker 0's gradient for step 0 is there: pushing it again is ALREADY_EXISTS.
  EXPECT_EQ(b.PushDense(0, 0, "w", {4, 4, 4, 4}).code(), absl::StatusCode::kAlreadyExists);
  v1::PushRequest rest;
  rest.set_worker_index(1);
  rest.set_step(0);
  v1::DenseSlice* slice = rest.add_dense();
  slice->set_table("w");
  slice->set_offset(2);
  slice->set_length(2);
  const float g[2] = {2, 2};
  slice->set_values(reinterpret_cast<const char*>(g), sizeof(g));
  v1::PushResponse response;
  ASSERT_TRUE(b.store.Push(rest, &response).ok());
  const auto [values, version] = b.PullDense("w", 4);
  EXPECT_EQ(version, 1);
  // Sgd() is lr 0.5: the mean gradient (4 + 2) / 2 moves every value by -1.5.
  ASSERT_EQ(values.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ(values[i], initial[i] - 1.5f) << i;
}

TEST_F(CheckpointManagerTest, SyncCheckpointAtAFutureVersionWaitsForTheStep) {
  Shard a(Options(), &now_);
  a.Join(0);
  a.Join(1);
  a.Create(DenseSpec("s", 4, v1::SYNC, Sgd()));
  const std::vector<float> initial = a.PullDense("s", 4).first;

  std::atomic<bool> done{false};
  absl::StatusOr<v1::CheckpointResponse::Written> w;
  std::thread writer([&] {
    w = a.manager.Checkpoint(/*at_version=*/1, absl::Seconds(5));
    done.store(true);
  });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(done.load()) << "checkpoint at version 1 returned while the table is at 0";
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  ASSERT_TRUE(a.PushDense(0, 0, "s", {1, 0, 2, 4}).ok());
  ASSERT_TRUE(a.PushDense(1, 0, "s", {1, 4, 2, 0}).ok());  // average {1, 2, 2, 2}
  writer.join();
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version(), 1);
  EXPECT_THAT(FilesAt(1), SizeIs(1));
  const auto [after_step_1, version] = a.PullDense("s", 4);
  ASSERT_EQ(version, 1);
  EXPECT_THAT(after_step_1, ElementsAre(initial[0] - 0.5f, initial[1] - 1.0f,
                                        initial[2] - 1.0f, initial[3] - 1.0f));

  // The next step changes the table, not the file.
  ASSERT_TRUE(a.PushDense(0, 1, "s", {2, 2, 2, 2}).ok());
  ASSERT_TRUE(a.PushDense(1, 1, "s", {2, 2, 2, 2}).ok());
  EXPECT_EQ(a.PullDense("s", 4).second, 2);
  absl::StatusOr<v1::ShardCheckpoint> file = ReadCheckpointFile(w->path());
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tables_size(), 1);
  EXPECT_EQ(file->tables(0).version(), 1);
  EXPECT_THAT(Decode(file->tables(0).params()), ElementsAreArray(after_step_1));
  ExpectOnlyCheckpointFiles();
}

TEST_F(CheckpointManagerTest, SyncCheckpointAtAPastVersionIsFailedPrecondition) {
  Shard a(Options(), &now_);
  a.Join(0);
  a.Create(DenseSpec("s", 4, v1::SYNC, Sgd()));
  ASSERT_TRUE(a.PushDense(0, 0, "s", {1, 1, 1, 1}).ok());
  ASSERT_TRUE(a.PushDense(0, 1, "s", {1, 1, 1, 1}).ok());
  absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(1, absl::Seconds(1));
  EXPECT_EQ(w.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(w.status().message(), HasSubstr("'s'"));
  EXPECT_THAT(w.status().message(), HasSubstr("already at version 2"));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  w = a.manager.Checkpoint(-1, absl::Seconds(1));
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
  // The current version is written at once.
  w = a.manager.Checkpoint(2, absl::Seconds(1));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version(), 2);
  EXPECT_THAT(FilesAt(2), SizeIs(1));
}

TEST_F(CheckpointManagerTest, SyncCheckpointTimesOutWithDeadlineExceeded) {
  Shard a(Options(), &now_);
  a.Join(0);
  a.Create(DenseSpec("s", 4, v1::SYNC, Sgd()));
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::CheckpointResponse::Written> w =
      a.manager.Checkpoint(5, absl::Milliseconds(100));
  EXPECT_EQ(w.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(w.status().message(), HasSubstr("version 5"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_THAT(ListDir(dir_), IsEmpty());
  // The abandoned request leaves nothing behind: steps 1..5 and a checkpoint now work.
  for (int64_t step = 0; step < 5; ++step) {
    ASSERT_TRUE(a.PushDense(0, step, "s", {1, 1, 1, 1}).ok());
  }
  w = a.manager.Checkpoint(0, absl::Seconds(1));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version(), 5);
}

// Runs 4 sync steps with a periodic writer every 2 steps, waiting for each write.
void RunFourSteps(Shard& a, std::map<int64_t, std::vector<float>>* values_at) {
  a.Join(0);
  a.Create(DenseSpec("s", 4, v1::SYNC, Sgd()));
  a.manager.Start();
  for (int64_t step = 0; step < 4; ++step) {
    ASSERT_TRUE(a.PushDense(0, step, "s", {1, 2, 3, 4}).ok());
    (*values_at)[step + 1] = a.PullDense("s", 4).first;
    if ((step + 1) % 2 == 0) {
      const absl::Time give_up = absl::Now() + absl::Seconds(5);
      while (a.manager.latest_version() != step + 1 && absl::Now() < give_up) {
        absl::SleepFor(absl::Milliseconds(10));
      }
      ASSERT_EQ(a.manager.latest_version(), step + 1) << "periodic writer did not write";
    }
  }
  a.manager.Stop();
}

TEST_F(CheckpointManagerTest, EveryStepsWritesAtMultiplesOfTheInterval) {
  Shard a(Options(/*keep=*/3, /*every_steps=*/2), &now_);
  std::map<int64_t, std::vector<float>> values_at;
  RunFourSteps(a, &values_at);
  EXPECT_THAT(FilesAt(1), IsEmpty());
  EXPECT_THAT(FilesAt(2), SizeIs(1));
  EXPECT_THAT(FilesAt(3), IsEmpty());
  EXPECT_THAT(FilesAt(4), SizeIs(1));
  EXPECT_THAT(ListDir(dir_), SizeIs(2));
  ExpectOnlyCheckpointFiles();
  for (int64_t v : {2, 4}) {
    absl::StatusOr<v1::ShardCheckpoint> file =
        ReadCheckpointFile(absl::StrCat(dir_, "/", FilesAt(v).at(0)));
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_EQ(file->tables_size(), 1);
    EXPECT_EQ(file->tables(0).version(), v);
    EXPECT_THAT(Decode(file->tables(0).params()), ElementsAreArray(values_at[v]));
  }
}

TEST_F(CheckpointManagerTest, KeepOnePrunesOlderFiles) {
  Shard a(Options(/*keep=*/1, /*every_steps=*/2), &now_);
  std::map<int64_t, std::vector<float>> values_at;
  RunFourSteps(a, &values_at);
  EXPECT_THAT(FilesAt(2), IsEmpty());
  EXPECT_THAT(FilesAt(4), SizeIs(1));
  EXPECT_THAT(ListDir(dir_), SizeIs(1));
}

TEST_F(CheckpointManagerTest, PeriodicCapturesAreExactEvenWhenTheWriterLags) {
  Shard a(Options(/*keep=*/3, /*every_steps=*/2), &now_);
  a.Join(0);
  a.Create(DenseSpec("s", 4, v1::SYNC, Sgd()));
  a.manager.Start();
  // Six steps back to back: the writer (every 50 ms) may see several versions at once.
  std::map<int64_t, std::vector<float>> values_at;
  for (int64_t step = 0; step < 6; ++step) {
    ASSERT_TRUE(a.PushDense(0, step, "s", {1, -2, 0.5f, 4}).ok());
    values_at[step + 1] = a.PullDense("s", 4).first;
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (a.manager.latest_version() != 6 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  a.manager.Stop();
  EXPECT_EQ(a.manager.latest_version(), 6);
  EXPECT_THAT(FilesAt(6), SizeIs(1));
  // Whatever was written holds the values of exactly its version, captured in the step.
  for (const std::string& name : ListDir(dir_)) {
    absl::StatusOr<v1::ShardCheckpoint> file = ReadCheckpointFile(absl::StrCat(dir_, "/", name));
    ASSERT_TRUE(file.ok()) << file.status();
    ASSERT_EQ(file->tables_size(), 1);
    const int64_t v = file->tables(0).version();
    EXPECT_EQ(v % 2, 0) << name;
    EXPECT_THAT(FilesAt(v), ElementsAre(name));
    EXPECT_THAT(Decode(file->tables(0).params()), ElementsAreArray(values_at[v])) << name;
  }
}

// Checkpoint(0) while steps run: each step is one push naming both sync tables, and
// every file holds the two at the same version (they were captured one version apart in
// 2 of 300 files before, and a shard restored from one refused every push).
TEST_F(CheckpointManagerTest, EveryTableOfACheckpointIsAtOneVersionWhileStepsRun) {
  Shard a(Options(/*keep=*/1000), &now_);
  a.Join(0);
  a.Create(DenseSpec("a", 4, v1::SYNC, Sgd()));
  a.Create(DenseSpec("b", 4, v1::SYNC, Sgd()));
  std::atomic<bool> stop{false};
  std::thread steps([&] {
    for (int64_t step = 0; !stop.load(); ++step) {
      v1::PushRequest request;
      request.set_worker_index(0);
      request.set_step(step);
      for (const char* table : {"a", "b"}) {
        v1::DenseSlice* slice = request.add_dense();
        slice->set_table(table);
        slice->set_offset(0);
        slice->set_length(4);
        slice->set_values(::ps::testing::Encode({1, 1, 1, 1}));
      }
      v1::PushResponse response;
      ASSERT_TRUE(a.store.Push(request, &response).ok()) << step;
    }
  });
  std::vector<std::string> paths;
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(0, absl::Seconds(1));
    ASSERT_TRUE(w.ok()) << w.status();
    paths.push_back(w->path());
  }
  stop.store(true);
  steps.join();
  int distinct = 0;
  int64_t last = -1;
  for (const std::string& path : paths) {
    absl::StatusOr<v1::ShardCheckpoint> file = ReadCheckpointFile(path);
    if (!file.ok()) continue;  // a name written twice within a millisecond
    ASSERT_EQ(file->tables_size(), 2);
    EXPECT_EQ(file->tables(0).version(), file->tables(1).version()) << path;
    distinct += file->tables(0).version() != last;
    last = file->tables(0).version();
  }
  EXPECT_GT(distinct, 10);  // the steps did run between the checkpoints
}

// Writes two checkpoints of an async table, at versions 1 and 2; returns their paths.
std::pair<std::string, std::string> WriteTwo(Shard& a) {
  a.Create(DenseSpec("w", 4, v1::ASYNC, Adam()));
  EXPECT_TRUE(a.PushDense(0, 0, "w", {1, 2, 3, 4}).ok());
  absl::StatusOr<v1::CheckpointResponse::Written> older = a.manager.Checkpoint(0, absl::Seconds(1));
  EXPECT_TRUE(a.PushDense(0, 1, "w", {1, 2, 3, 4}).ok());
  absl::StatusOr<v1::CheckpointResponse::Written> newer = a.manager.Checkpoint(0, absl::Seconds(1));
  EXPECT_TRUE(older.ok() && newer.ok());
  if (!older.ok() || !newer.ok()) return {};
  EXPECT_EQ(older->version(), 1);
  EXPECT_EQ(newer->version(), 2);
  return {older->path(), newer->path()};
}

TEST_F(CheckpointManagerTest, CorruptNewestFileIsSkippedForTheOlderOne) {
  Shard a(Options(), &now_);
  const auto [older, newer] = WriteTwo(a);
  ASSERT_FALSE(newer.empty());
  std::string bytes = ReadFile(newer);
  bytes[bytes.size() - 3] ^= 0x10;
  WriteFile(newer, bytes);
  absl::StatusOr<v1::ShardCheckpoint> bad = ReadCheckpointFile(newer);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("CRC"));
  EXPECT_THAT(bad.status().message(), HasSubstr(newer));

  Shard b(Options(), &now_);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, older);
  EXPECT_EQ(b.manager.latest_version(), 1);
  absl::StatusOr<v1::ShardCheckpoint> good = ReadCheckpointFile(older);
  ASSERT_TRUE(good.ok()) << good.status();
  std::map<std::string, v1::TableCheckpoint> got = b.CaptureAll();
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got["w"], good->tables(0)));
  EXPECT_EQ(got["w"].version(), 1);
}

// The newest file reads and verifies, but one of its tables does not fit this shard (a
// second table, restored fine, came before it): the shard keeps nothing of that file and
// restores the older one (it refused to start before).
TEST_F(CheckpointManagerTest, AValidButUnusableNewestFileIsSkippedForTheOlderOne) {
  Shard a(Options(), &now_);
  const auto [older, newer] = WriteTwo(a);
  ASSERT_FALSE(newer.empty());
  absl::StatusOr<v1::ShardCheckpoint> file = ReadCheckpointFile(newer);
  ASSERT_TRUE(file.ok()) << file.status();
  v1::TableCheckpoint extra = file->tables(0);
  extra.mutable_spec()->set_name("a_first");
  file->mutable_tables(0)->mutable_params()->resize(8);  // "w": 2 of its 4 values
  *file->add_tables() = extra;
  file->mutable_tables()->SwapElements(0, 1);  // "a_first" is restored first
  absl::StatusOr<std::string> bytes = EncodeCheckpointFile(*file);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  WriteFile(newer, *bytes);
  ASSERT_TRUE(ReadCheckpointFile(newer).ok());  // valid as a file

  Shard b(Options(), &now_);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, older);
  EXPECT_EQ(b.manager.latest_version(), 1);
  std::map<std::string, v1::TableCheckpoint> got = b.CaptureAll();
  ASSERT_THAT(got, SizeIs(1));  // nothing of the newer file, "a_first" included
  EXPECT_EQ(got["w"].version(), 1);
}

TEST_F(CheckpointManagerTest, TruncatedFileIsDataLossAndSkipped) {
  Shard a(Options(), &now_);
  const auto [older, newer] = WriteTwo(a);
  ASSERT_FALSE(newer.empty());
  const std::string bytes = ReadFile(newer);
  WriteFile(newer, bytes.substr(0, bytes.size() - 10));
  absl::StatusOr<v1::ShardCheckpoint> bad = ReadCheckpointFile(newer);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("truncated"));

  Shard b(Options(), &now_);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, older);
  EXPECT_EQ(b.PullDense("w", 4).second, 1);
}

TEST_F(CheckpointManagerTest, NoUsableFileRestoresNothing) {
  Shard a(Options(), &now_);
  a.Join(0);
  const auto [older, newer] = WriteTwo(a);
  ASSERT_FALSE(newer.empty());
  std::string bytes = ReadFile(newer);
  bytes[bytes.size() / 2] ^= 0x01;
  WriteFile(newer, bytes);
  bytes = ReadFile(older);
  WriteFile(older, bytes.substr(0, bytes.size() / 2));
  const std::string junk = absl::StrCat(dir_, "/shard-0-000000000009-1.ckpt");
  WriteFile(junk, "not a checkpoint at all");
  absl::StatusOr<v1::ShardCheckpoint> bad = ReadCheckpointFile(junk);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("bad magic"));
  EXPECT_EQ(ReadCheckpointFile(dir_ + "/absent.ckpt").status().code(),
            absl::StatusCode::kNotFound);

  Shard b(Options(), &now_);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(*restored, "");
  EXPECT_THAT(b.store.Tables(), IsEmpty());
  EXPECT_THAT(b.store.SparseTables(), IsEmpty());
  EXPECT_THAT(b.registry.Snapshot(), IsEmpty());
  EXPECT_EQ(b.manager.latest_path(), "");
}

TEST_F(CheckpointManagerTest, OtherShardCountIsFailedPrecondition) {
  Shard a(Options(), &now_);
  const auto [older, newer] = WriteTwo(a);
  ASSERT_FALSE(newer.empty());
  Shard b(Options(), &now_, /*shard=*/0, /*num_shards=*/2);
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(restored.status().message(), HasSubstr("shard count"));
  EXPECT_THAT(restored.status().message(), HasSubstr(newer));
  EXPECT_THAT(b.store.Tables(), IsEmpty());
}

// A shard over 2 GiB (one protobuf message's limit): its file is written as records and
// restored whole. About 10 GB of memory and 5 GB of disk at its peak, so it runs when
// PS_LARGE_CHECKPOINT_TEST=1 (docs/checkpoints.md has a run's figures):
//   PS_LARGE_CHECKPOINT_TEST=1 bazel test //server/checkpoint:checkpoint_manager_test
//     --test_env=PS_LARGE_CHECKPOINT_TEST --test_filter='*OverTwoGiB*' --test_output=all
// (one command line).
TEST_F(CheckpointManagerTest, AShardOverTwoGiBIsWrittenAndRestored) {
  if (std::getenv("PS_LARGE_CHECKPOINT_TEST") == nullptr) {
    GTEST_SKIP() << "set PS_LARGE_CHECKPOINT_TEST=1 (needs ~10 GB of memory)";
  }
  const int64_t n = int64_t{600} << 20;  // 2.34 GiB of float32
  std::vector<float> sample;
  std::string path;
  {
    Shard a(Options(), &now_);
    a.Join(0);
    a.Create(DenseSpec("huge", n, v1::ASYNC, Sgd()));  // its initial values, version 0
    const absl::Time start = absl::Now();
    absl::StatusOr<v1::CheckpointResponse::Written> w = a.manager.Checkpoint(0, absl::Seconds(1));
    ASSERT_TRUE(w.ok()) << w.status();
    std::printf("wrote %lld bytes in %.1f s\n", static_cast<long long>(w->bytes()),
                absl::ToDoubleSeconds(absl::Now() - start));
    EXPECT_GT(w->bytes(), int64_t{2} << 30);
    path = w->path();
    EXPECT_EQ(ReadFile(path).substr(0, 8), "PSCKPT02");
    std::map<std::string, v1::TableCheckpoint> captured = a.CaptureAll();
    const std::string& params = captured["huge"].params();
    for (int64_t i = 0; i < n; i += n / 97) {
      float v;
      std::memcpy(&v, params.data() + i * 4, 4);
      sample.push_back(v);
    }
  }
  Shard b(Options(), &now_);
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> restored = b.manager.RestoreNewest();
  ASSERT_TRUE(restored.ok()) << restored.status();
  std::printf("restored in %.1f s\n", absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_EQ(*restored, path);
  std::map<std::string, v1::TableCheckpoint> got = b.CaptureAll();
  ASSERT_EQ(static_cast<int64_t>(got["huge"].params().size()), n * 4);
  EXPECT_EQ(got["huge"].version(), 0);
  size_t k = 0;
  for (int64_t i = 0; i < n; i += n / 97, ++k) {
    float v;
    std::memcpy(&v, got["huge"].params().data() + i * 4, 4);
    ASSERT_EQ(v, sample[k]) << i;
  }
}

}  // namespace
}  // namespace ps
