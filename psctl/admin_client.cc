#include "psctl/admin_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/channel_credentials.h"

namespace ps {
namespace psctl {
namespace {

void SetTimeout(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::StatusCode ToAbsl(grpc::StatusCode code) { return static_cast<absl::StatusCode>(code); }

}  // namespace

AdminClient::AdminClient(std::vector<std::string> servers, absl::Duration timeout,
                         const ChannelCredentials& credentials)
    : servers_(std::move(servers)), timeout_(timeout) {
  for (const std::string& address : servers_) {
    channels_.push_back(NewChannel(address, credentials));
    stubs_.push_back(v1::Admin::NewStub(channels_.back()));
  }
}

bool AdminClient::Unreachable(int i, const grpc::Status& status) const {
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) return true;
  // A server may answer UNAVAILABLE itself; only a channel that failed to connect
  // means the call never arrived.
  return status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         channels_[i]->GetState(false) != GRPC_CHANNEL_READY;
}

absl::Status AdminClient::AllFailed(const std::vector<std::string>& errors,
                                    grpc::StatusCode code) {
  if (errors.empty()) return absl::InvalidArgumentError("no servers given");
  return absl::Status(ToAbsl(code), absl::StrJoin(errors, "\n"));
}

absl::StatusOr<v1::ClusterStatusResponse> AdminClient::ClusterStatus() {
  std::vector<std::string> errors;
  grpc::StatusCode last = grpc::StatusCode::UNAVAILABLE;
  for (int i = 0; i < static_cast<int>(servers_.size()); ++i) {
    grpc::ClientContext context;
    SetTimeout(&context, timeout_);
    v1::ClusterStatusResponse response;
    const grpc::Status s = stubs_[i]->ClusterStatus(&context, v1::ClusterStatusRequest(), &response);
    if (s.ok()) return response;
    last = s.error_code();
    errors.push_back(Unreachable(i, s)
                         ? absl::StrCat("cannot reach ", servers_[i], ": ", s.error_message())
                         : absl::StrCat(servers_[i], " answered ",
                                        absl::StatusCodeToString(ToAbsl(s.error_code())), ": ",
                                        s.error_message()));
  }
  return AllFailed(errors, last);
}

absl::Status AdminClient::Watch(
    const v1::WatchRequest& request,
    const std::function<void(const v1::ClusterStatusResponse&)>& on_update) {
  std::vector<std::string> errors;
  grpc::StatusCode last = grpc::StatusCode::UNAVAILABLE;
  for (int i = 0; i < static_cast<int>(servers_.size()); ++i) {
    grpc::ClientContext context;
    if (request.max_updates() > 0) {
      // A bounded watch ends on its own: allow each update an interval and a call's time.
      const int64_t interval_ms =
          request.interval_ms() == 0 ? 1000 : std::max<int64_t>(request.interval_ms(), 100);
      SetTimeout(&context, (timeout_ + absl::Milliseconds(interval_ms)) * request.max_updates());
    }
    std::unique_ptr<grpc::ClientReader<v1::ClusterStatusResponse>> reader =
        stubs_[i]->Watch(&context, request);
    v1::ClusterStatusResponse update;
    int64_t received = 0;
    while (reader->Read(&update)) {
      ++received;
      on_update(update);
    }
    const grpc::Status s = reader->Finish();
    if (s.ok()) return absl::OkStatus();
    if (received > 0 || !Unreachable(i, s)) {
      return absl::Status(ToAbsl(s.error_code()),
                          absl::StrCat(servers_[i], ": ", s.error_message()));
    }
    last = s.error_code();
    errors.push_back(absl::StrCat("cannot reach ", servers_[i], ": ", s.error_message()));
  }
  return AllFailed(errors, last);
}

absl::StatusOr<v1::CheckpointResponse> AdminClient::Checkpoint(
    const v1::CheckpointRequest& request, absl::Duration timeout) {
  std::vector<std::string> errors;
  for (int i = 0; i < static_cast<int>(servers_.size()); ++i) {
    // Connect first, so that a call that fails was surely received and is not repeated.
    if (!channels_[i]->WaitForConnected(absl::ToChronoTime(absl::Now() + timeout_))) {
      errors.push_back(absl::StrCat("cannot reach ", servers_[i], ": not connected after ",
                                    absl::FormatDuration(timeout_)));
      continue;
    }
    grpc::ClientContext context;
    SetTimeout(&context, timeout);
    v1::CheckpointResponse response;
    const grpc::Status s = stubs_[i]->Checkpoint(&context, request, &response);
    if (s.ok()) return response;
    return absl::Status(ToAbsl(s.error_code()), absl::StrCat(servers_[i], ": ", s.error_message()));
  }
  return AllFailed(errors, grpc::StatusCode::UNAVAILABLE);
}

}  // namespace psctl
}  // namespace ps
