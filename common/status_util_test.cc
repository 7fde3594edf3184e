#include "common/status_util.h"

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(StatusUtilTest, OkMapsToOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(StatusUtilTest, EveryCodeRoundTripsWithItsMessage) {
  const absl::StatusCode codes[] = {
      absl::StatusCode::kCancelled,         absl::StatusCode::kUnknown,
      absl::StatusCode::kInvalidArgument,   absl::StatusCode::kDeadlineExceeded,
      absl::StatusCode::kNotFound,          absl::StatusCode::kAlreadyExists,
      absl::StatusCode::kPermissionDenied,  absl::StatusCode::kResourceExhausted,
      absl::StatusCode::kFailedPrecondition, absl::StatusCode::kAborted,
      absl::StatusCode::kOutOfRange,        absl::StatusCode::kUnimplemented,
      absl::StatusCode::kInternal,          absl::StatusCode::kUnavailable,
      absl::StatusCode::kDataLoss,          absl::StatusCode::kUnauthenticated};
  for (absl::StatusCode code : codes) {
    absl::Status in(code, "table 'w' is broken");
    grpc::Status wire = ToGrpcStatus(in);
    EXPECT_EQ(static_cast<int>(wire.error_code()), static_cast<int>(code));
    EXPECT_EQ(wire.error_message(), "table 'w' is broken");
    EXPECT_EQ(FromGrpcStatus(wire), in);
  }
}

TEST(StatusUtilTest, NamedCodesMatchGrpcNames) {
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("x")).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")).code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ps
