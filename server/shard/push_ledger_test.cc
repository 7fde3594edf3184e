#include "server/shard/push_ledger.h"

#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

v1::PushId Id(uint64_t incarnation, int64_t sequence, int part) {
  v1::PushId id;
  id.set_incarnation(incarnation);
  id.set_sequence(sequence);
  id.set_part(part);
  return id;
}

TEST(PushLedgerTest, EachPartIsAppliedOnce) {
  PushLedger ledger;
  ASSERT_EQ(ledger.Begin(0, Id(7, 1, 0)), PushLedger::Claim::kApply);
  ledger.End(0, Id(7, 1, 0), /*applied=*/true);
  EXPECT_EQ(ledger.Begin(0, Id(7, 1, 0)), PushLedger::Claim::kDuplicate);
  // Another part of the same push, and the same part for another worker, are new.
  ASSERT_EQ(ledger.Begin(0, Id(7, 1, 1)), PushLedger::Claim::kApply);
  ledger.End(0, Id(7, 1, 1), true);
  ASSERT_EQ(ledger.Begin(1, Id(9, 1, 0)), PushLedger::Claim::kApply);
  ledger.End(1, Id(9, 1, 0), true);
}

TEST(PushLedgerTest, OlderSequencesAreDuplicatesNewerOnesApply) {
  PushLedger ledger;
  ASSERT_EQ(ledger.Begin(0, Id(7, 5, 0)), PushLedger::Claim::kApply);
  ledger.End(0, Id(7, 5, 0), true);
  EXPECT_EQ(ledger.Begin(0, Id(7, 4, 3)), PushLedger::Claim::kDuplicate);
  ASSERT_EQ(ledger.Begin(0, Id(7, 6, 0)), PushLedger::Claim::kApply);
  ledger.End(0, Id(7, 6, 0), true);
  EXPECT_EQ(ledger.Begin(0, Id(7, 5, 0)), PushLedger::Claim::kDuplicate);
}

TEST(PushLedgerTest, ARefusedPartMayBeTriedAgain) {
  PushLedger ledger;
  ASSERT_EQ(ledger.Begin(0, Id(7, 1, 0)), PushLedger::Claim::kApply);
  ledger.End(0, Id(7, 1, 0), /*applied=*/false);
  EXPECT_EQ(ledger.Begin(0, Id(7, 1, 0)), PushLedger::Claim::kApply);
}

TEST(PushLedgerTest, ANewIncarnationStartsAfresh) {
  PushLedger ledger;
  ASSERT_EQ(ledger.Begin(0, Id(7, 9, 0)), PushLedger::Claim::kApply);
  ledger.End(0, Id(7, 9, 0), true);
  EXPECT_EQ(ledger.Begin(0, Id(8, 1, 0)), PushLedger::Claim::kApply);
}

TEST(PushLedgerTest, ACopyInFlightWaitsForTheFirstOutcome) {
  PushLedger ledger;
  ASSERT_EQ(ledger.Begin(0, Id(7, 1, 0)), PushLedger::Claim::kApply);
  PushLedger::Claim second = PushLedger::Claim::kApply;
  std::thread copy([&] { second = ledger.Begin(0, Id(7, 1, 0)); });
  absl::SleepFor(absl::Milliseconds(50));
  ledger.End(0, Id(7, 1, 0), /*applied=*/true);
  copy.join();
  EXPECT_EQ(second, PushLedger::Claim::kDuplicate);
}

}  // namespace
}  // namespace ps
