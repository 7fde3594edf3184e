// Under --config=tsan: TSan sees the ordering that absl::Mutex, absl::CondVar and
// absl::Notification give (common/tsan_absl_annotations.cc), and still reports a real
// race. Without the annotations the first three tests die with a false "data race"
// report (halt_on_error=1); in other builds they are skipped.
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PS_UNDER_TSAN 1
#endif
#endif

namespace ps {
namespace {

#ifndef PS_UNDER_TSAN
#define SKIP_UNLESS_TSAN() GTEST_SKIP() << "only meaningful under --config=tsan"
#else
#define SKIP_UNLESS_TSAN() (void)0
#endif

TEST(TsanAbslAnnotationsTest, WritesUnderOneMutexAreOrdered) {
  SKIP_UNLESS_TSAN();
  absl::Mutex mu;
  int counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        absl::MutexLock lock(&mu);
        ++counter;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counter, 4000);
}

TEST(TsanAbslAnnotationsTest, ACondVarHandOffIsOrdered) {
  SKIP_UNLESS_TSAN();
  absl::Mutex mu;
  absl::CondVar ready;
  bool set = false;
  int value = 0;
  std::thread producer([&] {
    absl::MutexLock lock(&mu);
    value = 42;
    set = true;
    ready.Signal();
  });
  int seen;
  {
    absl::MutexLock lock(&mu);
    while (!set) ready.Wait(&mu);
    seen = value;
  }
  producer.join();
  EXPECT_EQ(seen, 42);
}

TEST(TsanAbslAnnotationsTest, ANotificationAndAnAwaitedConditionAreOrdered) {
  SKIP_UNLESS_TSAN();
  int payload = 0;  // written before Notify(), read after the wait, no lock
  absl::Notification done;
  std::thread writer([&] {
    payload = 7;
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(payload, 7);
  writer.join();

  absl::Mutex mu;
  int stage = 0;
  std::thread stepper([&] {
    absl::MutexLock lock(&mu);
    stage = 1;
  });
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* s) { return *s == 1; }, &stage));
    stage = 2;
  }
  stepper.join();
  EXPECT_EQ(stage, 2);
}

// The annotations order only what a mutex orders: a write outside it is still a race.
TEST(TsanAbslAnnotationsDeathTest, AnUnguardedWriteIsStillReported) {
  SKIP_UNLESS_TSAN();
  EXPECT_DEATH(
      {
        absl::Mutex mu;
        int counter = 0;
        std::thread a([&] {
          absl::MutexLock lock(&mu);
          ++counter;
        });
        std::thread b([&] { ++counter; });  // no lock
        a.join();
        b.join();
      },
      "ThreadSanitizer: data race");
}

}  // namespace
}  // namespace ps
