// Fuzzes ParseTfConfig (common/tf_config.h) with arbitrary TF_CONFIG values: it returns a
// cluster whose task is inside it, or an INVALID_ARGUMENT that starts with "TF_CONFIG:".
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "common/tf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<ps::ClusterFromTfConfig> cluster = ps::ParseTfConfig(json);
  if (!cluster.ok()) {
    if (cluster.status().code() != absl::StatusCode::kInvalidArgument ||
        !absl::StartsWith(cluster.status().message(), "TF_CONFIG:")) {
      std::abort();
    }
    return 0;
  }
  const int tasks = cluster->role == ps::TfRole::kPs ? static_cast<int>(cluster->ps.size())
                                                     : cluster->num_workers;
  if (cluster->index < 0 || cluster->index >= tasks) std::abort();
  if (cluster->port <= 0 || cluster->port > 65535) std::abort();
  return 0;
}
