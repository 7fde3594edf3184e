// Helpers for the tests of deploy/: find system programs (kubectl, python3, ip) and read a
// pod's environment from the rendered Kubernetes manifests, so a test can start a daemon
// exactly as its pod would (deploy/docker/entrypoint.sh with that environment).
//
// Thread safety: one test thread at a time.
#ifndef PS_TESTS_DEPLOY_TESTING_H_
#define PS_TESTS_DEPLOY_TESTING_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps {
namespace testing {

// The first executable `name` in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin,
// /sbin, /bin or on PATH; "" if there is none.
std::string FindProgram(const std::string& name);

// Runs `argv` (argv[0] a path) to completion with its output in `log_path`. Returns the
// output; INTERNAL naming the command and quoting the output if it exits non-zero,
// DEADLINE_EXCEEDED (after killing it) if it runs past `timeout`.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& log_path,
                                       absl::Duration timeout = absl::Minutes(1));

// Runs tests/k8s_manifests_check.py (from the runfiles) with `args`; see RunCommand.
absl::StatusOr<std::string> RunManifestCheck(const std::vector<std::string>& args,
                                             const std::string& log_path);

// The literal environment of the container with PS_ROLE=`role` ("server" or "worker") in
// `manifest`: "overlays/<name>" (rendered with `kubectl`; ConfigMaps and env merged) or
// "tfjob" (deploy/k8s/tfjob/tfjob.yaml, before the operator adds TF_CONFIG).
absl::StatusOr<std::map<std::string, std::string>> RenderedPodEnv(const std::string& kubectl,
                                                                  const std::string& manifest,
                                                                  const std::string& role,
                                                                  const std::string& log_path);

}  // namespace testing
}  // namespace ps

#endif  // PS_TESTS_DEPLOY_TESTING_H_
