// TableLocks: every lock of a request's tables, for ParameterStore.
#ifndef PS_SERVER_SHARD_TABLE_LOCKS_H_
#define PS_SERVER_SHARD_TABLE_LOCKS_H_

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ps {

// Every lock of a request's tables (`plan.dense`, `plan.sparse`), taken in name order
// (names are unique across kinds, so two requests never wait for each other in a cycle)
// and released in reverse. The thread-safety analysis cannot follow a run-time set of
// locks; their users assert them.
template <typename Plan>
class TableLocks {
 public:
  explicit TableLocks(const Plan& plan) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (const auto* t : plan.dense) locks_.emplace_back(t->name(), t->mu());
    for (const auto* t : plan.sparse) locks_.emplace_back(t->name(), t->mu());
    std::sort(locks_.begin(), locks_.end());
    locks_.erase(std::unique(locks_.begin(), locks_.end()), locks_.end());
    for (auto& [name, mu] : locks_) mu->Lock();
  }
  ~TableLocks() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (auto it = locks_.rbegin(); it != locks_.rend(); ++it) it->second->Unlock();
  }
  TableLocks(const TableLocks&) = delete;
  TableLocks& operator=(const TableLocks&) = delete;

 private:
  std::vector<std::pair<std::string, absl::Mutex*>> locks_;
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_TABLE_LOCKS_H_
