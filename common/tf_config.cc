#include "common/tf_config.h"

#include <cmath>
#include <cstdlib>
#include <map>

#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace ps {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("TF_CONFIG: ", what));
}

// Returns the port of "host:port" or "[v6]:port".
absl::StatusOr<int> PortOf(const std::string& address, const std::string& where) {
  const size_t colon = address.rfind(':');
  const size_t bracket = address.rfind(']');
  int port = 0;
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket) ||
      colon == 0 || !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 ||
      port > 65535) {
    return Invalid(absl::StrCat(where, " '", address, "' is not host:port"));
  }
  return port;
}

// Reads cluster.<type> lists, keyed by the lower-cased replica type.
absl::StatusOr<std::map<std::string, std::vector<std::string>>> ReadCluster(const Struct& root) {
  auto it = root.fields().find("cluster");
  if (it == root.fields().end()) return Invalid("'cluster' is missing");
  if (it->second.kind_case() != Value::kStructValue) return Invalid("'cluster' is not an object");
  std::map<std::string, std::vector<std::string>> cluster;
  for (const auto& [key, value] : it->second.struct_value().fields()) {
    const std::string type = absl::AsciiStrToLower(key);
    if (cluster.count(type) > 0) {
      return Invalid(absl::StrCat("cluster lists replica type '", type, "' twice"));
    }
    if (value.kind_case() != Value::kListValue) {
      return Invalid(absl::StrCat("cluster.", key, " is not a list of addresses"));
    }
    std::vector<std::string>& addresses = cluster[type];
    for (const Value& address : value.list_value().values()) {
      if (address.kind_case() != Value::kStringValue || address.string_value().empty()) {
        return Invalid(
            absl::StrCat("cluster.", key, "[", addresses.size(), "] is not a host:port string"));
      }
      addresses.push_back(address.string_value());
    }
  }
  return cluster;
}

}  // namespace

absl::StatusOr<ClusterFromTfConfig> ParseTfConfig(const std::string& json) {
  Struct root;
  if (auto s = google::protobuf::util::JsonStringToMessage(json, &root); !s.ok()) {
    return Invalid(absl::StrCat("not a JSON object: ", std::string(s.message())));
  }
  if (root.fields().count("sparseCluster") > 0) {
    return Invalid(
        "'sparseCluster' (TFJob enableDynamicWorker) is not supported: the daemons need every "
        "shard and the worker count; set enableDynamicWorker: false");
  }
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> cluster = ReadCluster(root);
  if (!cluster.ok()) return cluster.status();

  ClusterFromTfConfig out;
  out.ps = (*cluster)["ps"];
  if (out.ps.empty()) return Invalid("cluster.ps is missing or empty: no parameter servers");
  for (size_t i = 0; i < out.ps.size(); ++i) {
    absl::StatusOr<int> port = PortOf(out.ps[i], absl::StrCat("cluster.ps[", i, "]"));
    if (!port.ok()) return port.status();
  }
  const std::vector<std::string>& workers = (*cluster)["worker"];
  std::vector<std::string> chiefs = (*cluster)["chief"];
  const std::vector<std::string>& masters = (*cluster)["master"];
  chiefs.insert(chiefs.end(), masters.begin(), masters.end());
  if (chiefs.size() > 1) {
    return Invalid(absl::StrCat("cluster has ", chiefs.size(),
                                " chief/master tasks; TensorFlow allows at most one"));
  }
  out.num_workers = static_cast<int>(chiefs.size() + workers.size());

  auto task_it = root.fields().find("task");
  if (task_it == root.fields().end() || task_it->second.kind_case() != Value::kStructValue) {
    return Invalid("'task' is missing or not an object");
  }
  const auto& task = task_it->second.struct_value().fields();
  auto type_it = task.find("type");
  if (type_it == task.end() || type_it->second.kind_case() != Value::kStringValue) {
    return Invalid("task.type is missing or not a string");
  }
  const std::string type = absl::AsciiStrToLower(type_it->second.string_value());
  // A missing index means 0, as in TensorFlow's RunConfig.
  int index = 0;
  if (auto index_it = task.find("index"); index_it != task.end()) {
    const Value& v = index_it->second;
    if (v.kind_case() != Value::kNumberValue || v.number_value() < 0 ||
        v.number_value() != std::floor(v.number_value()) || v.number_value() > 1e6) {
      return Invalid("task.index is not a non-negative integer");
    }
    index = static_cast<int>(v.number_value());
  }

  const std::vector<std::string>* group = nullptr;
  if (type == "ps") {
    out.role = TfRole::kPs;
    out.index = index;
    group = &out.ps;
  } else if (type == "worker") {
    out.role = TfRole::kWorker;
    out.index = static_cast<int>(chiefs.size()) + index;
    group = &workers;
  } else if (type == "chief" || type == "master") {
    out.role = TfRole::kWorker;
    out.index = index;
    group = &(*cluster)[type];
  } else {
    return Invalid(absl::StrCat("task.type '", type_it->second.string_value(),
                                "' is neither ps nor worker (nor chief/master)"));
  }
  if (index >= static_cast<int>(group->size())) {
    return Invalid(absl::StrCat("task.index ", index, " is out of range: cluster.", type, " has ",
                                group->size(), " entries"));
  }
  absl::StatusOr<int> port =
      PortOf((*group)[index], absl::StrCat("cluster.", type, "[", index, "]"));
  if (!port.ok()) return port.status();
  out.port = *port;
  return out;
}

namespace {

absl::Status SetFlag(const std::string& name, const std::string& value) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return absl::InternalError(absl::StrCat("no flag --", name));
  std::string error;
  if (!flag->ParseFrom(value, &error)) {
    return Invalid(absl::StrCat("--", name, "='", value, "': ", error));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyTfConfigFromEnv(TfRole role) {
  const char* json = std::getenv("TF_CONFIG");
  if (json == nullptr || json[0] == '\0') return absl::OkStatus();
  absl::StatusOr<ClusterFromTfConfig> config = ParseTfConfig(json);
  if (!config.ok()) return config.status();
  if (config->role != role) {
    return Invalid(role == TfRole::kPs
                       ? "the task is a worker, but this is ps_server (set PS_ROLE=worker)"
                       : "the task is a ps, but this is ps_worker (set PS_ROLE=server)");
  }
  std::vector<std::pair<std::string, std::string>> flags = {
      {"servers", absl::StrJoin(config->ps, ",")}};
  if (role == TfRole::kPs) {
    flags.push_back({"shard_index", absl::StrCat(config->index)});
    flags.push_back({"port", absl::StrCat(config->port)});
  } else {
    flags.push_back({"worker_index", absl::StrCat(config->index)});
    flags.push_back({"num_workers", absl::StrCat(config->num_workers)});
  }
  for (const auto& [name, value] : flags) {
    if (absl::Status s = SetFlag(name, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace ps
