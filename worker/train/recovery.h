// What a worker does when a call to the servers fails: the one table, consulted by the
// training loop (worker/train/step_exchange.h) and the heartbeats (membership.h), that
// says for each call and status whether to rejoin, retry, drop the gradient or fail.
// (How long to keep retrying is the caller's: TrainerOptions::retry_timeout.)
//
//   call             status (OK is kProceed for every call)         recovery
//   kPull            UNAVAILABLE, CANCELLED (a shard is restarting)  kRetry
//                    SYNC: FAILED_PRECONDITION (a shard restarted    kRejoinAndRetry
//                      from an older checkpoint than this worker saw)
//                    any other error                                 kFail
//   kBackgroundPull  any error                                       kPullAgain
//   kPushPullPull    DEADLINE_EXCEEDED (a version that never came)   kFail
//     (its push was  any other error                                 kPullAgain
//      accepted)
//   kPush            UNAVAILABLE, CANCELLED (still, after the        kRejoinAndDrop
//                      client's resends for push_retry_timeout)
//                    SYNC: FAILED_PRECONDITION (dropped, wrong step, kRejoinAndDrop
//                      shard restarted), ALREADY_EXISTS
//                    any other error                                 kFail
//   kBackgroundPush  UNAVAILABLE, CANCELLED (after the resends)      kDrop
//                    any other error                                 kFail
//   kHeartbeat       reason UNKNOWN_WORKER, whatever the code        kRegisterAgain
//                    any other error                                 kLogAndContinue
//   kLeave           any error (the servers drop it on timeout)      kLogAndContinue
//
// Reason WORKER_REPLACED (another process registered this worker index since) fails the
// job from every pull and push: re-registering would only take the index back from the
// other process. So does STATE_LOST (a shard restarted without its checkpoint while the
// others hold the job's progress). Apart from that and UNKNOWN_WORKER on heartbeats, a reason
// (common/error_reason.h) changes no decision: a sync push refused as WRONG_STEP or
// UNKNOWN_WORKER rejoins alike. Calls not in the table fail the job on any error: registration and the wait for
// the other workers at start, the status read that finds the resume point, evaluation,
// the rejoin itself, and every device (model) call; so does the sparse trainer's step.
//
// Thread-safe: a pure function.
#ifndef PS_WORKER_TRAIN_RECOVERY_H_
#define PS_WORKER_TRAIN_RECOVERY_H_

#include "absl/status/status.h"
#include "proto/v1/ps.pb.h"

namespace ps {

// The calls whose failures a worker may survive.
enum class Call {
  kPull,            // the dense loop's pull of a step's parameters
  kBackgroundPull,  // the same pulled while the previous step computed (overlap)
  kPushPullPull,    // the pull half of a PushPull whose push was accepted
  kPush,            // a gradient push, alone or the push half of a PushPull
  kBackgroundPush,  // a push sent while the next step computes (overlap)
  kHeartbeat,
  kLeave,
};

enum class Recovery {
  kProceed,         // the call succeeded
  kRetry,           // wait a little and make the same call again
  kRejoinAndRetry,  // register again at each shard's current version, then repeat
  kPullAgain,       // discard what came back and pull again in the foreground
  kRejoinAndDrop,   // discard the gradient, then register again
  kDrop,            // discard the gradient and carry on
  kRegisterAgain,   // register again with the shard that answered
  kLogAndContinue,  // note it in the log; nothing depends on the call
  kFail,            // end the job with this status
};

// The decision for `status` returned by `call` in a job of consistency `mode` (the mode
// matters only to pulls and pushes; see the table above).
Recovery RecoveryFor(Call call, v1::ConsistencyMode mode, const absl::Status& status);

// "kRejoinAndRetry" and so on, for logs and test messages.
const char* RecoveryName(Recovery recovery);
const char* CallName(Call call);

}  // namespace ps

#endif  // PS_WORKER_TRAIN_RECOVERY_H_
