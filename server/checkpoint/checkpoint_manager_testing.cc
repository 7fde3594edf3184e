#include "server/checkpoint/checkpoint_manager_testing.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "proto/v1/checkpoint.pb.h"
#include "server/table/optimizer.h"
#include "server/table/tensor_bytes_testing.h"

namespace ps {
namespace testing {

v1::TableSpec DenseSpec(const std::string& name, int64_t n, v1::ConsistencyMode mode,
                        const v1::OptimizerSpec& optimizer) {
  v1::TableSpec spec;
  spec.set_name(name);
  spec.set_kind(v1::DENSE);
  spec.add_shape(n);
  spec.mutable_initializer()->set_kind(v1::Initializer::UNIFORM);
  spec.mutable_initializer()->set_low(-1.0f);
  spec.mutable_initializer()->set_high(1.0f);
  spec.mutable_initializer()->set_seed(11);
  *spec.mutable_optimizer() = optimizer;
  spec.set_consistency(mode);
  return spec;
}

v1::OptimizerSpec Sgd() { return DefaultOptimizerSpec(v1::OptimizerSpec::SGD, 0.5f); }
v1::OptimizerSpec Adam() { return DefaultOptimizerSpec(v1::OptimizerSpec::ADAM, 0.01f); }

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

namespace {

StoreOptions MakeStoreOptions(int shard, int num_shards) {
  StoreOptions options;
  options.shard_index = shard;
  options.num_shards = num_shards;
  return options;
}

}  // namespace

TestShard::TestShard(const CheckpointOptions& options, const absl::Time* now, int shard,
                     int num_shards)
    : registry(absl::Seconds(10), [now] { return *now; }),
      store(MakeStoreOptions(shard, num_shards), &registry),
      manager(options, shard, num_shards, &store, &registry, &ledger) {}

void TestShard::Create(const v1::TableSpec& spec) {
  v1::CreateTableRequest request;
  *request.mutable_spec() = spec;
  v1::CreateTableResponse response;
  ASSERT_TRUE(store.CreateTable(request, &response).ok()) << spec.name();
}

void TestShard::Join(int worker) {
  ASSERT_TRUE(registry.Register(worker, absl::StrCat("host-", worker), "cpu").ok());
  store.OnWorkerRegistered(worker, 0);
}

absl::Status TestShard::PushDense(int worker, int64_t step, const std::string& table,
                                  const std::vector<float>& grad) {
  v1::PushRequest request;
  request.set_worker_index(worker);
  request.set_step(step);
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table(table);
  slice->set_offset(0);
  slice->set_length(static_cast<int64_t>(grad.size()));
  slice->set_values(Encode(grad));
  v1::PushResponse response;
  return store.Push(request, &response);
}

absl::Status TestShard::PushSparse(const std::string& table, const std::vector<int64_t>& keys,
                                   const std::vector<float>& grads) {
  v1::PushRequest request;
  request.set_worker_index(0);
  v1::SparseRows* rows = request.add_sparse();
  rows->set_table(table);
  for (int64_t k : keys) rows->add_keys(k);
  rows->set_values(Encode(grads));
  v1::PushResponse response;
  return store.Push(request, &response);
}

std::pair<std::vector<float>, int64_t> TestShard::PullDense(const std::string& table,
                                                            int64_t n) {
  v1::PullRequest request;
  request.set_worker_index(-1);
  v1::DenseSlice* slice = request.add_dense();
  slice->set_table(table);
  slice->set_offset(0);
  slice->set_length(n);
  v1::PullResponse response;
  absl::Status s = store.Pull(request, absl::Now() + absl::Seconds(5), &response);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok() || response.dense_size() != 1) return {{}, -1};
  return {Decode(response.dense(0).values()), response.dense(0).version()};
}

std::map<std::string, v1::TableCheckpoint> TestShard::CaptureAll() {
  std::map<std::string, v1::TableCheckpoint> out;
  for (DenseTable* t : store.Tables()) {
    absl::MutexLock lock(t->mu());
    out[t->name()] = t->Capture();
  }
  for (SparseTable* t : store.SparseTables()) {
    absl::MutexLock lock(t->mu());
    out[t->name()] = t->Capture();
  }
  return out;
}

void CheckpointDirTest::SetUp() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr) << "run under bazel test";
  // A parameterized test's name ("Name/Param") would be a path.
  const std::string test = absl::StrReplaceAll(
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), {{"/", "."}});
  dir_ = absl::StrCat(tmp, "/", test);
  mkdir(dir_.c_str(), 0755);
  for (const std::string& name : ListDir(dir_)) std::remove((dir_ + "/" + name).c_str());
}

CheckpointOptions CheckpointDirTest::Options(int keep, int64_t every_steps) const {
  CheckpointOptions options;
  options.dir = dir_;
  options.keep = keep;
  options.every_steps = every_steps;
  return options;
}

std::vector<std::string> CheckpointDirTest::FilesAt(int64_t version) const {
  std::vector<std::string> out;
  const std::string prefix = absl::StrFormat("shard-0-%012d-", version);
  for (const std::string& name : ListDir(dir_)) {
    if (absl::StartsWith(name, prefix) && absl::EndsWith(name, ".ckpt")) out.push_back(name);
  }
  return out;
}

void CheckpointDirTest::ExpectOnlyCheckpointFiles() const {
  for (const std::string& name : ListDir(dir_)) {
    EXPECT_TRUE(absl::StartsWith(name, "shard-") && absl::EndsWith(name, ".ckpt")) << name;
  }
}

}  // namespace testing
}  // namespace ps
