#include "psctl/export.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/npz.h"
#include "proto/v1/ps.grpc.pb.h"

namespace ps {
namespace psctl {
namespace {

// Floats per pull request: 1 MiB of values, well under gRPC's 4 MiB reply limit.
constexpr int64_t kPullElements = 1 << 18;
constexpr int kMaxReply = 16 << 20;

struct Part {
  int shard;
  int64_t offset;
  int64_t elements;  // dense: elements held; sparse: rows held
};

struct TableParts {
  v1::TableSpec spec;
  std::vector<Part> parts;
};

std::string JsonOf(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(m, &json, options).ok()) return "{}";
  return json;
}

std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrCat("\\u00", c < 16 ? "0" : "", absl::Hex(c));
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// The shards' ranges of a dense table of `n` elements must tile [0, n) exactly: what the
// export writes into its buffer comes from what they report.
absl::Status CheckCover(const std::string& name, std::vector<Part> parts, int64_t n) {
  std::sort(parts.begin(), parts.end(),
            [](const Part& a, const Part& b) { return a.offset < b.offset; });
  int64_t at = 0;
  for (const Part& p : parts) {
    if (p.elements == 0) continue;
    if (p.offset != at || p.elements < 0 || p.elements > n - at) {
      return absl::DataLossError(
          absl::StrCat("table '", name, "': shard ", p.shard, " reports elements [", p.offset, ", ",
                       p.offset + p.elements, "), which do not follow [0, ", at, ") within ", n));
    }
    at += p.elements;
  }
  if (at != n) {
    return absl::DataLossError(
        absl::StrCat("table '", name, "': the shards hold ", at, " of its ", n, " elements"));
  }
  return absl::OkStatus();
}

class Exporter {
 public:
  Exporter(const v1::ClusterStatusResponse& cluster, const ChannelCredentials& credentials,
           absl::Duration timeout)
      : cluster_(cluster), timeout_(timeout) {
    // A page of a very wide sparse table holds at least one row (up to 4 MiB of floats).
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReply);
    for (const v1::ShardStatus& s : cluster.shards()) {
      stubs_.push_back(v1::ParameterServer::NewStub(NewChannel(s.address(), credentials, args)));
    }
  }

  absl::Status Call(int shard, const v1::PullRequest& request, v1::PullResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout_));
    return Check(shard, "pull", stubs_[shard]->Pull(&context, request, response));
  }
  absl::Status Call(int shard, const v1::ListRowsRequest& request, v1::ListRowsResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout_));
    return Check(shard, "list rows", stubs_[shard]->ListRows(&context, request, response));
  }

  // A dense table: every shard's range, pulled in pieces.
  absl::Status ReadDense(const TableParts& t, int64_t n, NpyArray* out, ExportedTable* e) {
    out->dtype = "<f4";
    out->shape.assign(t.spec.shape().begin(), t.spec.shape().end());
    out->data.resize(static_cast<size_t>(n) * 4);
    for (const Part& p : t.parts) {
      for (int64_t at = p.offset; at < p.offset + p.elements; at += kPullElements) {
        v1::PullRequest request;
        request.set_worker_index(-1);
        v1::DenseSlice* slice = request.add_dense();
        slice->set_table(t.spec.name());
        slice->set_offset(at);
        slice->set_length(std::min(kPullElements, p.offset + p.elements - at));
        v1::PullResponse response;
        if (absl::Status s = Call(p.shard, request, &response); !s.ok()) return s;
        if (response.dense_size() != 1 ||
            response.dense(0).values().size() != static_cast<size_t>(slice->length()) * 4) {
          return absl::DataLossError(absl::StrCat("shard ", p.shard, " answered a pull of '",
                                                  t.spec.name(), "' at ", at,
                                                  " with the wrong size"));
        }
        std::copy_n(response.dense(0).values().data(), slice->length() * 4,
                    out->data.data() + at * 4);
        Version(response.dense(0).version(), e);
      }
    }
    e->values = n;
    return absl::OkStatus();
  }

  // A sparse table: every shard's rows, a page at a time.
  absl::Status ReadSparse(const TableParts& t, NpyArray* keys, NpyArray* values, ExportedTable* e) {
    const int64_t width = t.spec.row_width();
    std::vector<int64_t> all_keys;
    for (const Part& p : t.parts) {
      int64_t start = 0, total = 0;
      do {
        v1::ListRowsRequest request;
        request.set_table(t.spec.name());
        request.set_start(start);
        v1::ListRowsResponse response;
        if (absl::Status s = Call(p.shard, request, &response); !s.ok()) return s;
        const v1::SparseRows& rows = response.rows();
        const bool stuck = response.next() <= start && start < response.total_rows();
        if (rows.values().size() != static_cast<size_t>(rows.keys_size() * width) * 4 || stuck) {
          return absl::DataLossError(absl::StrCat("shard ", p.shard, " answered a listing of '",
                                                  t.spec.name(), "' that does not fit"));
        }
        all_keys.insert(all_keys.end(), rows.keys().begin(), rows.keys().end());
        values->data += rows.values();
        Version(rows.version(), e);
        start = response.next();
        total = response.total_rows();
      } while (start < total);
    }
    keys->dtype = "<i8";
    keys->shape = {static_cast<int64_t>(all_keys.size())};
    keys->data.assign(reinterpret_cast<const char*>(all_keys.data()), all_keys.size() * 8);
    values->dtype = "<f4";
    values->shape = {static_cast<int64_t>(all_keys.size()), width};
    e->values = static_cast<int64_t>(all_keys.size()) * width;
    return absl::OkStatus();
  }

 private:
  absl::Status Check(int shard, const char* what, const grpc::Status& s) const {
    if (s.ok()) return absl::OkStatus();
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat(what, " from shard ", shard, " (",
                                     cluster_.shards(shard).address(), "): ", s.error_message()));
  }
  static void Version(int64_t v, ExportedTable* e) {
    e->min_version = std::min(e->min_version, v);
    e->max_version = std::max(e->max_version, v);
  }

  const v1::ClusterStatusResponse& cluster_;
  const absl::Duration timeout_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> stubs_;
};

}  // namespace

absl::StatusOr<std::vector<ExportedTable>> ExportModel(
    const v1::ClusterStatusResponse& cluster, const ChannelCredentials& credentials,
    absl::Duration timeout, const std::string& path,
    const std::function<void(const std::string&)>& progress) {
  std::map<std::string, TableParts> tables;
  for (int i = 0; i < cluster.shards_size(); ++i) {
    const v1::ShardStatus& shard = cluster.shards(i);
    if (!shard.reachable()) {
      return absl::UnavailableError(absl::StrCat("shard ", i, " (", shard.address(),
                                                 ") could not be asked: ", shard.error(),
                                                 "; every shard must answer for an export"));
    }
    for (const v1::TableStatus& t : shard.status().tables()) {
      TableParts& parts = tables[t.spec().name()];
      if (!parts.parts.empty() &&
          !google::protobuf::util::MessageDifferencer::Equals(parts.spec, t.spec())) {
        return absl::DataLossError(absl::StrCat("table '", t.spec().name(), "': shard ", i,
                                                " reports another spec than shard ",
                                                parts.parts.front().shard));
      }
      parts.spec = t.spec();
      parts.parts.push_back({i, t.offset(), t.elements_on_shard()});
    }
  }
  if (tables.empty()) return absl::NotFoundError("the job holds no tables yet: nothing to export");
  Exporter exporter(cluster, credentials, timeout);
  std::vector<NpyArray> arrays;
  std::vector<ExportedTable> exported;
  std::vector<std::string> described;
  for (const auto& [name, t] : tables) {
    ExportedTable e;
    e.name = name;
    e.min_version = std::numeric_limits<int64_t>::max();
    e.max_version = std::numeric_limits<int64_t>::min();
    e.sparse = t.spec.kind() == v1::SPARSE;
    if (e.sparse) {
      if (tables.count(name + "/keys") || tables.count(name + "/values")) {
        return absl::InvalidArgumentError(absl::StrCat("sparse table '", name,
                                                       "' and a table named '", name,
                                                       "/keys' or '/values' cannot share a file"));
      }
      NpyArray keys{name + "/keys"}, values{name + "/values"};
      if (absl::Status s = exporter.ReadSparse(t, &keys, &values, &e); !s.ok()) return s;
      arrays.push_back(std::move(keys));
      arrays.push_back(std::move(values));
    } else {
      int64_t n = 1;
      for (int64_t d : t.spec.shape()) n *= d;
      if (absl::Status s = CheckCover(name, t.parts, n); !s.ok()) return s;
      NpyArray a{name};
      if (absl::Status s = exporter.ReadDense(t, n, &a, &e); !s.ok()) return s;
      arrays.push_back(std::move(a));
    }
    if (e.min_version > e.max_version) e.min_version = e.max_version = 0;  // no rows
    described.push_back(absl::StrCat("{\"name\": ", Quoted(name), ", \"version\": ", e.max_version,
                                     ", \"min_version\": ", e.min_version, ", \"shards\": ",
                                     t.parts.size(), ", \"spec\": ", JsonOf(t.spec), "}"));
    if (progress) {
      progress(absl::StrCat(
          name, ": ", e.values, " values, version ",
          e.min_version == e.max_version
              ? absl::StrCat(e.max_version)
              : absl::StrCat(e.min_version, "-", e.max_version, " (trained meanwhile)")));
    }
    exported.push_back(e);
  }
  const std::string json = absl::StrCat(
      "{\"format\": \"ps-model-1\", \"exported_unix_ms\": ", absl::ToUnixMillis(absl::Now()),
      ", \"num_shards\": ", cluster.shards_size(), ", \"tables\": [\n  ",
      absl::StrJoin(described, ",\n  "), "\n]}\n");
  if (absl::Status s = WriteNpz(path, arrays, {{"ps_tables.json", json}}); !s.ok()) return s;
  return exported;
}

}  // namespace psctl
}  // namespace ps
