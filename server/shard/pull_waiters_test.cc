#include "server/shard/pull_waiters.h"

#include <atomic>
#include <fstream>
#include <string>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/process_stats_testing.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::ps::testing::ThreadCount;

// A value that parked calls wait for, and each call's answer.
struct Waited {
  std::atomic<int> value{0};
};

struct Answer {
  absl::Notification done;
  absl::Status status;
  std::atomic<int> calls{0};

  PullWaiters::Done Callback() {
    return [this](absl::Status s) {
      status = std::move(s);
      calls.fetch_add(1);
      done.Notify();
    };
  }
};

PullWaiters::Attempt AtLeast(const Waited* w, int want) {
  return [w, want]() -> std::optional<absl::Status> {
    if (w->value.load() >= want) return absl::OkStatus();
    return std::nullopt;
  };
}

PullWaiters::Expired NotReached(int want) {
  return [want] { return absl::DeadlineExceededError(absl::StrCat("never reached ", want)); };
}

TEST(PullWaitersTest, AReadyCallIsAnsweredOnTheCallersThreadAndParksNothing) {
  PullWaiters waiters;
  Waited w;
  w.value = 3;
  Answer a;
  waiters.Wait(AtLeast(&w, 2), absl::InfiniteFuture(), NotReached(2), a.Callback());
  ASSERT_TRUE(a.done.HasBeenNotified());
  EXPECT_TRUE(a.status.ok());
  EXPECT_EQ(waiters.parked(), 0);
}

TEST(PullWaitersTest, AParkedCallIsAnsweredByTheNotifyThatMakesItReady) {
  PullWaiters waiters;
  Waited w;
  Answer a;
  waiters.Wait(AtLeast(&w, 2), absl::InfiniteFuture(), NotReached(2), a.Callback());
  EXPECT_FALSE(a.done.HasBeenNotified());
  EXPECT_EQ(waiters.parked(), 1);
  w.value = 1;
  waiters.Notify();
  EXPECT_FALSE(a.done.HasBeenNotified());
  w.value = 2;
  waiters.Notify();
  ASSERT_TRUE(a.done.HasBeenNotified());  // answered on this (the notifier's) thread
  EXPECT_TRUE(a.status.ok());
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(waiters.parked(), 0);
}

TEST(PullWaitersTest, TheDeadlineAnswersWithTheExpiredStatus) {
  PullWaiters waiters;
  Waited w;
  Answer a;
  const absl::Time start = absl::Now();
  waiters.Wait(AtLeast(&w, 5), start + absl::Milliseconds(100), NotReached(5), a.Callback());
  ASSERT_TRUE(a.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(100));
  EXPECT_EQ(a.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(a.status.message(), "never reached 5");
  EXPECT_EQ(waiters.parked(), 0);
  waiters.Notify();  // nothing left to answer twice
  EXPECT_EQ(a.calls.load(), 1);
}

TEST(PullWaitersTest, ACallReadyAtItsDeadlineGetsItsValueNotTheTimeout) {
  PullWaiters waiters;
  Waited w;
  Answer a;
  // The value arrives without a Notify(): the timer's last attempt still finds it.
  waiters.Wait(AtLeast(&w, 1), absl::Now() + absl::Seconds(1), NotReached(1), a.Callback());
  w.value = 1;
  ASSERT_TRUE(a.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(a.status.ok()) << a.status;
}

TEST(PullWaitersTest, CancelAnswersCancelledOnceAndIgnoresFinishedIds) {
  PullWaiters waiters;
  Waited w;
  Answer a;
  const uint64_t id =
      waiters.Wait(AtLeast(&w, 1), absl::InfiniteFuture(), NotReached(1), a.Callback());
  waiters.Cancel(id);
  ASSERT_TRUE(a.done.HasBeenNotified());
  EXPECT_EQ(a.status.code(), absl::StatusCode::kCancelled);
  w.value = 1;
  waiters.Notify();
  waiters.Cancel(id);
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(waiters.parked(), 0);
}

TEST(PullWaitersTest, DestroyingTheWaitersAnswersParkedCallsUnavailable) {
  Waited w;
  Answer a;
  {
    PullWaiters waiters;
    waiters.Wait(AtLeast(&w, 1), absl::InfiniteFuture(), NotReached(1), a.Callback());
  }
  ASSERT_TRUE(a.done.HasBeenNotified());
  EXPECT_EQ(a.status.code(), absl::StatusCode::kUnavailable);
}

// A parked call holds no thread: a thousand of them wait with this process's thread
// count unchanged, and one Notify() answers them all.
TEST(PullWaitersTest, AThousandParkedCallsHoldNoThreads) {
  PullWaiters waiters;
  Waited w;
  std::vector<Answer> answers(1000);
  const int threads = ThreadCount();
  ASSERT_GT(threads, 0);
  for (Answer& a : answers) {
    waiters.Wait(AtLeast(&w, 1), absl::Now() + absl::Minutes(5), NotReached(1), a.Callback());
  }
  EXPECT_EQ(waiters.parked(), 1000);
  EXPECT_EQ(ThreadCount(), threads);
  w.value = 1;
  waiters.Notify();
  for (Answer& a : answers) {
    ASSERT_TRUE(a.done.HasBeenNotified());
    EXPECT_TRUE(a.status.ok());
  }
  EXPECT_EQ(waiters.parked(), 0);
}

// A change that lands while an attempt runs (between its check and its parking) is not
// lost: the Notify() that announces it makes the attempt run again.
TEST(PullWaitersTest, ANotifyDuringAnAttemptIsNotLost) {
  PullWaiters waiters;
  Waited w;
  Answer a;
  std::atomic<int> attempts{0};
  absl::Notification first_attempt_checked;
  absl::Notification changed;
  std::thread notifier([&] {
    first_attempt_checked.WaitForNotification();
    w.value = 1;
    waiters.Notify();  // the attempt is running: it must be run again
    changed.Notify();
  });
  waiters.Wait(
      [&]() -> std::optional<absl::Status> {
        const bool ready = w.value.load() >= 1;
        if (attempts.fetch_add(1) == 0) {
          first_attempt_checked.Notify();
          changed.WaitForNotification();  // parks only after the Notify() has come
        }
        if (ready) return absl::OkStatus();
        return std::nullopt;
      },
      absl::InfiniteFuture(), NotReached(1), a.Callback());
  notifier.join();
  ASSERT_TRUE(a.done.HasBeenNotified());
  EXPECT_TRUE(a.status.ok());
  EXPECT_EQ(attempts.load(), 2);
}

// A Cancel() that lands after an attempt's checks, while the runner is between them and
// parking it (here: from another call's Expired callback, which runs in that gap), still
// answers the call; so does a deadline the timer passed over while the attempt ran.
TEST(PullWaitersTest, ACancelOrDeadlineThatComesWhileAnAttemptRunsIsNotLost) {
  PullWaiters waiters;
  Waited w;
  Answer x, y;
  uint64_t y_id = 0;
  std::atomic<int> x_attempts{0};
  y_id = waiters.Wait(AtLeast(&w, 1), absl::InfiniteFuture(), NotReached(1), y.Callback());
  waiters.Wait(
      [&]() -> std::optional<absl::Status> {
        // Second run (the Notify below): outlive the deadline, so the timer finds this
        // entry running and leaves it to the runner.
        if (x_attempts.fetch_add(1) == 1) absl::SleepFor(absl::Milliseconds(400));
        return std::nullopt;
      },
      absl::Now() + absl::Milliseconds(100),
      [&] {
        waiters.Cancel(y_id);  // y is running in the same batch: only flagged
        return absl::DeadlineExceededError("x expired");
      },
      x.Callback());
  waiters.Notify();  // runs x and y in one batch
  ASSERT_TRUE(x.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(x.status.code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(y.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(y.status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(waiters.parked(), 0);
}

TEST(PullWaitersTest, ManyNotifiersAndWaitersAnswerEveryCallExactlyOnce) {
  PullWaiters waiters;
  Waited w;
  constexpr int kCalls = 400;
  std::vector<Answer> answers(kCalls);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kCalls; i += 4) {
        waiters.Wait(AtLeast(&w, i % 50), absl::Now() + absl::Seconds(30), NotReached(i),
                     answers[i].Callback());
        if (i % 8 == 0) {
          w.value.fetch_add(1);
          waiters.Notify();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  w.value = 1000;
  waiters.Notify();
  for (Answer& a : answers) {
    ASSERT_TRUE(a.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(a.status.ok());
    EXPECT_EQ(a.calls.load(), 1);
  }
  EXPECT_EQ(waiters.parked(), 0);
}

}  // namespace
}  // namespace ps
