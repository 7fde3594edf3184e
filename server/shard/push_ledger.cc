#include "server/shard/push_ledger.h"

namespace ps {

PushLedger::Claim PushLedger::Begin(int worker, const v1::PushId& id) {
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[worker];
  if (e.incarnation != id.incarnation()) {
    // A new process for this index (the shard checked it is the registered one).
    e = Entry();
    e.incarnation = id.incarnation();
  }
  if (id.sequence() < e.sequence) {
    return Claim::kDuplicate;
  }
  if (id.sequence() > e.sequence) {
    e.sequence = id.sequence();
    e.parts.clear();
  }
  // Wait out a copy of this part that is being applied now.
  auto settled = [&e, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = e.parts.find(id.part());
    return it == e.parts.end() || it->second != Part::kInFlight ||
           e.sequence != id.sequence() || e.incarnation != id.incarnation();
  };
  mu_.Await(absl::Condition(&settled));
  if (e.incarnation != id.incarnation() || e.sequence != id.sequence()) {
    // The worker moved on while this copy waited.
    return Claim::kDuplicate;
  }
  auto [it, inserted] = e.parts.emplace(id.part(), Part::kInFlight);
  if (!inserted) {
    return Claim::kDuplicate;
  }
  return Claim::kApply;
}

void PushLedger::End(int worker, const v1::PushId& id, bool applied) {
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[worker];
  if (e.incarnation != id.incarnation() || e.sequence != id.sequence()) return;
  if (applied) {
    e.parts[id.part()] = Part::kApplied;
  } else {
    e.parts.erase(id.part());
  }
}

std::vector<v1::PushLedgerEntry> PushLedger::Capture() const {
  std::vector<v1::PushLedgerEntry> out;
  absl::MutexLock lock(&mu_);
  for (const auto& [worker, e] : entries_) {
    v1::PushLedgerEntry& saved = out.emplace_back();
    saved.set_worker_index(worker);
    saved.set_incarnation(e.incarnation);
    saved.set_sequence(e.sequence);
    for (const auto& [part, state] : e.parts) saved.add_parts(part);
  }
  return out;
}

void PushLedger::Restore(const std::vector<v1::PushLedgerEntry>& entries) {
  absl::MutexLock lock(&mu_);
  entries_.clear();
  for (const v1::PushLedgerEntry& saved : entries) {
    Entry& e = entries_[saved.worker_index()];
    e.incarnation = saved.incarnation();
    e.sequence = saved.sequence();
    for (int32_t part : saved.parts()) e.parts[part] = Part::kApplied;
  }
}

}  // namespace ps
