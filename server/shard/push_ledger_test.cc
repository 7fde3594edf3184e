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

// A restarted shard restores the ledger from its checkpoint: what was applied (or in
// flight when captured) before is a duplicate after, and the next push is new.
TEST(PushLedgerTest, ARestoredLedgerKnowsThePushesAppliedBeforeTheRestart) {
  PushLedger before;
  ASSERT_EQ(before.Begin(0, Id(7, 3, 0)), PushLedger::Claim::kApply);
  before.End(0, Id(7, 3, 0), /*applied=*/true);
  ASSERT_EQ(before.Begin(0, Id(7, 3, 1)), PushLedger::Claim::kApply);  // still in flight
  ASSERT_EQ(before.Begin(2, Id(9, 1, 0)), PushLedger::Claim::kApply);
  before.End(2, Id(9, 1, 0), /*applied=*/false);  // refused: a retry may apply it
  const std::vector<v1::PushLedgerEntry> saved = before.Capture();
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved[0].worker_index(), 0);
  EXPECT_EQ(saved[0].incarnation(), 7u);
  EXPECT_EQ(saved[0].sequence(), 3);
  EXPECT_EQ(saved[0].parts_size(), 2);

  PushLedger after;
  after.Restore(saved);
  EXPECT_EQ(after.Begin(0, Id(7, 3, 0)), PushLedger::Claim::kDuplicate);
  EXPECT_EQ(after.Begin(0, Id(7, 3, 1)), PushLedger::Claim::kDuplicate);
  EXPECT_EQ(after.Begin(0, Id(7, 2, 0)), PushLedger::Claim::kDuplicate);
  EXPECT_EQ(after.Begin(2, Id(9, 1, 0)), PushLedger::Claim::kApply);
  after.End(2, Id(9, 1, 0), true);
  EXPECT_EQ(after.Begin(0, Id(7, 4, 0)), PushLedger::Claim::kApply);
  after.End(0, Id(7, 4, 0), true);
  // A new process for index 0 starts afresh.
  EXPECT_EQ(after.Begin(0, Id(8, 1, 0)), PushLedger::Claim::kApply);
}

}  // namespace
}  // namespace ps
