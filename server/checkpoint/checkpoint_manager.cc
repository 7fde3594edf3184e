#include "server/checkpoint/checkpoint_manager.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/checkpoint/checkpoint_file.h"

namespace ps {
namespace {

// Files of this shard, newest first: shard-<i>-<version>-<unix ms>.ckpt. Other names
// (the temporary file among them) are not checkpoints. A missing directory holds none.
absl::StatusOr<std::vector<std::string>> ListCheckpoints(FileSystem* fs, const std::string& dir,
                                                         int shard) {
  absl::StatusOr<std::vector<std::string>> names = fs->ListDir(dir);
  if (absl::IsNotFound(names.status())) return std::vector<std::string>();
  if (!names.ok()) return names.status();
  struct Entry {
    int64_t version, ms;
    std::string name;
  };
  std::vector<Entry> entries;
  const std::string prefix = absl::StrCat("shard-", shard, "-");
  for (const std::string& name : *names) {
    if (name.rfind(prefix, 0) != 0 || name.size() < 5 ||
        name.compare(name.size() - 5, 5, ".ckpt") != 0) {
      continue;
    }
    std::vector<std::string> parts =
        absl::StrSplit(name.substr(prefix.size(), name.size() - prefix.size() - 5), '-');
    Entry entry{0, 0, name};
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &entry.version) ||
        !absl::SimpleAtoi(parts[1], &entry.ms)) {
      continue;
    }
    entries.push_back(entry);
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.version, a.ms) > std::tie(b.version, b.ms);
  });
  std::vector<std::string> out;
  for (const Entry& e : entries) out.push_back(dir + "/" + e.name);
  return out;
}

}  // namespace

CheckpointManager::CheckpointManager(const CheckpointOptions& options, int shard_index,
                                     int num_shards, ParameterStore* store,
                                     WorkerRegistry* registry, PushLedger* ledger)
    : options_(options),
      shard_index_(shard_index),
      num_shards_(num_shards),
      store_(store),
      registry_(registry),
      ledger_(ledger),
      fs_(options.file_system != nullptr ? options.file_system : DefaultFileSystem()) {
  store_->SetStepHook([this](DenseTable* t) { OnStep(t); });
}

CheckpointManager::~CheckpointManager() { Stop(); }

std::string CheckpointManager::latest_path() const {
  absl::MutexLock lock(&mu_);
  return latest_path_;
}

int64_t CheckpointManager::latest_version() const {
  absl::MutexLock lock(&mu_);
  return latest_version_;
}

bool CheckpointManager::Wanted(int64_t version) const {
  // Step-triggered captures only while the writer thread runs to write and free them.
  return (running_ && options_.every_steps > 0 && version % options_.every_steps == 0) ||
         requested_.count(version) > 0;
}

void CheckpointManager::OnStep(DenseTable* table) {
  table->mu()->AssertHeld();  // the store calls its step hook with the table's lock held
  if (options_.dir.empty() || table->local_size() == 0) return;
  const int64_t v = table->version();
  absl::MutexLock lock(&mu_);
  if (!Wanted(v)) return;
  captures_[v].emplace(table->name(), table->Capture());
  ++capture_seq_;  // wakes the writer
}

std::vector<DenseTable*> CheckpointManager::SyncTables() const {
  std::vector<DenseTable*> out;
  for (DenseTable* t : store_->Tables()) {
    if (t->is_sync() && t->local_size() > 0) out.push_back(t);
  }
  return out;
}

absl::StatusOr<v1::CheckpointResponse::Written> CheckpointManager::Checkpoint(
    int64_t at_version, absl::Duration timeout) {
  if (options_.dir.empty()) {
    return absl::FailedPreconditionError(
        "checkpoints are not configured: start ps_server with --checkpoint_dir");
  }
  if (at_version < 0) {
    return absl::InvalidArgumentError(absl::StrCat("at_version=", at_version, " is negative"));
  }
  // At 0 every table is taken as it is now, sync ones included.
  if (at_version == 0) return CompleteAndWrite({});
  absl::StatusOr<Captures> captured = CaptureAt(at_version, timeout);
  if (!captured.ok()) return captured.status();
  return CompleteAndWrite(*std::move(captured));
}

absl::StatusOr<CheckpointManager::Captures> CheckpointManager::CaptureAt(
    int64_t at_version, absl::Duration timeout) {
  const std::vector<DenseTable*> sync = SyncTables();
  {
    absl::MutexLock lock(&mu_);
    requested_[at_version]++;  // from here on, steps that reach it capture (OnStep)
  }
  absl::Status status;
  for (DenseTable* t : sync) {
    absl::MutexLock table_lock(t->mu());
    absl::MutexLock lock(&mu_);
    if (captures_[at_version].count(t->name())) continue;
    if (t->version() == at_version) {
      captures_[at_version].emplace(t->name(), t->Capture());
    } else if (t->version() > at_version) {
      status = absl::FailedPreconditionError(absl::StrCat(
          "table '", t->name(), "' on shard ", shard_index_, " is already at version ",
          t->version(), ", past the requested ", at_version));
      break;
    }
  }
  auto all_there = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const Captures& c = captures_[at_version];
    return std::all_of(sync.begin(), sync.end(),
                       [&](DenseTable* t) { return c.count(t->name()) > 0; });
  };
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || all_there(); };
  Captures captured;
  mu_.Lock();
  if (status.ok() && !mu_.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    status = absl::DeadlineExceededError(absl::StrCat(
        "shard ", shard_index_, ": sync tables did not all reach version ", at_version,
        " within ", absl::FormatDuration(timeout), " (is training running?)"));
  } else if (status.ok() && !all_there()) {
    status = absl::UnavailableError(absl::StrCat(
        "shard ", shard_index_, " is stopping: no checkpoint at version ", at_version,
        " (its last checkpoint holds the version it stops at)"));
  }
  if (status.ok()) captured = captures_[at_version];
  if (--requested_[at_version] == 0) {
    requested_.erase(at_version);
    captures_.erase(at_version);
  }
  mu_.Unlock();
  if (!status.ok()) return status;
  return captured;
}

v1::ShardCheckpoint CheckpointManager::Assemble(Captures captured) const {
  v1::ShardCheckpoint ckpt;
  ckpt.set_shard_index(shard_index_);
  ckpt.set_num_shards(num_shards_);
  ckpt.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  // The tables not captured at a version already are taken under all their locks at
  // once, in name order as pushes take them: a push (which may touch several tables, and
  // may finish a step of each) lies wholly before or wholly after the copy, so no two
  // tables are a version apart.
  // The lists are taken once, before any table lock: listing takes the store's lock,
  // which GetStatus holds while it takes the tables' (the other order would deadlock).
  const std::vector<DenseTable*> dense = store_->Tables();
  const std::vector<SparseTable*> sparse = store_->SparseTables();
  std::vector<std::pair<std::string, absl::Mutex*>> locks;
  for (DenseTable* t : dense) {
    if (!captured.count(t->name())) locks.emplace_back(t->name(), t->mu());
  }
  for (SparseTable* t : sparse) locks.emplace_back(t->name(), t->mu());
  std::sort(locks.begin(), locks.end());
  for (auto& [name, mu] : locks) mu->Lock();
  for (DenseTable* t : dense) {
    v1::TableCheckpoint* out = ckpt.add_tables();
    if (auto it = captured.find(t->name()); it != captured.end()) {
      *out = std::move(it->second);
    } else {
      t->mu()->AssertHeld();
      *out = t->Capture();
    }
  }
  for (SparseTable* t : sparse) {
    t->mu()->AssertHeld();
    *ckpt.add_tables() = t->Capture();
  }
  for (auto it = locks.rbegin(); it != locks.rend(); ++it) it->second->Unlock();
  for (v1::WorkerStatus& w : registry_->Snapshot()) *ckpt.add_workers() = std::move(w);
  for (v1::LiveWorker& w : registry_->LiveIncarnations()) *ckpt.add_live_workers() = std::move(w);
  // After the tables: every push the tables hold is in it (push_ledger.h).
  if (ledger_ != nullptr) {
    for (v1::PushLedgerEntry& e : ledger_->Capture()) *ckpt.add_pushes() = std::move(e);
  }
  return ckpt;
}

absl::StatusOr<v1::CheckpointResponse::Written> CheckpointManager::CompleteAndWrite(
    Captures captured) {
  const v1::ShardCheckpoint ckpt = Assemble(std::move(captured));
  const int64_t version = CheckpointVersion(ckpt);
  // What the shard was doing; the file system's message names the file and the errno.
  auto failed = [&](const absl::Status& s, absl::string_view what) {
    return absl::Status(s.code(), absl::StrCat("shard ", shard_index_, ": checkpoint at version ",
                                               version, " ", what, ": ", s.message()));
  };
  absl::StatusOr<std::string> bytes = EncodeCheckpointFile(ckpt);
  if (!bytes.ok()) return failed(bytes.status(), "not written");

  absl::MutexLock write_lock(&write_mu_);
  const std::string path = absl::StrFormat("%s/shard-%d-%012d-%d.ckpt", options_.dir,
                                           shard_index_, version, ckpt.created_unix_ms());
  if (absl::Status s = fs_->CreateDir(options_.dir); !s.ok()) return failed(s, "not written");
  if (absl::Status s = WriteAtomically(path, *bytes); !s.ok()) return failed(s, "not written");
  {
    // The file is complete under its name, so a restore now would read it.
    absl::MutexLock lock(&mu_);
    latest_path_ = path;
    latest_version_ = version;
    last_written_ = absl::Now();
  }
  // The rename is durable only once the directory entry is. Until then the older files
  // are what a crash leaves, so none are pruned.
  if (absl::Status s = fs_->SyncDir(options_.dir); !s.ok()) {
    return failed(s, absl::StrCat("written to ", path, " but maybe not durable"));
  }
  Prune();
  LOG(INFO) << "checkpoint written: " << path << " (version " << version << ", "
            << bytes->size() << " bytes)";
  v1::CheckpointResponse::Written written;
  written.set_shard_index(shard_index_);
  written.set_path(path);
  written.set_version(version);
  written.set_bytes(static_cast<int64_t>(bytes->size()));
  return written;
}

absl::Status CheckpointManager::WriteAtomically(const std::string& path,
                                                absl::string_view bytes) {
  // One temporary name per shard (writes are serialized); a crash can leave it behind,
  // and the next write truncates it.
  const std::string tmp_path = absl::StrCat(options_.dir, "/.shard-", shard_index_, ".tmp");
  absl::Status s = fs_->WriteFile(tmp_path, bytes);
  if (s.ok()) s = fs_->SyncFile(tmp_path);
  if (s.ok()) s = fs_->Rename(tmp_path, path);
  if (!s.ok()) {
    // RestoreNewest never reads the temporary name; deleting it just frees the space.
    if (absl::Status d = fs_->DeleteFile(tmp_path); !d.ok() && !absl::IsNotFound(d)) {
      LOG(WARNING) << "after a failed checkpoint: " << d;
    }
  }
  return s;
}

void CheckpointManager::Prune() {
  absl::StatusOr<std::vector<std::string>> files =
      ListCheckpoints(fs_, options_.dir, shard_index_);
  if (!files.ok()) {
    LOG(WARNING) << "old checkpoints not pruned: " << files.status();
    return;
  }
  for (size_t i = std::max(1, options_.keep); i < files->size(); ++i) {
    if (absl::Status s = fs_->DeleteFile((*files)[i]); !s.ok()) {
      LOG(WARNING) << "old checkpoint not pruned: " << s;
    }
  }
}

absl::Status CheckpointManager::CheckDirUsable() {
  if (options_.dir.empty()) return absl::OkStatus();
  const auto unusable = [&](const absl::Status& s) {
    return absl::FailedPreconditionError(
        absl::StrCat("--checkpoint_dir=", options_.dir, " cannot hold checkpoints: ", s.message(),
                     "; give a directory this shard can create and write"));
  };
  if (absl::Status s = fs_->CreateDir(options_.dir); !s.ok()) return unusable(s);
  const std::string probe = absl::StrCat(options_.dir, "/.probe-shard-", shard_index_, ".tmp");
  absl::Status s = fs_->WriteFile(probe, "ps_server checks that it can write here\n");
  if (s.ok()) s = fs_->SyncFile(probe);
  absl::Status d = fs_->DeleteFile(probe);
  if (!s.ok()) return unusable(s);
  if (!d.ok() && !absl::IsNotFound(d)) return unusable(d);
  return absl::OkStatus();
}

absl::StatusOr<std::string> CheckpointManager::RestoreNewest() {
  if (options_.dir.empty()) return std::string();
  absl::StatusOr<std::vector<std::string>> files =
      ListCheckpoints(fs_, options_.dir, shard_index_);
  if (!files.ok()) {
    return absl::Status(files.status().code(),
                        absl::StrCat("shard ", shard_index_, ": no checkpoint restored: ",
                                     files.status().message()));
  }
  for (const std::string& path : *files) {
    absl::StatusOr<v1::ShardCheckpoint> ckpt = ReadCheckpointFile(path, fs_);
    if (!ckpt.ok()) {
      LOG(WARNING) << "skipping unusable checkpoint: " << ckpt.status();
      continue;
    }
    if (ckpt->num_shards() != num_shards_ || ckpt->shard_index() != shard_index_) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " was written by shard ", ckpt->shard_index(), " of ", ckpt->num_shards(),
          "; this is shard ", shard_index_, " of ", num_shards_,
          " (changing the shard count of a job is not supported)"));
    }
    const int64_t version = CheckpointVersion(*ckpt);
    if (absl::Status s = store_->RestoreTables(ckpt->mutable_tables()); !s.ok()) {
      // A file that reads and verifies but does not fit (a table's sizes, spec or step
      // do not match this shard): the next older one is tried; nothing of it was kept.
      // Anything else (the memory budget, say) is for the operator to fix, not to skip.
      if (absl::IsDataLoss(s) || absl::IsInvalidArgument(s)) {
        LOG(WARNING) << "skipping unusable checkpoint " << path << ": " << s.message();
        continue;
      }
      return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
    }
    registry_->RestoreHistory({ckpt->workers().begin(), ckpt->workers().end()});
    registry_->RestoreLive({ckpt->live_workers().begin(), ckpt->live_workers().end()});
    for (const v1::LiveWorker& live : ckpt->live_workers()) {
      for (const v1::WorkerStatus& w : ckpt->workers()) {
        if (w.worker_index() == live.worker_index()) {
          store_->OnWorkerRegistered(w.worker_index(), w.stats().clock());
        }
      }
    }
    if (ledger_ != nullptr) ledger_->Restore({ckpt->pushes().begin(), ckpt->pushes().end()});
    {
      absl::MutexLock lock(&mu_);
      latest_path_ = path;
      latest_version_ = version;
    }
    LOG(INFO) << "restored " << ckpt->tables_size() << " tables at version " << version
              << " from " << path;
    return path;
  }
  return std::string();
}

void CheckpointManager::Start() {
  if (options_.dir.empty()) return;
  {
    absl::MutexLock lock(&mu_);
    running_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
}

void CheckpointManager::StopWaiting() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

void CheckpointManager::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::optional<CheckpointManager::Captures> CheckpointManager::TakeNewestComplete() {
  const std::vector<DenseTable*> sync = SyncTables();
  if (sync.empty()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  for (auto it = captures_.rbegin(); it != captures_.rend(); ++it) {
    if (requested_.count(it->first)) continue;  // an on-demand call owns this version
    const bool complete = std::all_of(sync.begin(), sync.end(), [&](DenseTable* t) {
      return it->second.count(t->name()) > 0;
    });
    if (!complete) continue;
    Captures ready = std::move(it->second);
    const int64_t v = it->first;
    // Older incomplete captures can never complete now; drop them too.
    for (auto j = captures_.begin(); j != captures_.end();) {
      j = (j->first <= v && !requested_.count(j->first)) ? captures_.erase(j) : std::next(j);
    }
    return ready;
  }
  return std::nullopt;
}

void CheckpointManager::Loop() {
  absl::Time next_timed = options_.interval > absl::ZeroDuration()
                              ? absl::Now() + options_.interval
                              : absl::InfiniteFuture();
  int64_t seen = 0;
  while (!stop_.HasBeenNotified()) {
    {
      // Sleep until a step captures a table (written at once, to keep what a crash can
      // lose small) or 50 ms pass (for the interval and for Stop()).
      absl::MutexLock lock(&mu_);
      auto captured = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return capture_seq_ != seen; };
      mu_.AwaitWithTimeout(absl::Condition(&captured), absl::Milliseconds(50));
      seen = capture_seq_;
    }
    if (options_.every_steps > 0) {
      if (std::optional<Captures> ready = TakeNewestComplete()) {
        absl::StatusOr<v1::CheckpointResponse::Written> w = CompleteAndWrite(*std::move(ready));
        if (!w.ok()) LOG(ERROR) << "periodic checkpoint failed: " << w.status();
      }
    }
    if (absl::Now() >= next_timed) {
      next_timed = absl::Now() + options_.interval;
      // No tables, nothing to keep: a file of an empty shard would only be restored as
      // if it were state.
      if (store_->Tables().empty() && store_->SparseTables().empty()) continue;
      bool own = true;
      if (options_.sync_interval && !SyncTables().empty()) {
        options_.sync_interval();
        // The coordinated rounds wrote here lately: nothing more. Otherwise (shard 0 down,
        // or its rounds failing) this shard writes its own, so what a crash loses stays
        // bounded.
        absl::MutexLock lock(&mu_);
        own = absl::Now() - last_written_ > 2 * options_.interval;
        if (own) {
          LOG(WARNING) << "no checkpoint of every shard written here for "
                       << absl::FormatDuration(absl::Now() - last_written_)
                       << "; writing this shard's own";
        }
      }
      if (own) {
        absl::StatusOr<v1::CheckpointResponse::Written> w = Checkpoint(0, absl::Seconds(1));
        if (!w.ok()) LOG(ERROR) << "periodic checkpoint failed: " << w.status();
      }
    }
  }
}

}  // namespace ps
