// ProgressWindow and ProgressLog: each line's mean is over the steps since the last
// line, and the first and last means are kept for the worker's summary.
#include "worker/train/progress.h"

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(ProgressWindowTest, EachWindowMeansItsOwnStepsAndKeepsFirstAndLast) {
  ProgressWindow w;
  w.Add(8.0, 4);
  w.Add(4.0, 4);
  ProgressWindow::Figures first = w.Close();
  EXPECT_DOUBLE_EQ(first.mean_loss, 1.5);
  EXPECT_GT(first.samples_per_sec, 0);
  w.Add(1.0, 2);
  EXPECT_DOUBLE_EQ(w.Close().mean_loss, 0.5);
  EXPECT_DOUBLE_EQ(w.first_loss(), 1.5);
  EXPECT_DOUBLE_EQ(w.last_loss(), 0.5);
}

TEST(ProgressWindowTest, AnEmptyWindowHasZeroLoss) {
  ProgressWindow w;
  ProgressWindow::Figures f = w.Close();
  EXPECT_DOUBLE_EQ(f.mean_loss, 0);
  EXPECT_DOUBLE_EQ(f.samples_per_sec, 0);
}

ProgressPlan Plan(int worker, int num_workers, int epochs, int64_t steps_per_epoch) {
  return PlanOf(worker, num_workers, epochs, steps_per_epoch, /*max_steps=*/0,
                /*resumed_steps=*/0);
}

TEST(ProgressLogTest, ALineClosesTheWindowWithoutAHeartbeat) {
  ProgressLog log(Plan(/*worker=*/1, /*num_workers=*/1, /*epochs=*/2, /*steps_per_epoch=*/10),
                  "loss", /*heartbeat=*/nullptr);
  log.Add(3.0, 3);
  EXPECT_DOUBLE_EQ(log.Line(0, 4).mean_loss, 1.0);
  log.Add(2.0, 1);
  EXPECT_DOUBLE_EQ(log.Line(1, 9).mean_loss, 2.0);
  EXPECT_DOUBLE_EQ(log.first_loss(), 1.0);
  EXPECT_DOUBLE_EQ(log.last_loss(), 2.0);
}

// Four digits of loss, the job's rate with several workers, elapsed time and the ETA from
// this run's pace: 5 of 20 steps in 10 s leave 15 steps, 30 s.
TEST(ProgressLogTest, TheLineCarriesLossElapsedAndEta) {
  ProgressLog log(Plan(/*worker=*/0, /*num_workers=*/2, /*epochs=*/2, /*steps_per_epoch=*/10),
                  "loss", nullptr);
  for (int i = 0; i < 5; ++i) log.Add(1.0, 4);
  ProgressWindow::Figures f;
  f.mean_loss = 0.123456;
  f.samples_per_sec = 1000;
  EXPECT_EQ(log.Format(0, 4, f, absl::Seconds(10)),
            "worker 0 epoch 1/2 step 5/10 loss 0.1235 samples/s 1000 (job ~2000) elapsed 0:10 "
            "eta 0:30");
}

TEST(ProgressLogTest, AResumedRunCountsOnlyWhatIsLeft) {
  ProgressPlan plan = Plan(/*worker=*/1, /*num_workers=*/1, /*epochs=*/1, /*steps_per_epoch=*/100);
  plan.resumed_steps = 60;  // 40 left, 10 of them done in 1 minute: 30 more take 3 minutes
  ProgressLog log(plan, "logloss", nullptr);
  for (int i = 0; i < 10; ++i) log.Add(1.0, 1);
  ProgressWindow::Figures f;
  f.mean_loss = 2;
  f.samples_per_sec = 7.4;
  EXPECT_EQ(log.Format(0, 69, f, absl::Minutes(1)),
            "worker 1 epoch 1/1 step 70/100 logloss 2.0000 samples/s 7 elapsed 1:00 eta 3:00");
}

TEST(PlanOfTest, MaxStepsCutsTheRunAndResumedStepsCount) {
  ProgressPlan p = PlanOf(/*worker=*/2, /*num_workers=*/4, /*epochs=*/5, /*steps_per_epoch=*/100,
                          /*max_steps=*/250, /*resumed_steps=*/300);
  EXPECT_EQ(p.total_steps, 250);
  EXPECT_EQ(p.resumed_steps, 250);
  EXPECT_EQ(PlanOf(0, 1, 5, 100, 0, 0).total_steps, 500);
}

TEST(FormatClockTest, MinutesAndHours) {
  EXPECT_EQ(FormatClock(absl::Seconds(5)), "0:05");
  EXPECT_EQ(FormatClock(absl::Seconds(725)), "12:05");
  EXPECT_EQ(FormatClock(absl::Seconds(3723)), "1:02:03");
}

}  // namespace
}  // namespace ps
