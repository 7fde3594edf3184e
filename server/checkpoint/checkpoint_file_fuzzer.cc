// Fuzzes the checkpoint reader: DecodeCheckpointFile (server/checkpoint/checkpoint_file.h)
// on arbitrary bytes, and, for what decodes, the restore of every table into a shard
// (ParameterStore::RestoreTable), which must accept it or refuse it with a status, never
// crash or hold more than its memory budget. Inputs whose first byte is odd are
// wrapped in a valid header and CRC first, so the payload's parser and the restore are
// reached, not only the CRC check.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "glog/logging.h"
#include "google/protobuf/stubs/logging.h"
#include "server/checkpoint/checkpoint_file.h"
#include "server/shard/shard.h"

namespace {

std::string WithHeader(absl::string_view payload) {
  std::string file = "PSCKPT01";
  const uint64_t length = payload.size();
  const uint32_t crc = ps::Crc32(payload);
  for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>(length >> (8 * i)));
  for (int i = 0; i < 4; ++i) file.push_back(static_cast<char>(crc >> (8 * i)));
  file.append(payload.data(), payload.size());
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 3;  // FATAL only: a fuzzer makes millions of refusals
  google::protobuf::SetLogHandler(nullptr);  // nor protobuf's line per malformed string
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::string bytes = (data[0] & 1) ? WithHeader(rest) : std::string(rest);
  absl::StatusOr<ps::v1::ShardCheckpoint> checkpoint =
      ps::DecodeCheckpointFile(bytes, "fuzz.ckpt");
  if (!checkpoint.ok()) {
    if (checkpoint.status().code() != absl::StatusCode::kDataLoss ||
        !absl::StartsWith(checkpoint.status().message(), "fuzz.ckpt")) {
      std::abort();
    }
    return 0;
  }
  ps::ShardOptions options;
  options.store.shard_index = (data[0] >> 1) & 1;
  options.store.num_shards = 2;
  options.memory_budget_bytes = 16 << 20;
  ps::Shard shard(options);
  for (ps::v1::TableCheckpoint& table : *checkpoint->mutable_tables()) {
    const absl::Status restored = shard.store()->RestoreTable(&table);
    if (restored.code() == absl::StatusCode::kUnknown ||
        restored.code() == absl::StatusCode::kInternal) {
      std::abort();
    }
  }
  ps::v1::GetStatusResponse status;
  shard.GetStatus(&status);
  if (status.memory_used_bytes() > options.memory_budget_bytes) std::abort();
  ps::CheckpointVersion(*checkpoint);
  return 0;
}
