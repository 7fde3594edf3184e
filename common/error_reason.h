// Typed reasons on errors a client must act on (docs/protocol.md), so that no caller
// matches message text. A reason travels as an absl::Status payload holding a serialized
// ps.v1.ErrorInfo (wire-compatible with google.rpc.ErrorInfo, domain "ps.v1");
// common/status_util.h carries it into and out of gRPC's status details.
//
// Thread-safe: pure functions.
#ifndef PS_COMMON_ERROR_REASON_H_
#define PS_COMMON_ERROR_REASON_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

// The reasons. A client's reaction to each is in docs/protocol.md.
inline constexpr absl::string_view kReasonWindowGone = "WINDOW_GONE";
inline constexpr absl::string_view kReasonUnknownWorker = "UNKNOWN_WORKER";
inline constexpr absl::string_view kReasonWorkerReplaced = "WORKER_REPLACED";
inline constexpr absl::string_view kReasonWrongStep = "WRONG_STEP";
inline constexpr absl::string_view kReasonAlreadyPushed = "ALREADY_PUSHED";
inline constexpr absl::string_view kReasonShuttingDown = "SHUTTING_DOWN";
// The shard restarted without the state the job's other shards have moved on from (no
// checkpoint restored): it refuses to serve rather than start its tables afresh.
inline constexpr absl::string_view kReasonStateLost = "STATE_LOST";
// Given values (Assign) for a table that a push has reached: the table keeps its own.
inline constexpr absl::string_view kReasonTableTrained = "TABLE_TRAINED";

inline constexpr absl::string_view kErrorDomain = "ps.v1";
// The payload's type URL, as google.rpc.Status details name an ErrorInfo.
inline constexpr absl::string_view kErrorInfoTypeUrl =
    "type.googleapis.com/google.rpc.ErrorInfo";

// Returns `status` with `reason` attached (no change for an OK status).
absl::Status WithReason(absl::Status status, absl::string_view reason);
// The reason attached to `status`, or "" when it has none.
std::string ReasonOf(const absl::Status& status);
inline bool HasReason(const absl::Status& status, absl::string_view reason) {
  return !status.ok() && ReasonOf(status) == reason;
}
// "CODE: message (reason REASON)", for logs: without the raw payload bytes that
// absl::Status's own ToString() appends.
std::string Describe(const absl::Status& status);

}  // namespace ps

#endif  // PS_COMMON_ERROR_REASON_H_
