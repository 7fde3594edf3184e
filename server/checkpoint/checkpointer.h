// Checkpointer: writes one shard's checkpoint on demand (the Admin service's Checkpoint
// call) and, in implementations, periodically. See docs/checkpoints.md.
//
// Thread-safe: Checkpoint() may be called from several threads.
#ifndef PS_SERVER_CHECKPOINT_CHECKPOINTER_H_
#define PS_SERVER_CHECKPOINT_CHECKPOINTER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/v1/ps.pb.h"

namespace ps {

class Checkpointer {
 public:
  virtual ~Checkpointer() = default;

  // Writes a checkpoint of every table on this shard. Sync tables are captured at
  // exactly `at_version` (0: now): at once if they are at it, else when a step brings
  // them to it, waiting at most `timeout` (DEADLINE_EXCEEDED). A sync table already past
  // `at_version` gives FAILED_PRECONDITION. FAILED_PRECONDITION also when checkpoints are
  // not configured (no --checkpoint_dir).
  virtual absl::StatusOr<v1::CheckpointResponse::Written> Checkpoint(int64_t at_version,
                                                                     absl::Duration timeout) = 0;
};

}  // namespace ps

#endif  // PS_SERVER_CHECKPOINT_CHECKPOINTER_H_
