#include "server/shard/transfer_windows.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace ps {

TransferWindows::Window::Window(int64_t n) : bytes(n), push(new char[n]()), pull(new char[n]()) {}

TransferWindows::TransferWindows(bool enabled, MemoryBudget* budget)
    : enabled_(enabled), budget_(budget), identity_(LocalHostIdentity()) {
  absl::BitGen gen;
  for (char& c : probe_) c = static_cast<char>(absl::Uniform<int>(gen, 0, 256));
}

void TransferWindows::FillOffer(v1::SameHostOffer* offer) const {
  offer->set_pid(identity_.pid);
  offer->set_boot_id(identity_.boot_id);
  offer->set_pid_namespace(identity_.pid_namespace);
  offer->set_net_namespace(identity_.net_namespace);
  offer->set_probe_address(reinterpret_cast<uint64_t>(probe_));
  offer->set_probe_token(probe_, sizeof(probe_));
}

absl::StatusOr<std::shared_ptr<const TransferWindows::Window>> TransferWindows::Open(
    int worker, uint64_t incarnation, int64_t bytes, int64_t max_bytes) {
  if (!enabled_) {
    return absl::FailedPreconditionError(
        "this shard does not offer same-host transfer windows (--same_host_windows=false)");
  }
  if (worker < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("transfer windows are for workers; worker index ", worker));
  }
  if (bytes <= 0 || bytes > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker ", worker, " asked for transfer windows of ", bytes,
        " bytes; this shard allows 1 to ", max_bytes,
        " (the bytes of its dense tables)"));
  }
  const Key key(worker, incarnation);
  absl::MutexLock lock(&mu_);
  auto it = windows_.find(key);
  if (it != windows_.end() && it->second->bytes >= bytes) return it->second;
  std::shared_ptr<Window> w;
  Reservation memory;
  if (absl::Status s = ReserveAndAllocate(
          budget_, 2 * max_bytes,
          absl::StrCat("worker ", worker, "'s same-host transfer windows"),
          [&] { w = std::make_shared<Window>(max_bytes); }, &memory);
      !s.ok()) {
    return s;
  }
  w->memory = std::move(memory);
  if (it != windows_.end()) retired_[key].push_back(it->second);
  windows_[key] = w;
  return w;
}

std::shared_ptr<const TransferWindows::Window> TransferWindows::Get(int worker,
                                                                    uint64_t incarnation) const {
  absl::MutexLock lock(&mu_);
  auto it = windows_.find(Key(worker, incarnation));
  return it == windows_.end() ? nullptr : it->second;
}

void TransferWindows::Close(int worker, uint64_t incarnation) {
  absl::MutexLock lock(&mu_);
  windows_.erase(Key(worker, incarnation));
  retired_.erase(Key(worker, incarnation));
}

int64_t TransferWindows::bytes_held() const {
  absl::MutexLock lock(&mu_);
  int64_t total = 0;
  for (const auto& [worker, w] : windows_) total += 2 * w->bytes;
  for (const auto& [worker, ws] : retired_) {
    for (const auto& w : ws) total += 2 * w->bytes;
  }
  return total;
}

absl::Status CheckWindowRange(const std::string& table, int64_t offset, int64_t length,
                              int64_t window_bytes) {
  if (offset % 4 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", table, "': window offset ", offset, " is not a multiple of 4 bytes"));
  }
  if (offset < 0 || length <= 0 || length > window_bytes / 4 ||
      offset > window_bytes - length * 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table '", table, "': window range of ", length, " elements at byte ", offset,
        " is outside the worker's ", window_bytes, "-byte transfer window"));
  }
  return absl::OkStatus();
}

}  // namespace ps
