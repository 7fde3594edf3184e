// Same-host transfer windows, the worker's side: offers, windows, and the copies.
#include "worker/client/same_host_transport.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "glog/logging.h"

namespace ps {
namespace {

// Reads the probe token out of process `pid`: proves that the process is the shard's
// server (not a stranger that got its pid) and that this process may attach to it.
absl::Status CheckProbe(int64_t pid, uint64_t address, const std::string& token) {
  char got[16];
  if (token.size() != sizeof(got)) {
    return absl::InvalidArgumentError(absl::StrCat("probe token of ", token.size(), " bytes"));
  }
  absl::Status s = ReadFromProcess(pid, {{got, address, sizeof(got)}});
  if (!s.ok()) return s;
  if (std::memcmp(got, token.data(), sizeof(got)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("process ", pid, " does not hold the shard's probe token"));
  }
  return absl::OkStatus();
}

// Why the windows `offer` (nullptr: none) proposes cannot be used, or "" when they can.
std::string WhyNotUsable(bool enabled, const HostIdentity& local, const v1::SameHostOffer* offer) {
  if (!enabled) return "disabled on this worker";
  if (offer == nullptr) return "not offered by the shard";
  HostIdentity theirs;
  theirs.pid = offer->pid();
  theirs.boot_id = offer->boot_id();
  theirs.pid_namespace = offer->pid_namespace();
  theirs.net_namespace = offer->net_namespace();
  if (!SameHost(local, theirs)) return "the shard is on another host or in other namespaces";
  if (absl::Status s = CheckProbe(offer->pid(), offer->probe_address(), offer->probe_token());
      !s.ok()) {
    return absl::StrCat("same host, but cannot attach: ", s.message());
  }
  return "";
}

}  // namespace

void LayOutInWindows(const std::vector<WindowUse>& use, std::vector<Chunk>* chunks) {
  std::vector<int64_t> at(use.size(), 0);
  for (Chunk& c : *chunks) {
    if (use[c.shard].pid == 0) continue;
    for (Piece& p : c.pieces) {
      p.window_offset = at[c.shard];
      at[c.shard] += p.length * 4;
    }
  }
  // One request per shard saves the per-call cost.
  std::vector<Chunk> merged;
  int64_t merged_bytes = 0;
  for (Chunk& c : *chunks) {
    const int64_t bytes = ChunkBytes(c);
    if (use[c.shard].pid != 0 && !merged.empty() && merged.back().shard == c.shard &&
        merged_bytes + bytes <= kWindowRequestBytes) {
      for (const Piece& p : c.pieces) merged.back().pieces.push_back(p);
      merged_bytes += bytes;
    } else {
      merged.push_back(std::move(c));
      merged_bytes = bytes;
    }
  }
  *chunks = std::move(merged);
}

SameHostTransport::SameHostTransport(const std::vector<std::string>& servers, bool enabled,
                                     OpenWindowFunction open_window,
                                     std::atomic<int64_t>* window_bytes)
    : servers_(servers),
      enabled_(enabled),
      open_window_(std::move(open_window)),
      window_bytes_(window_bytes),
      shards_(servers.size()) {
  if (enabled_) local_identity_ = LocalHostIdentity();
}

void SameHostTransport::AcceptOffer(int shard, const v1::SameHostOffer* offer) {
  SameHostShard next;
  const std::string why = WhyNotUsable(enabled_, local_identity_, offer);
  if (why.empty()) {
    next.usable = true;
    next.pid = offer->pid();
    next.probe_address = offer->probe_address();
    next.probe_token = offer->probe_token();
  }
  absl::MutexLock lock(&mu_);
  SameHostShard& cur = shards_[shard];
  if (next.usable && cur.usable && cur.pid == next.pid && cur.probe_token == next.probe_token) {
    return;  // the same server process: keep its windows
  }
  // Said once per shard and again only when it changes (re-registrations repeat it).
  const std::string note =
      next.usable ? absl::StrCat(
                        "tensor bytes move through same-host windows "
                        "(cross-memory attach to pid ",
                        next.pid, ")")
                  : absl::StrCat("tensor bytes go over gRPC (same-host windows: ", why, ")");
  if (note != cur.note) {
    LOG(INFO) << "shard " << shard << " (" << servers_[shard] << "): " << note;
  }
  next.note = note;
  cur = next;
}

WindowUse SameHostTransport::UseWindows(int shard, int worker, int64_t need) {
  SameHostShard state;
  {
    absl::MutexLock lock(&mu_);
    state = shards_[shard];
  }
  if (!state.usable) return WindowUse();
  OpenedWindows window = state.windows[worker];
  if (window.bytes < need) {
    absl::StatusOr<OpenedWindows> opened = open_window_(shard, worker, need);
    if (!opened.ok()) {
      DisableSameHost(shard, opened.status());
      return WindowUse();
    }
    window = *opened;
    absl::MutexLock lock(&mu_);
    SameHostShard& cur = shards_[shard];
    if (cur.usable && cur.pid == state.pid) cur.windows[worker] = window;
  }
  if (window.bytes < need) return WindowUse();
  // The server process may have been replaced since the offer (a restart).
  if (absl::Status st = CheckProbe(state.pid, state.probe_address, state.probe_token); !st.ok()) {
    DisableSameHost(shard, st);
    return WindowUse();
  }
  return {state.pid, window.push_address, window.pull_address};
}

std::vector<WindowUse> SameHostTransport::PrepareWindows(std::vector<Chunk>* chunks, int worker) {
  std::vector<WindowUse> use(servers_.size());
  if (!enabled_ || worker < 0) return use;
  std::vector<int64_t> need(servers_.size(), 0);
  for (const Chunk& c : *chunks) need[c.shard] += ChunkBytes(c);
  for (size_t s = 0; s < servers_.size(); ++s) {
    if (need[s] != 0) use[s] = UseWindows(static_cast<int>(s), worker, need[s]);
  }
  LayOutInWindows(use, chunks);
  return use;
}

bool SameHostTransport::WriteToPushWindows(const std::vector<Chunk>& chunks,
                                           const std::vector<WindowUse>& use) {
  std::vector<std::vector<RemoteCopy>> writes(servers_.size());
  for (const Chunk& c : chunks) {
    for (const Piece& p : c.pieces) {
      if (p.window_offset < 0) continue;
      writes[c.shard].push_back({reinterpret_cast<char*>(p.tensor->data + p.begin),
                                 use[c.shard].push_address + static_cast<uint64_t>(p.window_offset),
                                 static_cast<size_t>(p.length * 4)});
    }
  }
  for (size_t s = 0; s < writes.size(); ++s) {
    if (writes[s].empty()) continue;
    if (absl::Status st = WriteToProcess(use[s].pid, writes[s]); !st.ok()) {
      DisableSameHost(static_cast<int>(s), st);
      return false;
    }
  }
  for (const std::vector<RemoteCopy>& w : writes) {
    for (const RemoteCopy& c : w) window_bytes_->fetch_add(c.bytes, std::memory_order_relaxed);
  }
  return true;
}

absl::Status SameHostTransport::ReadPullWindows(const std::vector<WindowUse>& use,
                                                const std::vector<std::vector<RemoteCopy>>& reads) {
  for (size_t s = 0; s < reads.size(); ++s) {
    if (reads[s].empty()) continue;
    if (absl::Status st = ReadFromProcess(use[s].pid, reads[s]); !st.ok()) {
      DisableSameHost(static_cast<int>(s), st);
      return st;
    }
    for (const RemoteCopy& c : reads[s]) {
      window_bytes_->fetch_add(c.bytes, std::memory_order_relaxed);
    }
  }
  return absl::OkStatus();
}

bool SameHostTransport::ForgetLostWindow(int shard, int worker, const absl::Status& st) {
  if (!HasReason(st, kReasonWindowGone)) return false;
  absl::MutexLock lock(&mu_);
  shards_[shard].windows.erase(worker);
  return true;
}

void SameHostTransport::ForgetWorker(int worker) {
  absl::MutexLock lock(&mu_);
  for (SameHostShard& s : shards_) s.windows.erase(worker);
}

void SameHostTransport::DisableSameHost(int shard, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  if (!shards_[shard].usable) return;
  LOG(WARNING) << "shard " << shard << " (" << servers_[shard]
               << "): same-host windows stopped working (" << why
               << "); tensor bytes go over gRPC until the worker registers again";
  SameHostShard off;
  off.note = "stopped";
  shards_[shard] = off;
}

int SameHostTransport::usable_shards() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const SameHostShard& s : shards_) n += s.usable ? 1 : 0;
  return n;
}

}  // namespace ps
