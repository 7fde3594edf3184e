// PushLedger: which pushes a shard has applied, so that a retried request (a lost reply,
// a timeout that was not a failure) is applied at most once.
//
// A push id is (worker, incarnation, sequence, part): a worker's pushes are numbered
// from 1 and sent one after another, each as one or more parts (chunk requests). The
// ledger keeps, per worker, the newest sequence it has seen and the state of each of its
// parts; any older sequence is a duplicate (its worker has moved on, so every part of
// it was answered). A copy of a part that arrives while the first is being applied
// waits for its outcome. Memory: one entry per worker index, one flag per part.
//
// The ledger goes into the shard's checkpoints (Capture, Restore), so that a push resent
// to a restarted shard is not applied a second time. Captured after the tables, with
// parts still in flight counted as applied: a push is then never applied twice across a
// restart; one being applied while a periodic checkpoint was taken may be lost, as every
// push after that checkpoint may be by a SIGKILL (docs/checkpoints.md).
//
// Thread-safe.
#ifndef PS_SERVER_SHARD_PUSH_LEDGER_H_
#define PS_SERVER_SHARD_PUSH_LEDGER_H_

#include <cstdint>
#include <map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/v1/checkpoint.pb.h"
#include "proto/v1/ps.pb.h"

namespace ps {

class PushLedger {
 public:
  // kApply: the caller applies the request and must then call End(). kDuplicate: it was
  // applied before; apply nothing.
  enum class Claim { kApply, kDuplicate };

  Claim Begin(int worker, const v1::PushId& id);
  // Records the outcome of a kApply claim: an applied part is remembered, one that was
  // refused is forgotten (a retry may try again).
  void End(int worker, const v1::PushId& id, bool applied);

  // Every worker's newest push and its parts applied or in flight, for a checkpoint.
  std::vector<v1::PushLedgerEntry> Capture() const;
  // Replaces the ledger's contents with a checkpoint's; call before serving.
  void Restore(const std::vector<v1::PushLedgerEntry>& entries);

 private:
  enum class Part { kInFlight, kApplied };
  struct Entry {
    uint64_t incarnation = 0;
    int64_t sequence = 0;
    std::map<int32_t, Part> parts;
  };

  mutable absl::Mutex mu_;
  std::map<int, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_PUSH_LEDGER_H_
