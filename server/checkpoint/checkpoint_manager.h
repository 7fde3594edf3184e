// CheckpointManager: writes and restores one shard's checkpoints (docs/checkpoints.md).
//
// A checkpoint holds every table's spec, parameters, optimizer state and version, and
// the workers' last figures. It is written atomically: to a temporary file, fsync'd,
// renamed into place, and the directory fsync'd; a CRC-32 guards the payload, so a torn
// or corrupted file is detected and the next older one is used. Sync tables are captured
// at an exact version, inside the step that reaches it, so every shard of a job can
// write the same version: on demand (Checkpoint(at_version)) or every `every_steps`.
// Async and SSP tables are captured as they are at the time of the call. A last one is
// written by the caller at shutdown (Checkpoint(0, ...) after Stop()).
//
// All file I/O goes through the FileSystem in the options, so tests can fail a write, an
// fsync or a rename. A failed write leaves no file under a checkpoint's name: the
// temporary file (a name RestoreNewest never reads) is deleted, and the files written
// before are kept.
//
// Thread-safe. Lock order: a table's lock, then the manager's. Files are written one at a
// time under a lock of their own, taken with no table's lock held and before the
// manager's.
#ifndef PS_SERVER_CHECKPOINT_CHECKPOINT_MANAGER_H_
#define PS_SERVER_CHECKPOINT_CHECKPOINT_MANAGER_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/file_system.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/checkpoint/checkpointer.h"
#include "server/shard/parameter_store.h"
#include "server/shard/push_ledger.h"
#include "server/shard/worker_registry.h"

namespace ps {

struct CheckpointOptions {
  std::string dir;                          // empty: checkpoints disabled
  int64_t every_steps = 0;                  // sync tables: at every multiple of this version
  absl::Duration interval = absl::ZeroDuration();  // also every this long (0: never)
  int keep = 3;                             // newest files kept per shard
  FileSystem* file_system = nullptr;        // not owned; null: DefaultFileSystem()
  // When set and this shard holds sync tables, what `interval` does instead of writing a
  // checkpoint of this shard's own current version, so that every shard's file holds
  // the sync tables at one version (PsServer: shard 0 asks every shard to checkpoint at
  // the newest sync version; the others leave it to shard 0).
  std::function<void()> sync_interval;
};

class CheckpointManager final : public Checkpointer {
 public:
  // `store`, `registry`, `ledger` (may be null: no ledger saved) and options.file_system
  // must outlive the manager. Installs the store's step hook.
  CheckpointManager(const CheckpointOptions& options, int shard_index, int num_shards,
                    ParameterStore* store, WorkerRegistry* registry,
                    PushLedger* ledger = nullptr);
  ~CheckpointManager() override;

  // Loads the newest valid checkpoint of this shard into the (empty) store. Returns the
  // path restored, or "" when there is none (nor a directory, at the first start); files
  // that do not read or verify are logged and skipped. FAILED_PRECONDITION when the newest valid
  // one was written by a job with another shard count; the file system's error when the
  // directory cannot be listed.
  absl::StatusOr<std::string> RestoreNewest();

  // Whether checkpoints can be written: creates the directory when missing (its parent
  // must exist) and writes, syncs and deletes a probe file. FAILED_PRECONDITION naming the
  // directory and the cause otherwise; a shard refuses to start on it rather than find out
  // at its first checkpoint.
  absl::Status CheckDirUsable();

  absl::StatusOr<v1::CheckpointResponse::Written> Checkpoint(int64_t at_version,
                                                             absl::Duration timeout) override;

  // Starts the periodic writer (every_steps captures happen in the step hook; this thread
  // writes them, and takes time-based checkpoints).
  void Start();
  void Stop();
  // Answers every Checkpoint() call waiting for a version UNAVAILABLE now, and later ones
  // at once (the shard is stopping; Checkpoint(0) still writes).
  void StopWaiting();

  // Newest file written or restored, and its version, for status reports.
  std::string latest_path() const;
  int64_t latest_version() const;

 private:
  using Captures = std::map<std::string, v1::TableCheckpoint>;

  // Step hook: a sync table that reaches a wanted version copies itself.
  void OnStep(DenseTable* table);
  bool Wanted(int64_t version) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sync tables that hold elements here: these must all be captured at one version.
  std::vector<DenseTable*> SyncTables() const;
  // Every sync table at exactly `at_version`, waiting for steps at most `timeout`.
  absl::StatusOr<Captures> CaptureAt(int64_t at_version, absl::Duration timeout);
  // Periodic captures: removes and returns the newest version every sync table reached.
  std::optional<Captures> TakeNewestComplete();
  // The checkpoint: `captured`, every other table as it is now, and the workers.
  // (The analysis cannot follow a set of table locks taken in a loop.)
  v1::ShardCheckpoint Assemble(Captures captured) const ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // Assembles the checkpoint, writes its file and records it as the latest.
  absl::StatusOr<v1::CheckpointResponse::Written> CompleteAndWrite(Captures captured);
  // Writes `bytes` to a temporary file, fsyncs it and renames it to `path`; deletes the
  // temporary file if any step fails. The caller fsyncs the directory.
  absl::Status WriteAtomically(const std::string& path, absl::string_view bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  // Deletes all but the newest `keep` files.
  void Prune() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);
  void Loop();

  const CheckpointOptions options_;
  const int shard_index_;
  const int num_shards_;
  ParameterStore* const store_;
  WorkerRegistry* const registry_;
  PushLedger* const ledger_;
  FileSystem* const fs_;

  absl::Mutex write_mu_;  // one file written at a time
  mutable absl::Mutex mu_;
  // Version -> the sync tables captured at it so far.
  std::map<int64_t, Captures> captures_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int> requested_ ABSL_GUARDED_BY(mu_);  // on-demand versions, with waiters
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // Start() was called
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // StopWaiting() was called
  int64_t capture_seq_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by every step capture
  std::string latest_path_ ABSL_GUARDED_BY(mu_);
  int64_t latest_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_written_ ABSL_GUARDED_BY(mu_) = absl::Now();  // or when the manager was made

  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace ps

#endif  // PS_SERVER_CHECKPOINT_CHECKPOINT_MANAGER_H_
