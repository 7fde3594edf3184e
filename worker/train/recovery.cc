#include "worker/train/recovery.h"

#include "common/error_reason.h"

namespace ps {
namespace {

// A shard that restarted behind a sync worker, or dropped it, refuses its step; async
// steps have no version to be behind, so there these codes are the job's failure.
bool RefusedSyncStep(v1::ConsistencyMode mode, const absl::Status& status) {
  return mode == v1::SYNC && (absl::IsFailedPrecondition(status) || absl::IsAlreadyExists(status));
}

// A shard that is restarting (or its stopping server, which cancels what is left).
bool ShardGone(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsCancelled(status);
}

Recovery ForPull(v1::ConsistencyMode mode, const absl::Status& status) {
  // The shard comes back with what it held (its last checkpoint, workers still live); if
  // that is older than what the worker saw, the retried pull says so (below).
  if (ShardGone(status)) return Recovery::kRetry;
  if (mode == v1::SYNC && absl::IsFailedPrecondition(status)) return Recovery::kRejoinAndRetry;
  return Recovery::kFail;
}

Recovery ForPush(v1::ConsistencyMode mode, const absl::Status& status) {
  // ShardGone: the client resent it for push_retry_timeout already.
  if (ShardGone(status) || RefusedSyncStep(mode, status)) {
    return Recovery::kRejoinAndDrop;
  }
  return Recovery::kFail;
}

}  // namespace

Recovery RecoveryFor(Call call, v1::ConsistencyMode mode, const absl::Status& status) {
  if (status.ok()) return Recovery::kProceed;
  // Another process registered this worker index since: two processes claim one index,
  // and re-registering would only take it back from the other. The job stops.
  // Or a shard restarted without its state: training on would mix fresh tables into
  // the trained model.
  if ((HasReason(status, kReasonWorkerReplaced) || HasReason(status, kReasonStateLost)) &&
      call != Call::kHeartbeat && call != Call::kLeave) {
    return Recovery::kFail;
  }
  switch (call) {
    case Call::kPull:
      return ForPull(mode, status);
    case Call::kBackgroundPull:
      return Recovery::kPullAgain;
    case Call::kPushPullPull:
      // As a separate pull would: a version that never came is the job's failure.
      return absl::IsDeadlineExceeded(status) ? Recovery::kFail : Recovery::kPullAgain;
    case Call::kPush:
      return ForPush(mode, status);
    case Call::kBackgroundPush:
      // Async only: dropped, as the restarting shard would have dropped it on arrival.
      return ShardGone(status) ? Recovery::kDrop : Recovery::kFail;
    case Call::kHeartbeat:
      return HasReason(status, kReasonUnknownWorker) ? Recovery::kRegisterAgain
                                                     : Recovery::kLogAndContinue;
    case Call::kLeave:
      return Recovery::kLogAndContinue;
  }
  return Recovery::kFail;
}

const char* RecoveryName(Recovery recovery) {
  switch (recovery) {
    case Recovery::kProceed:
      return "kProceed";
    case Recovery::kRetry:
      return "kRetry";
    case Recovery::kRejoinAndRetry:
      return "kRejoinAndRetry";
    case Recovery::kPullAgain:
      return "kPullAgain";
    case Recovery::kRejoinAndDrop:
      return "kRejoinAndDrop";
    case Recovery::kDrop:
      return "kDrop";
    case Recovery::kRegisterAgain:
      return "kRegisterAgain";
    case Recovery::kLogAndContinue:
      return "kLogAndContinue";
    case Recovery::kFail:
      return "kFail";
  }
  return "?";
}

const char* CallName(Call call) {
  switch (call) {
    case Call::kPull:
      return "kPull";
    case Call::kBackgroundPull:
      return "kBackgroundPull";
    case Call::kPushPullPull:
      return "kPushPullPull";
    case Call::kPush:
      return "kPush";
    case Call::kBackgroundPush:
      return "kBackgroundPush";
    case Call::kHeartbeat:
      return "kHeartbeat";
    case Call::kLeave:
      return "kLeave";
  }
  return "?";
}

}  // namespace ps
