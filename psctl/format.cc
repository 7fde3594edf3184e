#include "psctl/format.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace ps {
namespace psctl {
namespace {

std::string Mode(const v1::TableSpec& spec) {
  switch (spec.consistency()) {
    case v1::SYNC:
      return spec.backup_workers() > 0 ? absl::StrCat("sync(b=", spec.backup_workers(), ")")
                                       : "sync";
    case v1::ASYNC:
      return "async";
    case v1::SSP:
      return absl::StrCat("ssp(s=", spec.staleness_bound(), ")");
    default:
      return "?";
  }
}

std::string Kind(const v1::TableSpec& spec) {
  switch (spec.kind()) {
    case v1::DENSE:
      return absl::StrCat("dense[", absl::StrJoin(spec.shape(), "x"), "]");
    case v1::SPARSE:
      return absl::StrCat("sparse[", spec.row_width(), "]");
    default:
      return "?";
  }
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

}  // namespace

std::string RenderColumns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (row.size() > width.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = -1;
  while (v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

std::string FormatMillis(int64_t ms) {
  if (ms < 1000) return absl::StrCat(ms, "ms");
  if (ms < 60 * 1000) return absl::StrFormat("%.1fs", ms / 1000.0);
  const int64_t s = ms / 1000;
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatHeader(const v1::ClusterStatusResponse& cluster) {
  int reachable = 0;
  std::set<std::string> tables;
  std::map<int, bool> workers;  // index -> live on any shard
  for (const v1::ShardStatus& shard : cluster.shards()) {
    if (!shard.reachable()) continue;
    ++reachable;
    for (const v1::TableStatus& t : shard.status().tables()) tables.insert(t.spec().name());
    for (const v1::WorkerStatus& w : shard.status().workers()) {
      workers[w.worker_index()] = workers[w.worker_index()] || w.live();
    }
  }
  int live = 0;
  for (const auto& [index, is_live] : workers) live += is_live ? 1 : 0;
  const absl::Time t = absl::FromUnixMillis(cluster.timestamp_ms());
  return absl::StrCat(kStatusHeader, absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", t, absl::UTCTimeZone()),
                      ": ", cluster.shards_size(), " shards (", reachable, " reachable), ",
                      tables.size(), " tables, ", live, " of ", workers.size(), " workers live\n");
}

std::string FormatShards(const v1::ClusterStatusResponse& cluster) {
  std::vector<std::vector<std::string>> rows = {{"SHARD", "ADDRESS", "REACHABLE", "UPTIME",
                                                 "TABLES", "PUSHES", "PULLS", "BYTES IN",
                                                 "BYTES OUT", "VIA WINDOWS"}};
  for (int i = 0; i < cluster.shards_size(); ++i) {
    const v1::ShardStatus& shard = cluster.shards(i);
    const v1::GetStatusResponse& s = shard.status();
    if (!shard.reachable()) {
      rows.push_back(
          {absl::StrCat(i), shard.address(), "no", "-", "-", "-", "-", "-", "-", "-"});
      continue;
    }
    rows.push_back({absl::StrCat(i), shard.address(), "yes", FormatMillis(s.uptime_ms()),
                    absl::StrCat(s.tables_size()), absl::StrCat(s.push_requests()),
                    absl::StrCat(s.pull_requests()), FormatBytes(s.bytes_received()),
                    FormatBytes(s.bytes_sent()),
                    FormatBytes(s.window_bytes_received() + s.window_bytes_sent())});
  }
  return RenderColumns(rows);
}

std::string FormatTables(const v1::ClusterStatusResponse& cluster) {
  std::vector<std::pair<int, const v1::TableStatus*>> parts;  // (shard, table)
  for (int i = 0; i < cluster.shards_size(); ++i) {
    if (!cluster.shards(i).reachable()) continue;
    for (const v1::TableStatus& t : cluster.shards(i).status().tables()) {
      // A small dense table lives whole on one shard; the others hold none of it.
      if (t.spec().kind() == v1::DENSE && t.elements_on_shard() == 0) continue;
      parts.push_back({i, &t});
    }
  }
  if (parts.empty()) return "no tables\n";
  std::stable_sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) {
    return a.second->spec().name() < b.second->spec().name();
  });
  std::vector<std::vector<std::string>> rows = {{"TABLE", "KIND", "MODE", "SHARD", "ELEMENTS",
                                                 "VERSION", "PUSHES", "PULLS", "REJECTED",
                                                 "STALENESS (mean/max)"}};
  for (const auto& [shard, t] : parts) {
    rows.push_back({t->spec().name(), Kind(t->spec()), Mode(t->spec()), absl::StrCat(shard),
                    absl::StrCat(t->elements_on_shard()), absl::StrCat(t->version()),
                    absl::StrCat(t->pushes()), absl::StrCat(t->pulls()),
                    absl::StrCat(t->rejected_pushes()),
                    absl::StrFormat("%.2f/%d", t->mean_staleness(), t->max_staleness())});
  }
  return RenderColumns(rows);
}

std::string FormatWorkers(const v1::ClusterStatusResponse& cluster) {
  // Every shard tracks every worker; the shard that heard from it last knows most.
  std::map<int, const v1::WorkerStatus*> freshest;
  for (const v1::ShardStatus& shard : cluster.shards()) {
    if (!shard.reachable()) continue;
    for (const v1::WorkerStatus& w : shard.status().workers()) {
      auto [it, inserted] = freshest.emplace(w.worker_index(), &w);
      if (!inserted && w.last_heartbeat_ms_ago() < it->second->last_heartbeat_ms_ago()) {
        it->second = &w;
      }
    }
  }
  if (freshest.empty()) return "no workers\n";
  std::vector<std::vector<std::string>> rows = {{"WORKER", "LIVE", "HOST", "DEVICE", "CLOCK",
                                                 "EPOCH", "LOSS", "SAMPLES/S", "HEARTBEAT"}};
  for (const auto& [index, w] : freshest) {
    rows.push_back({absl::StrCat(index), YesNo(w->live()), w->host().empty() ? "-" : w->host(),
                    w->stats().device().empty() ? "-" : w->stats().device(),
                    absl::StrCat(w->stats().clock()), absl::StrCat(w->stats().epoch()),
                    absl::StrFormat("%.4f", w->stats().loss()),
                    absl::StrFormat("%.0f", w->stats().samples_per_sec()),
                    absl::StrCat(FormatMillis(w->last_heartbeat_ms_ago()), " ago")});
  }
  return RenderColumns(rows);
}

std::string FormatStatus(const v1::ClusterStatusResponse& cluster) {
  return absl::StrCat(FormatHeader(cluster), "\n", FormatShards(cluster), "\n",
                      FormatTables(cluster), "\n", FormatWorkers(cluster));
}

std::vector<std::string> ShardErrors(const v1::ClusterStatusResponse& cluster) {
  std::vector<std::string> errors;
  for (int i = 0; i < cluster.shards_size(); ++i) {
    const v1::ShardStatus& shard = cluster.shards(i);
    if (!shard.reachable() || !shard.error().empty()) {
      errors.push_back(absl::StrCat(
          "shard ", i, ": ",
          shard.error().empty() ? absl::StrCat(shard.address(), " did not answer") : shard.error()));
    }
  }
  return errors;
}

std::string FormatCheckpoint(const v1::CheckpointResponse& response) {
  if (response.written().empty()) return "no checkpoint written\n";
  std::vector<std::vector<std::string>> rows = {{"SHARD", "VERSION", "SIZE", "PATH"}};
  for (const v1::CheckpointResponse::Written& w : response.written()) {
    rows.push_back({absl::StrCat(w.shard_index()), absl::StrCat(w.version()),
                    FormatBytes(w.bytes()), w.path()});
  }
  return RenderColumns(rows);
}

}  // namespace psctl
}  // namespace ps
