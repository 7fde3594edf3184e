// Lets Kubeflow's TFJob launch the daemons unchanged. TFJob gives every pod a TF_CONFIG
// environment variable, JSON such as
//
//   {"cluster": {"ps": ["job-ps-0.ns.svc:50051", "job-ps-1.ns.svc:50051"],
//                "worker": ["job-worker-0.ns.svc:50051", "job-worker-1.ns.svc:50051"]},
//    "task": {"type": "worker", "index": 1}, "environment": "cloud"}
//
// and this unit turns it into the daemons' flags: the "ps" list becomes --servers (in
// shard order), a ps task's index becomes --shard_index and the port of its own address
// --port, a worker's index becomes --worker_index and the worker count --num_workers.
//
// Replica types are matched case-insensitively ("PS", "Worker", "ps", "worker"). As in
// TensorFlow's own numbering, a "chief" (or its older name "master") is one more worker:
// it is worker 0 and the "worker" tasks become 1..n. "evaluator" tasks and the sparse
// cluster of TFJob's enableDynamicWorker are rejected: the daemons need the whole cluster.
//
// Precedence, lowest first: flag defaults, TF_CONFIG, PS_<FLAG> variables, the command
// line; main() therefore calls ApplyTfConfigFromEnv() before SetFlagsFromEnv().
//
// Not thread-safe: call once from main() before absl::ParseCommandLine.
#ifndef PS_COMMON_TF_CONFIG_H_
#define PS_COMMON_TF_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ps {

// Which daemon a TF_CONFIG task maps to.
enum class TfRole { kPs, kWorker };

// What a TF_CONFIG says about the cluster and this task.
struct ClusterFromTfConfig {
  std::vector<std::string> ps;  // every shard's host:port, in shard order
  int num_workers = 0;          // chief/master plus workers
  TfRole role = TfRole::kWorker;
  int index = 0;  // shard index for kPs; worker index (chief first) for kWorker
  int port = 0;   // the port of this task's own address in the cluster
};

// Parses a TF_CONFIG value. Returns INVALID_ARGUMENT, with a message that starts with
// "TF_CONFIG:" and names the offending field, when the JSON is malformed, the task type is
// not ps/worker/chief/master, the index is out of range or an address has no port.
absl::StatusOr<ClusterFromTfConfig> ParseTfConfig(const std::string& json);

// When the environment variable TF_CONFIG is set, parses it and sets the flags of the
// daemon `role` (kPs: ps_server's servers, shard_index, port; kWorker: ps_worker's
// servers, worker_index, num_workers). Returns OK and changes nothing when TF_CONFIG is
// unset or empty; INVALID_ARGUMENT when it does not parse or its task is of the other role.
absl::Status ApplyTfConfigFromEnv(TfRole role);

}  // namespace ps

#endif  // PS_COMMON_TF_CONFIG_H_
