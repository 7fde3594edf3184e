// PullWaiters: calls parked until the state they wait for arrives, without a thread each.
// A pull that asks for a version (or an SSP clock) the shard has not reached yet is parked
// here as an attempt; whatever may have made it ready (a push applied, a step finished,
// the live set changed, shutdown) calls Notify(), and the parked attempts run again on
// that caller's thread. One timer thread ends the attempts whose deadline passes.
//
// Each call's `done` runs exactly once, outside every lock of this class: with the
// attempt's result, the deadline's status, CANCELLED after Cancel(), or UNAVAILABLE when
// the waiters are destroyed. An attempt never runs concurrently with itself, and a
// Notify() that comes while an attempt runs makes it run again (no lost wake-ups).
//
// Thread-safe. Attempts and `done` must not call back into this object's Wait().
#ifndef PS_SERVER_SHARD_PULL_WAITERS_H_
#define PS_SERVER_SHARD_PULL_WAITERS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace ps {

class PullWaiters {
 public:
  // The call's result once it is ready, std::nullopt while it must wait.
  using Attempt = std::function<std::optional<absl::Status>()>;
  // The status to answer with when the deadline passes first (names what was missing).
  using Expired = std::function<absl::Status()>;
  using Done = std::function<void(absl::Status)>;

  PullWaiters();
  ~PullWaiters();
  PullWaiters(const PullWaiters&) = delete;
  PullWaiters& operator=(const PullWaiters&) = delete;

  // Runs `attempt` at once and parks it if it must wait. Returns an id for Cancel().
  uint64_t Wait(Attempt attempt, absl::Time deadline, Expired expired, Done done);
  // Something a parked call may wait for has changed: every parked attempt runs again.
  void Notify();
  // The caller has given up (e.g. the RPC was cancelled): `done` gets CANCELLED unless the
  // call has already finished. Unknown ids are ignored.
  void Cancel(uint64_t id);
  // How many calls are parked now.
  int parked() const;

 private:
  struct Entry {
    Attempt attempt;
    Expired expired;
    Done done;
    absl::Time deadline;
    bool running = false;  // an attempt is under way on some thread
    bool cancelled = false;
  };

  // Runs the attempts of `ids` (each marked running by the caller) until each has finished
  // or been parked again with no change missed.
  void Drive(std::vector<uint64_t> ids);
  void TimerLoop();

  mutable absl::Mutex mu_;
  absl::CondVar timer_wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by every Notify()
  // std::map: nodes stay put, so an attempt runs from its entry without the lock.
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<absl::Time, uint64_t>> deadlines_ ABSL_GUARDED_BY(mu_);
  std::thread timer_;
};

// Runs `start` with a `done` callback and waits on this thread until it is called; returns
// its status. For callers that want a plain blocking call over an async one.
template <typename Start>
absl::Status WaitForAnswer(Start start) {
  absl::Notification answered;
  absl::Status result;
  start([&](absl::Status s) {
    result = std::move(s);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

}  // namespace ps

#endif  // PS_SERVER_SHARD_PULL_WAITERS_H_
