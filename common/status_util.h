// Conversion between absl::Status (used inside every library) and grpc::Status (used
// on the wire). Abseil's and gRPC's canonical codes have the same numbering, so the
// conversion is one to one and keeps the message. A reason (common/error_reason.h)
// travels in the status details as a ps.v1.StatusDetails (wire-compatible with
// google.rpc.Status) holding one ErrorInfo, so stock gRPC tools can read it too.
//
// Thread-safe: pure functions.
#ifndef PS_COMMON_STATUS_UTIL_H_
#define PS_COMMON_STATUS_UTIL_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace ps {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace ps

#endif  // PS_COMMON_STATUS_UTIL_H_
