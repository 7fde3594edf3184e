#include "common/memory_budget.h"

#include <unistd.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

using ::testing::HasSubstr;

TEST(MemoryBudgetTest, ReservationsWithinTheLimitSucceedAndTheRestIsExhausted) {
  MemoryBudget budget(100 << 20);
  ASSERT_TRUE(budget.Reserve(60 << 20, "table 'a'").ok());
  absl::Status s = budget.Reserve(50 << 20, "table 'b'");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(),
              HasSubstr("table 'b' needs 50.0 MiB but the shard's memory budget of 100.0 MiB "
                        "has 40.0 MiB left (--memory_budget_mb); nothing was allocated"));
  EXPECT_EQ(budget.used(), 60 << 20);
  budget.Release(60 << 20);
  EXPECT_TRUE(budget.Reserve(100 << 20, "table 'b'").ok());
  EXPECT_EQ(budget.used(), 100 << 20);
}

TEST(MemoryBudgetTest, AnUncommittedReservationIsReturned) {
  MemoryBudget budget(1000);
  {
    Reservation r;
    ASSERT_TRUE(ReserveScoped(&budget, 700, "x", &r).ok());
    EXPECT_EQ(budget.used(), 700);
  }
  EXPECT_EQ(budget.used(), 0);
  Reservation kept;
  ASSERT_TRUE(ReserveScoped(&budget, 700, "x", &kept).ok());
  kept.Commit();
  kept.Reset();
  EXPECT_EQ(budget.used(), 700);
  EXPECT_TRUE(ReserveScoped(nullptr, int64_t{1} << 60, "x", &kept).ok());  // no budget
}

TEST(MemoryBudgetTest, NoLimitCountsButNeverRefuses) {
  MemoryBudget budget(0);
  EXPECT_TRUE(budget.Reserve(int64_t{1} << 50, "huge").ok());
  EXPECT_EQ(budget.used(), int64_t{1} << 50);
}

TEST(MemoryBudgetTest, TheDefaultIsPositiveAndBelowPhysicalMemory) {
  const int64_t d = DefaultMemoryBudget();
  EXPECT_GT(d, 0);
  EXPECT_LT(d, static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE));
}

}  // namespace
}  // namespace ps
