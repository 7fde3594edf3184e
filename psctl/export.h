// ExportModel: every table of a running (or finished) job into one .npz file that numpy
// and PyTorch load directly (docs/model_files.md): dense tables as arrays of their shape,
// sparse tables as "<name>/keys" and "<name>/values", and "ps_tables.json" describing
// each table (spec, version, shards).
//
// Thread-compatible.
#ifndef PS_PSCTL_EXPORT_H_
#define PS_PSCTL_EXPORT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/channel_credentials.h"
#include "proto/v1/ps.pb.h"

namespace ps {
namespace psctl {

struct ExportedTable {
  std::string name;
  bool sparse = false;
  int64_t values = 0;  // floats written
  int64_t min_version = 0;
  int64_t max_version = 0;  // differs from min_version when the job trained meanwhile
};

// Reads every table from every shard of `cluster` (psctl's Admin.ClusterStatus answer),
// each shard at the address it reported, with `credentials` and `timeout` per call, and
// writes `path`. `progress` (may be null) hears a line per table. UNAVAILABLE naming a
// shard that could not be reached; nothing is written unless every table was read.
absl::StatusOr<std::vector<ExportedTable>> ExportModel(
    const v1::ClusterStatusResponse& cluster, const ChannelCredentials& credentials,
    absl::Duration timeout, const std::string& path,
    const std::function<void(const std::string&)>& progress = nullptr);

}  // namespace psctl
}  // namespace ps

#endif  // PS_PSCTL_EXPORT_H_
