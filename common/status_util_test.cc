#include "common/status_util.h"

#include "common/error_reason.h"
#include "gtest/gtest.h"
#include "proto/v1/ps.pb.h"

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

TEST(StatusUtilTest, ReasonTravelsInTheStatusDetails) {
  const absl::Status in =
      WithReason(absl::FailedPreconditionError("worker 3 has no window"), kReasonWindowGone);
  EXPECT_EQ(ReasonOf(in), kReasonWindowGone);
  const grpc::Status wire = ToGrpcStatus(in);
  EXPECT_EQ(wire.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(wire.error_message(), "worker 3 has no window");
  // Readable as google.rpc.Status { code, message, details: [Any(ErrorInfo)] }.
  v1::StatusDetails details;
  ASSERT_TRUE(details.ParseFromString(wire.error_details()));
  EXPECT_EQ(details.code(), 9);
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  v1::ErrorInfo info;
  ASSERT_TRUE(info.ParseFromString(details.details(0).value()));
  EXPECT_EQ(info.reason(), "WINDOW_GONE");
  EXPECT_EQ(info.domain(), "ps.v1");
  const absl::Status back = FromGrpcStatus(wire);
  EXPECT_EQ(back.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(HasReason(back, kReasonWindowGone));
  EXPECT_FALSE(HasReason(back, kReasonWrongStep));
}

TEST(StatusUtilTest, NoReasonWithoutDetails) {
  EXPECT_EQ(ReasonOf(FromGrpcStatus(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                                 "has no transfer window"))),
            "");
  EXPECT_TRUE(ToGrpcStatus(absl::InternalError("x")).error_details().empty());
  EXPECT_TRUE(WithReason(absl::OkStatus(), kReasonWindowGone).ok());
}

}  // namespace
}  // namespace ps
