// Text rendering of the Admin service's answers for psctl: the cluster status as
// aligned tables (shards, tables, workers), the shards that could not be asked, and
// what a checkpoint wrote. Pure functions of their arguments, so tests compare strings.
//
// Thread-safe: no shared state.
#ifndef PS_PSCTL_FORMAT_H_
#define PS_PSCTL_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "proto/v1/ps.pb.h"

namespace ps {
namespace psctl {

// Every status snapshot starts with a line that begins with this.
inline constexpr char kStatusHeader[] = "cluster status at ";

// Rows as left-aligned columns two spaces apart; the first row is the heading.
std::string RenderColumns(const std::vector<std::vector<std::string>>& rows);

// "512 B", "1.5 KiB", "3.0 MiB", ...
std::string FormatBytes(int64_t bytes);
// "850ms", "12.3s", "4m05s", "2h03m", "3d04h".
std::string FormatMillis(int64_t ms);

// The one-line summary: time, shard count, how many answered, tables, live workers.
std::string FormatHeader(const v1::ClusterStatusResponse& cluster);
// One row per shard: address, reachable, uptime, table count, requests and bytes.
std::string FormatShards(const v1::ClusterStatusResponse& cluster);
// One row per table and shard holding part of it (dense parts of 0 elements are left out).
std::string FormatTables(const v1::ClusterStatusResponse& cluster);
// One row per worker, from the shard that heard from it last.
std::string FormatWorkers(const v1::ClusterStatusResponse& cluster);
// Header, shards, tables and workers, separated by blank lines.
std::string FormatStatus(const v1::ClusterStatusResponse& cluster);
// "shard 1: cannot reach 127.0.0.1:5001: UNAVAILABLE: ..." for each shard with an error.
std::vector<std::string> ShardErrors(const v1::ClusterStatusResponse& cluster);

// One line per checkpoint written.
std::string FormatCheckpoint(const v1::CheckpointResponse& response);

}  // namespace psctl
}  // namespace ps

#endif  // PS_PSCTL_FORMAT_H_
