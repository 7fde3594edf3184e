// The recovery table, call by call: every status code, with and without each typed
// reason, in every consistency mode, gets the decision recovery.h lists.
#include "worker/train/recovery.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

const std::vector<v1::ConsistencyMode> kAllModes = {v1::SYNC, v1::ASYNC, v1::SSP};
const std::vector<Call> kAllCalls = {Call::kPull, Call::kBackgroundPull, Call::kPushPullPull,
                                     Call::kPush, Call::kBackgroundPush, Call::kHeartbeat,
                                     Call::kLeave};
const std::vector<std::string> kReasons = {"",  // none
                                           std::string(kReasonWindowGone),
                                           std::string(kReasonUnknownWorker),
                                           std::string(kReasonWorkerReplaced),
                                           std::string(kReasonStateLost),
                                           std::string(kReasonWrongStep),
                                           std::string(kReasonAlreadyPushed),
                                           std::string(kReasonShuttingDown)};

std::vector<absl::StatusCode> ErrorCodes() {
  std::vector<absl::StatusCode> codes;
  for (int c = 1; c <= 16; ++c) codes.push_back(static_cast<absl::StatusCode>(c));
  return codes;
}

// The table of recovery.h, written out again: each call's decision for the errors it
// does not list...
Recovery Otherwise(Call call) {
  switch (call) {
    case Call::kPull:
      return Recovery::kFail;
    case Call::kBackgroundPull:
      return Recovery::kPullAgain;
    case Call::kPushPullPull:
      return Recovery::kPullAgain;
    case Call::kPush:
      return Recovery::kFail;
    case Call::kBackgroundPush:
      return Recovery::kFail;
    case Call::kHeartbeat:
      return Recovery::kLogAndContinue;
    case Call::kLeave:
      return Recovery::kLogAndContinue;
  }
  return Recovery::kProceed;
}

// ...and the rows it lists. No code: any code; no reason: any reason.
struct Row {
  Call call;
  std::vector<v1::ConsistencyMode> modes;
  std::optional<absl::StatusCode> code;
  std::string reason;
  Recovery recovery;
};
const std::vector<Row>& Rows() {
  static const std::vector<Row>* rows = new std::vector<Row>{
      {Call::kPull, kAllModes, std::nullopt, std::string(kReasonWorkerReplaced), Recovery::kFail},
      {Call::kPull, kAllModes, std::nullopt, std::string(kReasonStateLost), Recovery::kFail},
      {Call::kBackgroundPull, kAllModes, std::nullopt, std::string(kReasonStateLost),
       Recovery::kFail},
      {Call::kPushPullPull, kAllModes, std::nullopt, std::string(kReasonStateLost),
       Recovery::kFail},
      {Call::kPush, kAllModes, std::nullopt, std::string(kReasonStateLost), Recovery::kFail},
      {Call::kBackgroundPush, kAllModes, std::nullopt, std::string(kReasonStateLost),
       Recovery::kFail},
      {Call::kBackgroundPull, kAllModes, std::nullopt, std::string(kReasonWorkerReplaced),
       Recovery::kFail},
      {Call::kPushPullPull, kAllModes, std::nullopt, std::string(kReasonWorkerReplaced),
       Recovery::kFail},
      {Call::kPush, kAllModes, std::nullopt, std::string(kReasonWorkerReplaced), Recovery::kFail},
      {Call::kBackgroundPush, kAllModes, std::nullopt, std::string(kReasonWorkerReplaced),
       Recovery::kFail},
      {Call::kPull, kAllModes, absl::StatusCode::kUnavailable, "", Recovery::kRetry},
      {Call::kPull, kAllModes, absl::StatusCode::kCancelled, "", Recovery::kRetry},
      {Call::kPull,
       {v1::SYNC},
       absl::StatusCode::kFailedPrecondition,
       "",
       Recovery::kRejoinAndRetry},
      {Call::kPushPullPull, kAllModes, absl::StatusCode::kDeadlineExceeded, "", Recovery::kFail},
      {Call::kPush, kAllModes, absl::StatusCode::kUnavailable, "", Recovery::kRejoinAndDrop},
      {Call::kPush, kAllModes, absl::StatusCode::kCancelled, "", Recovery::kRejoinAndDrop},
      {Call::kPush,
       {v1::SYNC},
       absl::StatusCode::kFailedPrecondition,
       "",
       Recovery::kRejoinAndDrop},
      {Call::kPush, {v1::SYNC}, absl::StatusCode::kAlreadyExists, "", Recovery::kRejoinAndDrop},
      {Call::kBackgroundPush, kAllModes, absl::StatusCode::kUnavailable, "", Recovery::kDrop},
      {Call::kBackgroundPush, kAllModes, absl::StatusCode::kCancelled, "", Recovery::kDrop},
      {Call::kHeartbeat, kAllModes, std::nullopt, std::string(kReasonUnknownWorker),
       Recovery::kRegisterAgain},
  };
  return *rows;
}

Recovery Expected(Call call, v1::ConsistencyMode mode, absl::StatusCode code,
                  const std::string& reason) {
  for (const Row& row : Rows()) {
    if (row.call != call) continue;
    if (std::find(row.modes.begin(), row.modes.end(), mode) == row.modes.end()) continue;
    if (row.code.has_value() && *row.code != code) continue;
    if (!row.reason.empty() && row.reason != reason) continue;
    return row.recovery;
  }
  return Otherwise(call);
}

absl::Status Error(absl::StatusCode code, const std::string& reason) {
  absl::Status s(code, "refused");
  return reason.empty() ? s : WithReason(s, reason);
}

TEST(RecoveryTest, OkProceedsForEveryCallInEveryMode) {
  for (Call call : kAllCalls) {
    for (v1::ConsistencyMode mode : kAllModes) {
      EXPECT_EQ(RecoveryFor(call, mode, absl::OkStatus()), Recovery::kProceed) << CallName(call);
    }
  }
}

TEST(RecoveryTest, EveryCodeAndReasonGetsTheTablesDecision) {
  int checked = 0;
  for (Call call : kAllCalls) {
    for (v1::ConsistencyMode mode : kAllModes) {
      for (absl::StatusCode code : ErrorCodes()) {
        for (const std::string& reason : kReasons) {
          const Recovery want = Expected(call, mode, code, reason);
          const Recovery got = RecoveryFor(call, mode, Error(code, reason));
          EXPECT_EQ(got, want) << CallName(call) << " " << v1::ConsistencyMode_Name(mode) << " "
                               << absl::StatusCodeToString(code) << " reason '" << reason
                               << "': got " << RecoveryName(got) << ", want " << RecoveryName(want);
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 7 * 3 * 16 * 8);
}

// The shard comes back with its state and its workers (a SIGTERM restart leaves the
// worker nothing to redo), so the same pull is made again; rejoining would throw away
// the versions it waits for.
TEST(RecoveryTest, APullFromAShardGoneDownIsRetriedAsItWas) {
  for (v1::ConsistencyMode mode : kAllModes) {
    EXPECT_EQ(RecoveryFor(Call::kPull, mode, absl::UnavailableError("shard 1 restarting")),
              Recovery::kRetry);
    EXPECT_EQ(RecoveryFor(Call::kPull, mode, absl::CancelledError("server shutting down")),
              Recovery::kRetry);
  }
}

TEST(RecoveryTest, ASyncPullBehindARestoredShardRejoinsButAnAsyncOneFails) {
  const absl::Status older = absl::FailedPreconditionError("checkpoint older than version 7");
  EXPECT_EQ(RecoveryFor(Call::kPull, v1::SYNC, older), Recovery::kRejoinAndRetry);
  EXPECT_EQ(RecoveryFor(Call::kPull, v1::ASYNC, older), Recovery::kFail);
  EXPECT_EQ(RecoveryFor(Call::kPull, v1::SSP, older), Recovery::kFail);
  EXPECT_EQ(RecoveryFor(Call::kPull, v1::SYNC, absl::DeadlineExceededError("version 9")),
            Recovery::kFail);
}

TEST(RecoveryTest, ARefusedSyncStepDropsTheGradientAndRejoins) {
  const absl::Status wrong_step =
      WithReason(absl::FailedPreconditionError("step 3, table at 4"), kReasonWrongStep);
  const absl::Status dropped =
      WithReason(absl::FailedPreconditionError("not live"), kReasonUnknownWorker);
  const absl::Status twice =
      WithReason(absl::AlreadyExistsError("pushed twice"), kReasonAlreadyPushed);
  for (const absl::Status& s : {wrong_step, dropped, twice}) {
    EXPECT_EQ(RecoveryFor(Call::kPush, v1::SYNC, s), Recovery::kRejoinAndDrop) << s;
    EXPECT_EQ(RecoveryFor(Call::kPush, v1::ASYNC, s), Recovery::kFail) << s;
    EXPECT_EQ(RecoveryFor(Call::kPush, v1::SSP, s), Recovery::kFail) << s;
  }
  EXPECT_EQ(RecoveryFor(Call::kPush, v1::ASYNC, absl::UnavailableError("down")),
            Recovery::kRejoinAndDrop);
  EXPECT_EQ(RecoveryFor(Call::kPush, v1::SYNC, absl::InvalidArgumentError("non-finite")),
            Recovery::kFail);
}

TEST(RecoveryTest, ABackgroundPushToARestartingShardIsDroppedWithoutRejoining) {
  EXPECT_EQ(RecoveryFor(Call::kBackgroundPush, v1::ASYNC, absl::UnavailableError("down")),
            Recovery::kDrop);
  EXPECT_EQ(
      RecoveryFor(Call::kBackgroundPush, v1::ASYNC, absl::FailedPreconditionError("not live")),
      Recovery::kFail);
}

TEST(RecoveryTest, PullsThatCameBackWrongArePulledAgainUnlessTheVersionNeverCame) {
  EXPECT_EQ(RecoveryFor(Call::kBackgroundPull, v1::ASYNC, absl::InternalError("x")),
            Recovery::kPullAgain);
  EXPECT_EQ(RecoveryFor(Call::kPushPullPull, v1::SYNC, absl::UnavailableError("x")),
            Recovery::kPullAgain);
  EXPECT_EQ(RecoveryFor(Call::kPushPullPull, v1::SYNC, absl::DeadlineExceededError("x")),
            Recovery::kFail);
}

TEST(RecoveryTest, AForgottenWorkerRegistersAgainOtherHeartbeatAndLeaveErrorsAreLogged) {
  EXPECT_EQ(RecoveryFor(Call::kHeartbeat, v1::SYNC,
                        WithReason(absl::NotFoundError("not registered"), kReasonUnknownWorker)),
            Recovery::kRegisterAgain);
  EXPECT_EQ(RecoveryFor(Call::kHeartbeat, v1::SYNC, absl::NotFoundError("no reason")),
            Recovery::kLogAndContinue);
  EXPECT_EQ(RecoveryFor(
                Call::kHeartbeat, v1::ASYNC,
                WithReason(absl::FailedPreconditionError("other process"), kReasonWorkerReplaced)),
            Recovery::kLogAndContinue);
  EXPECT_EQ(RecoveryFor(Call::kLeave, v1::ASYNC, absl::UnavailableError("down")),
            Recovery::kLogAndContinue);
}

}  // namespace
}  // namespace ps
