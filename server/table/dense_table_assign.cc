// DenseTable's given values (ps_worker --init_from, docs/model_files.md).
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/error_reason.h"
#include "server/table/dense_table.h"

namespace ps {

// FAILED_PRECONDITION for given values that come after training began.
absl::Status TrainedError(const std::string& table, int64_t version, int64_t pushes) {
  return WithReason(
      absl::FailedPreconditionError(absl::StrCat(
          "table '", table, "' has trained (version ", version, ", ", pushes,
          " pushed parts applied or pending): values can be given only before the first push; "
          "the shards keep the trained model (stop them, or use a new --checkpoint_dir, to "
          "start from the file)")),
      kReasonTableTrained);
}

absl::Status DenseTable::CheckUntrained() const {
  if (version_ == 0 && pushes_ == 0 && step_contrib_.empty() && step_sum_empty_) {
    return absl::OkStatus();
  }
  return TrainedError(name(), version_, pushes_);
}

void DenseTable::Assign(const v1::DenseSlice& slice) {
  std::memcpy(params_.data() + (slice.offset() - offset_), slice.values().data(),
              static_cast<size_t>(slice.length()) * 4);
}

}  // namespace ps
