#include "common/error_reason.h"



#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "proto/v1/ps.pb.h"

namespace ps {

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  if (status.ok()) return status;
  v1::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(std::string(kErrorDomain));
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

std::string ReasonOf(const absl::Status& status) {
  absl::optional<absl::Cord> payload = status.GetPayload(kErrorInfoTypeUrl);
  if (!payload.has_value()) return "";
  v1::ErrorInfo info;
  if (!info.ParseFromString(std::string(*payload)) || info.domain() != kErrorDomain) return "";
  return info.reason();
}

std::string Describe(const absl::Status& status) {
  if (status.ok()) return "OK";
  std::string out =
      absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message());
  const std::string reason = ReasonOf(status);
  if (!reason.empty()) absl::StrAppend(&out, " (reason ", reason, ")");
  return out;
}

}  // namespace ps
