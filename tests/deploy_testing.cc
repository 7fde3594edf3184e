#include "tests/deploy_testing.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {

std::string FindProgram(const std::string& name) {
  // The system's folders first: Debian's python3 is the one with python3-yaml.
  std::vector<std::string> dirs = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin",
                                   "/usr/bin",        "/sbin",          "/bin"};
  const char* path = std::getenv("PATH");
  for (absl::string_view d : absl::StrSplit(path != nullptr ? path : "", ':', absl::SkipEmpty())) {
    dirs.emplace_back(d);
  }
  for (const std::string& dir : dirs) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv,
                                       const std::string& log_path, absl::Duration timeout) {
  std::remove(log_path.c_str());
  absl::StatusOr<Process> p = Process::Start(argv, log_path);
  if (!p.ok()) return p.status();
  absl::StatusOr<int> code = p->Wait(timeout);
  if (!code.ok()) return code.status();  // the destructor kills it
  if (*code != 0) {
    return absl::InternalError(
        absl::StrCat("`", absl::StrJoin(argv, " "), "` exited with ", *code, ":\n", p->Log()));
  }
  return p->Log();
}

absl::StatusOr<std::string> RunManifestCheck(const std::vector<std::string>& args,
                                             const std::string& log_path) {
  const std::string python = FindProgram("python3");
  if (python.empty()) return absl::NotFoundError("python3 is missing");
  std::vector<std::string> argv = {python, RunfilePath("tests/k8s_manifests_check.py"),
                                   "--k8s_dir=" + RunfilePath("deploy/k8s")};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, log_path, absl::Minutes(2));
}

absl::StatusOr<std::map<std::string, std::string>> RenderedPodEnv(const std::string& kubectl,
                                                                  const std::string& manifest,
                                                                  const std::string& role,
                                                                  const std::string& log_path) {
  const std::string source = absl::StartsWith(manifest, "overlays/")
                                 ? "--overlay=" + manifest.substr(sizeof("overlays/") - 1)
                                 : "--" + manifest;
  absl::StatusOr<std::string> out =
      RunManifestCheck({"--kubectl=" + kubectl, source, "--print_env=" + role}, log_path);
  if (!out.ok()) return out.status();
  std::map<std::string, std::string> env;
  for (absl::string_view line : absl::StrSplit(*out, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    env[kv.first] = kv.second;
  }
  if (env.count("PS_ROLE") == 0) {
    return absl::InternalError(absl::StrCat("no environment for role ", role, " in:\n", *out));
  }
  return env;
}

}  // namespace testing
}  // namespace ps
