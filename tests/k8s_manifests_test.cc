// Renders deploy/k8s with `kubectl kustomize` and checks it against the daemons: every
// object well formed; one gRPC port in the flag, container, probes, Service and PS_SERVERS;
// the headless Service selecting the shards; every PS_* variable a real flag (from
// --helpfull) of the binary the pod runs; the GPU overlay asking for nvidia.com/gpu. The
// checks live in tests/k8s_manifests_check.py (YAML needs python3-yaml); this test runs it
// once per overlay and once for the TFJob, and skips the overlays where kubectl is missing.
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/deploy_testing.h"

namespace ps {
namespace testing {
namespace {

// Runs the checker with `args` and expects no problems.
void Check(const std::string& name, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--ps_server=" + RunfilePath("server/ps_server"),
                                  "--ps_worker=" + RunfilePath("worker/ps_worker")};
  all.insert(all.end(), args.begin(), args.end());
  absl::StatusOr<std::string> out = RunManifestCheck(all, TempDir("k8s-" + name) + "/check.log");
  ASSERT_TRUE(out.ok()) << out.status();
  std::printf("%s", out->c_str());
}

void CheckOverlay(const std::string& overlay) {
  const std::string kubectl = FindProgram("kubectl");
  if (kubectl.empty()) GTEST_SKIP() << "kubectl is missing: cannot render the overlays";
  Check(overlay, {"--kubectl=" + kubectl, "--overlay=" + overlay});
}

TEST(K8sManifestsTest, CpuOverlayMatchesTheDaemons) { CheckOverlay("cpu"); }

TEST(K8sManifestsTest, GpuOverlayRequestsGpusAndMatchesTheDaemons) { CheckOverlay("gpu"); }

TEST(K8sManifestsTest, TfJobMatchesTheDaemons) { Check("tfjob", {"--tfjob"}); }

}  // namespace
}  // namespace testing
}  // namespace ps
