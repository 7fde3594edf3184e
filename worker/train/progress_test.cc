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

TEST(ProgressLogTest, ALineClosesTheWindowWithoutAHeartbeat) {
  ProgressLog log(/*worker=*/1, /*epochs=*/2, /*steps_per_epoch=*/10, "loss",
                  /*heartbeat=*/nullptr);
  log.Add(3.0, 3);
  EXPECT_DOUBLE_EQ(log.Line(0, 4).mean_loss, 1.0);
  log.Add(2.0, 1);
  EXPECT_DOUBLE_EQ(log.Line(1, 9).mean_loss, 2.0);
  EXPECT_DOUBLE_EQ(log.first_loss(), 1.0);
  EXPECT_DOUBLE_EQ(log.last_loss(), 2.0);
}

}  // namespace
}  // namespace ps
