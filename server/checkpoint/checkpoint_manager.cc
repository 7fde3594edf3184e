#include "server/checkpoint/checkpoint_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"

namespace ps {
namespace {

constexpr char kMagic[8] = {'P', 'S', 'C', 'K', 'P', 'T', '0', '1'};
constexpr size_t kHeaderBytes = 8 + 8 + 4;  // magic, payload length, CRC-32

absl::Status ErrnoError(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const char* data, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write " + path);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// Files of this shard, newest first: shard-<i>-<version>-<unix ms>.ckpt.
std::vector<std::string> ListCheckpoints(const std::string& dir, int shard) {
  struct Entry {
    int64_t version, ms;
    std::string name;
  };
  std::vector<Entry> entries;
  const std::string prefix = absl::StrCat("shard-", shard, "-");
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
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
    closedir(d);
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.version, a.ms) > std::tie(b.version, b.ms);
  });
  std::vector<std::string> out;
  for (const Entry& e : entries) out.push_back(dir + "/" + e.name);
  return out;
}

}  // namespace

absl::StatusOr<v1::ShardCheckpoint> ReadCheckpointFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open checkpoint ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a checkpoint (bad magic)"));
  }
  uint64_t length = 0;
  uint32_t crc = 0;
  std::memcpy(&length, bytes.data() + 8, 8);
  std::memcpy(&crc, bytes.data() + 16, 4);
  if (bytes.size() - kHeaderBytes != length) {
    return absl::DataLossError(absl::StrCat(path, ": truncated: ", bytes.size() - kHeaderBytes,
                                            " payload bytes, header says ", length));
  }
  const auto* payload = reinterpret_cast<const Bytef*>(bytes.data() + kHeaderBytes);
  uint32_t actual = 0;
  for (uint64_t at = 0; at < length;) {
    const uInt n = static_cast<uInt>(std::min<uint64_t>(length - at, 1u << 30));
    actual = static_cast<uint32_t>(crc32(actual, payload + at, n));
    at += n;
  }
  if (actual != crc) {
    return absl::DataLossError(absl::StrFormat("%s: CRC-32 %08x does not match %08x", path,
                                               actual, crc));
  }
  v1::ShardCheckpoint out;
  if (!out.ParseFromArray(payload, static_cast<int>(length))) {
    return absl::DataLossError(absl::StrCat(path, ": payload does not parse"));
  }
  return out;
}

CheckpointManager::CheckpointManager(const CheckpointOptions& options, int shard_index,
                                     int num_shards, ParameterStore* store,
                                     WorkerRegistry* registry)
    : options_(options),
      shard_index_(shard_index),
      num_shards_(num_shards),
      store_(store),
      registry_(registry) {
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
  const std::vector<DenseTable*> sync = SyncTables();
  Captures captured;
  if (at_version == 0) {
    for (DenseTable* t : sync) {
      absl::MutexLock lock(t->mu());
      captured.emplace(t->name(), t->Capture());
    }
    return CompleteAndWrite(std::move(captured));
  }
  {
    absl::MutexLock lock(&mu_);
    requested_[at_version]++;
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
  mu_.Lock();
  if (status.ok() &&
      !mu_.AwaitWithTimeout(absl::Condition(&all_there), timeout)) {
    status = absl::DeadlineExceededError(absl::StrCat(
        "shard ", shard_index_, ": sync tables did not all reach version ", at_version,
        " within ", absl::FormatDuration(timeout), " (is training running?)"));
  }
  if (status.ok()) captured = captures_[at_version];
  if (--requested_[at_version] == 0) {
    requested_.erase(at_version);
    captures_.erase(at_version);
  }
  mu_.Unlock();
  if (!status.ok()) return status;
  return CompleteAndWrite(std::move(captured));
}

absl::StatusOr<v1::CheckpointResponse::Written> CheckpointManager::CompleteAndWrite(
    Captures captured) {
  v1::ShardCheckpoint ckpt;
  ckpt.set_shard_index(shard_index_);
  ckpt.set_num_shards(num_shards_);
  ckpt.set_created_unix_ms(absl::ToUnixMillis(absl::Now()));
  // The checkpoint's version: that of its sync tables (all equal) if it has any, else
  // the newest version of any table.
  int64_t version = 0, sync_version = -1;
  for (DenseTable* t : store_->Tables()) {
    auto it = captured.find(t->name());
    v1::TableCheckpoint* out = ckpt.add_tables();
    if (it != captured.end()) {
      *out = std::move(it->second);
    } else {
      absl::MutexLock lock(t->mu());
      *out = t->Capture();
    }
    version = std::max(version, out->version());
    if (t->is_sync() && t->local_size() > 0) sync_version = std::max(sync_version, out->version());
  }
  for (SparseTable* t : store_->SparseTables()) {
    absl::MutexLock lock(t->mu());
    *ckpt.add_tables() = t->Capture();
    version = std::max(version, ckpt.tables(ckpt.tables_size() - 1).version());
  }
  if (sync_version >= 0) version = sync_version;
  for (v1::WorkerStatus& w : registry_->Snapshot()) *ckpt.add_workers() = std::move(w);

  std::string payload;
  if (!ckpt.SerializeToString(&payload)) {
    return absl::ResourceExhaustedError(
        "checkpoint does not fit one protobuf message (2 GiB per shard)");
  }
  uint32_t crc = 0;
  for (size_t at = 0; at < payload.size();) {
    const uInt n = static_cast<uInt>(std::min<size_t>(payload.size() - at, 1u << 30));
    crc = static_cast<uint32_t>(crc32(crc, reinterpret_cast<const Bytef*>(payload.data() + at), n));
    at += n;
  }
  const uint64_t length = payload.size();
  char header[kHeaderBytes];
  std::memcpy(header, kMagic, 8);
  std::memcpy(header + 8, &length, 8);
  std::memcpy(header + 16, &crc, 4);

  absl::MutexLock write_lock(&write_mu_);
  mkdir(options_.dir.c_str(), 0755);
  const std::string final_path =
      absl::StrFormat("%s/shard-%d-%012d-%d.ckpt", options_.dir, shard_index_, version,
                      ckpt.created_unix_ms());
  const std::string tmp_path = absl::StrCat(options_.dir, "/.shard-", shard_index_, ".tmp");
  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return ErrnoError("open " + tmp_path);
  absl::Status s = WriteAll(fd, header, kHeaderBytes, tmp_path);
  if (s.ok()) s = WriteAll(fd, payload.data(), payload.size(), tmp_path);
  if (s.ok() && ::fsync(fd) != 0) s = ErrnoError("fsync " + tmp_path);
  ::close(fd);
  if (s.ok() && std::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    s = ErrnoError("rename to " + final_path);
  }
  if (!s.ok()) {
    ::unlink(tmp_path.c_str());
    return s;
  }
  // The rename is durable once the directory entry is.
  if (const int dfd = ::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  {
    absl::MutexLock lock(&mu_);
    latest_path_ = final_path;
    latest_version_ = version;
  }
  Prune();
  LOG(INFO) << "checkpoint written: " << final_path << " (version " << version << ", "
            << kHeaderBytes + payload.size() << " bytes)";
  v1::CheckpointResponse::Written written;
  written.set_shard_index(shard_index_);
  written.set_path(final_path);
  written.set_version(version);
  written.set_bytes(static_cast<int64_t>(kHeaderBytes + payload.size()));
  return written;
}

void CheckpointManager::Prune() {
  const std::vector<std::string> files = ListCheckpoints(options_.dir, shard_index_);
  for (size_t i = std::max(1, options_.keep); i < files.size(); ++i) ::unlink(files[i].c_str());
}

absl::StatusOr<std::string> CheckpointManager::RestoreNewest() {
  if (options_.dir.empty()) return std::string();
  for (const std::string& path : ListCheckpoints(options_.dir, shard_index_)) {
    absl::StatusOr<v1::ShardCheckpoint> ckpt = ReadCheckpointFile(path);
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
    int64_t version = 0, sync_version = -1;
    for (v1::TableCheckpoint& t : *ckpt->mutable_tables()) {
      if (absl::Status s = store_->RestoreTable(&t); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
      }
      version = std::max(version, t.version());
      if (t.spec().consistency() == v1::SYNC && !t.params().empty()) {
        sync_version = std::max(sync_version, t.version());
      }
    }
    if (sync_version >= 0) version = sync_version;
    registry_->RestoreHistory({ckpt->workers().begin(), ckpt->workers().end()});
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

void CheckpointManager::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
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
    // Step-triggered captures: write the newest version every sync table reached.
    if (options_.every_steps > 0) {
      const std::vector<DenseTable*> sync = SyncTables();
      std::optional<Captures> ready;
      {
        absl::MutexLock lock(&mu_);
        for (auto it = captures_.rbegin(); it != captures_.rend(); ++it) {
          if (requested_.count(it->first)) continue;
          const bool complete = !sync.empty() && std::all_of(sync.begin(), sync.end(), [&](DenseTable* t) {
            return it->second.count(t->name()) > 0;
          });
          if (complete) {
            ready = std::move(it->second);
            const int64_t v = it->first;
            // Older incomplete captures can never complete now; drop them too.
            for (auto j = captures_.begin(); j != captures_.end();) {
              j = (j->first <= v && !requested_.count(j->first)) ? captures_.erase(j) : std::next(j);
            }
            break;
          }
        }
      }
      if (ready) {
        absl::StatusOr<v1::CheckpointResponse::Written> w = CompleteAndWrite(*std::move(ready));
        if (!w.ok()) LOG(ERROR) << "periodic checkpoint failed: " << w.status();
      }
    }
    if (absl::Now() >= next_timed) {
      absl::StatusOr<v1::CheckpointResponse::Written> w = Checkpoint(0, absl::Seconds(1));
      if (!w.ok()) LOG(ERROR) << "periodic checkpoint failed: " << w.status();
      next_timed = absl::Now() + options_.interval;
    }
  }
}

}  // namespace ps
