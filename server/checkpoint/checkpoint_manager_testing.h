// What the CheckpointManager tests share: a shard (registry on the test's clock, store and
// manager), table specs, a fixture that gives each test an empty checkpoint directory,
// and plain POSIX file helpers that bypass the FileSystem under test.
//
// Not thread-safe beyond what the shard's own classes promise; one test at a time.
#ifndef PS_SERVER_CHECKPOINT_CHECKPOINT_MANAGER_TESTING_H_
#define PS_SERVER_CHECKPOINT_CHECKPOINT_MANAGER_TESTING_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "proto/v1/checkpoint.pb.h"
#include "proto/v1/ps.pb.h"
#include "server/checkpoint/checkpoint_manager.h"
#include "server/shard/parameter_store.h"
#include "server/shard/worker_registry.h"

namespace ps {
namespace testing {

v1::TableSpec DenseSpec(const std::string& name, int64_t n, v1::ConsistencyMode mode,
                        const v1::OptimizerSpec& optimizer);
v1::OptimizerSpec Sgd();
v1::OptimizerSpec Adam();

// File names in `dir`, sorted; "." and ".." left out.
std::vector<std::string> ListDir(const std::string& dir);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& bytes);

// One shard: registry (on the test's clock), store and checkpoint manager.
struct TestShard {
  TestShard(const CheckpointOptions& options, const absl::Time* now, int shard = 0,
            int num_shards = 1);

  void Create(const v1::TableSpec& spec);
  void Join(int worker);
  absl::Status PushDense(int worker, int64_t step, const std::string& table,
                         const std::vector<float>& grad);
  absl::Status PushSparse(const std::string& table, const std::vector<int64_t>& keys,
                          const std::vector<float>& grads);
  // Values and version of all of dense table `table` (n elements).
  std::pair<std::vector<float>, int64_t> PullDense(const std::string& table, int64_t n);
  // Every table as Capture() sees it, by name.
  std::map<std::string, v1::TableCheckpoint> CaptureAll();

  WorkerRegistry registry;
  ParameterStore store;
  PushLedger ledger;
  CheckpointManager manager;
};

// Gives each test an empty directory under TEST_TMPDIR, named after the test.
class CheckpointDirTest : public ::testing::Test {
 protected:
  void SetUp() override;

  CheckpointOptions Options(int keep = 3, int64_t every_steps = 0) const;
  // Checkpoint files of shard 0 at `version` in the directory.
  std::vector<std::string> FilesAt(int64_t version) const;
  // Every entry of the directory is a finished checkpoint: no temporary file is left.
  void ExpectOnlyCheckpointFiles() const;

  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
  std::string dir_;
};

}  // namespace testing
}  // namespace ps

#endif  // PS_SERVER_CHECKPOINT_CHECKPOINT_MANAGER_TESTING_H_
