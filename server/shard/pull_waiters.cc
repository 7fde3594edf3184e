#include "server/shard/pull_waiters.h"

namespace ps {

PullWaiters::PullWaiters() : timer_([this] { TimerLoop(); }) {}

PullWaiters::~PullWaiters() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    timer_wake_.Signal();
  }
  timer_.join();
  std::vector<Done> left;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, e] : entries_) left.push_back(std::move(e.done));
    entries_.clear();
    deadlines_.clear();
  }
  for (Done& done : left) done(absl::UnavailableError("the shard stopped while the call waited"));
}

uint64_t PullWaiters::Wait(Attempt attempt, absl::Time deadline, Expired expired, Done done) {
  uint64_t id = 0;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    Entry& e = entries_[id];
    e.attempt = std::move(attempt);
    e.expired = std::move(expired);
    e.done = std::move(done);
    e.deadline = deadline;
    e.running = true;
    if (deadline != absl::InfiniteFuture()) {
      deadlines_.emplace(deadline, id);
      timer_wake_.Signal();
    }
  }
  Drive({id});
  return id;
}

void PullWaiters::Notify() {
  std::vector<uint64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    ++generation_;
    for (auto& [id, e] : entries_) {
      if (e.running) continue;  // its runner sees the new generation and runs it again
      e.running = true;
      ids.push_back(id);
    }
  }
  if (!ids.empty()) Drive(std::move(ids));
}

void PullWaiters::Cancel(uint64_t id) {
  Done done;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    if (it->second.running) {
      it->second.cancelled = true;  // its runner finishes it
      return;
    }
    done = std::move(it->second.done);
    deadlines_.erase({it->second.deadline, id});
    entries_.erase(it);
  }
  done(absl::CancelledError("the call was cancelled while it waited"));
}

int PullWaiters::parked() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(entries_.size());
}

void PullWaiters::Drive(std::vector<uint64_t> ids) {
  while (!ids.empty()) {
    // Entries marked running are neither erased nor run by anyone else, so their
    // attempts can run from the map without the lock.
    std::vector<std::pair<uint64_t, Entry*>> run;
    uint64_t generation = 0;
    {
      absl::MutexLock lock(&mu_);
      generation = generation_;
      for (uint64_t id : ids) run.emplace_back(id, &entries_.at(id));
    }
    std::vector<std::optional<absl::Status>> results;
    results.reserve(run.size());
    for (auto& [id, e] : run) results.push_back(e->attempt());

    std::vector<size_t> expired;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      for (size_t i = 0; i < run.size(); ++i) {
        if (!results[i] && run[i].second->cancelled) {
          results[i] = absl::CancelledError("the call was cancelled while it waited");
        }
        if (!results[i] && now >= run[i].second->deadline) expired.push_back(i);
      }
    }
    for (size_t i : expired) results[i] = run[i].second->expired();

    std::vector<std::pair<Done, absl::Status>> finished;
    std::vector<uint64_t> again;
    {
      absl::MutexLock lock(&mu_);
      for (size_t i = 0; i < run.size(); ++i) {
        const auto [id, e] = run[i];
        if (results[i]) {
          finished.emplace_back(std::move(e->done), *std::move(results[i]));
          deadlines_.erase({e->deadline, id});
          entries_.erase(id);
        } else if (generation_ != generation || e->cancelled || absl::Now() >= e->deadline) {
          // Something changed while it ran, or a Cancel() or the timer came after the
          // checks above (the timer skips running entries): look again.
          again.push_back(id);
        } else {
          e->running = false;
        }
      }
    }
    for (auto& [done, status] : finished) done(std::move(status));
    ids = std::move(again);
  }
}

void PullWaiters::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (deadlines_.empty()) {
      timer_wake_.Wait(&mu_);
      continue;
    }
    const absl::Time now = absl::Now();
    if (now < deadlines_.begin()->first) {
      timer_wake_.WaitWithDeadline(&mu_, deadlines_.begin()->first);
      continue;
    }
    std::vector<uint64_t> due;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const uint64_t id = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      Entry& e = entries_.at(id);
      // A running entry's runner sees that its deadline has passed.
      if (!e.running) {
        e.running = true;
        due.push_back(id);
      }
    }
    mu_.Unlock();
    Drive(std::move(due));
    mu_.Lock();
  }
}

}  // namespace ps
