// Under ThreadSanitizer only (--config=tsan): tells TSan what Debian's Abseil does.
//
// Debian's libabsl_synchronization is not built with -fsanitize=thread, so TSan cannot
// see that absl::Mutex, absl::CondVar and absl::Notification order memory: every field
// guarded by an absl::Mutex would be reported as a race (docs/reliability.md shows one
// such report). This file defines those member functions in the test binary, where they
// take precedence over the shared library's; each calls the library's own (found with
// dlsym(RTLD_NEXT)) and adds the happens-before edges it implies: an unlock, a wait's
// release and a Notify() release the object's address, a lock, a wait's return and a
// notification seen acquire it. Conditions passed to Await and LockWhen are wrapped so
// that evaluating them (which Abseil does inside its own code, on the waiting or the
// unlocking thread) is ordered too. absl::Notification's own use of its mutex is left
// alone: its methods are annotated as a whole (wrapping its conditions as well made
// Abseil's queue handling look racy).
//
// Pure happens-before annotations: TSan finds data races with them, not lock-order
// inversions. Tied to the Abseil ABI of Debian 12 (inline namespace debian3): another
// one stops the build here rather than silently annotating nothing.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#define PS_STR2(x) #x
#define PS_STR(x) PS_STR2(x)
static_assert(sizeof(PS_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME)) == sizeof("debian3") &&
                  PS_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME)[6] == '3',
              "common/tsan_absl_annotations.cc knows Debian 12's Abseil ABI (debian3) only");

namespace {

template <typename F>
F Real(const char* mangled) {
  void* f = dlsym(RTLD_NEXT, mangled);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_annotations: %s not found in libabsl\n", mangled);
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

#define PS_REAL(type, mangled)                   \
  static const auto real = Real<type>(mangled); \
  (void)0

// Set while a Notification method runs: the mutex calls it makes are passed through.
thread_local int in_notification = 0;

struct InNotification {
  InNotification() { ++in_notification; }
  ~InNotification() { --in_notification; }
};

void Acquire(const void* p) {
  if (in_notification == 0) __tsan_acquire(const_cast<void*>(p));
}
void Release(const void* p) {
  if (in_notification == 0) __tsan_release(const_cast<void*>(p));
}

// A condition that acquires the mutex's edges before it reads guarded state and
// releases them after, whichever thread Abseil evaluates it on.
struct Wrapped {
  const absl::Mutex* mu;
  const absl::Condition* cond;
  static bool Eval(Wrapped* w) {
    Acquire(w->mu);
    const bool result = w->cond->Eval();
    Release(w->mu);
    return result;
  }
};

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using absl::Condition;

void Mutex::Lock() {
  PS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  Acquire(this);
}
void Mutex::ReaderLock() {
  PS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  Acquire(this);
}
bool Mutex::TryLock() {
  PS_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}
bool Mutex::ReaderTryLock() {
  PS_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}
void Mutex::Unlock() {
  PS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  Release(this);
  real(this);
}
void Mutex::ReaderUnlock() {
  PS_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Release(this);
  real(this);
}

void Mutex::Await(const Condition& cond) {
  PS_REAL(void (*)(Mutex*, const Condition&), "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  Wrapped w{this, &cond};
  Release(this);
  real(this, in_notification ? cond : Condition(&Wrapped::Eval, &w));
  Acquire(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  PS_REAL(bool (*)(Mutex*, const Condition&, Duration),
          "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Wrapped w{this, &cond};
  Release(this);
  const bool met = real(this, in_notification ? cond : Condition(&Wrapped::Eval, &w), timeout);
  Acquire(this);
  return met;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  PS_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Wrapped w{this, &cond};
  Release(this);
  const bool met = real(this, in_notification ? cond : Condition(&Wrapped::Eval, &w), deadline);
  Acquire(this);
  return met;
}
void Mutex::LockWhen(const Condition& cond) {
  PS_REAL(void (*)(Mutex*, const Condition&),
          "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Wrapped w{this, &cond};
  real(this, in_notification ? cond : Condition(&Wrapped::Eval, &w));
  Acquire(this);
}
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  PS_REAL(bool (*)(Mutex*, const Condition&, Duration),
          "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Wrapped w{this, &cond};
  const bool met = real(this, in_notification ? cond : Condition(&Wrapped::Eval, &w), timeout);
  Acquire(this);
  return met;
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  PS_REAL(bool (*)(Mutex*, const Condition&, Time),
          "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Wrapped w{this, &cond};
  const bool met = real(this, in_notification ? cond : Condition(&Wrapped::Eval, &w), deadline);
  Acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  PS_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  real(this, mu);
  Acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  PS_REAL(bool (*)(CondVar*, Mutex*, Duration),
          "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquire(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  PS_REAL(bool (*)(CondVar*, Mutex*, Time),
          "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  PS_REAL(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv");
  Release(this);
  InNotification guard;
  real(this);
}
void Notification::WaitForNotification() const {
  PS_REAL(void (*)(const Notification*), "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  {
    InNotification guard;
    real(this);
  }
  Acquire(this);
}
bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  PS_REAL(bool (*)(const Notification*, Duration),
          "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  bool notified;
  {
    InNotification guard;
    notified = real(this, timeout);
  }
  if (notified) Acquire(this);
  return notified;
}
bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  PS_REAL(bool (*)(const Notification*, Time),
          "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  bool notified;
  {
    InNotification guard;
    notified = real(this, deadline);
  }
  if (notified) Acquire(this);
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl

namespace {

// Abseil's lock-order (deadlock) detection keeps a graph of mutexes under a spin lock of
// its own, inside the uninstrumented library: TSan sees two threads write the graph with
// nothing ordering them (a report in GraphCycles::InsertEdge whenever two threads take
// several mutexes at once). The detection itself stays on in the plain and ASan runs;
// here it is turned off before any test starts, as ps_server turns it off in production.
const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

}  // namespace
