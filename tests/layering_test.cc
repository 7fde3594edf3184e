// The layers the build enforces (docs/architecture.md): the logic packages never include
// a gRPC header, and worker/ and psctl/ never include or depend on server/. Reads the
// sources and BUILD files of every package (their :layering_sources filegroups).
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/cluster.h"

namespace ps {
namespace testing {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every file of `package` that its :layering_sources filegroup lists, as
// (path relative to the workspace, contents).
std::vector<std::pair<std::string, std::string>> Files(const std::string& package) {
  std::vector<std::pair<std::string, std::string>> out;
  const fs::path dir = RunfilePath(package);
  EXPECT_TRUE(fs::is_directory(dir)) << dir;
  if (!fs::is_directory(dir)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file() && !e.is_symlink()) continue;
    const std::string name = e.path().filename().string();
    out.emplace_back(package + "/" + name, Read(e.path()));
  }
  return out;
}

// "file:line: text" for each line of `files` that matches `pattern`.
std::vector<std::string> Matches(const std::vector<std::string>& packages,
                                 const std::regex& pattern, bool build_files) {
  std::vector<std::string> found;
  for (const std::string& package : packages) {
    for (const auto& [path, text] : Files(package)) {
      const bool is_build = path.size() >= 5 && path.compare(path.size() - 5, 5, "BUILD") == 0;
      if (is_build != build_files) continue;
      std::istringstream lines(text);
      std::string line;
      for (int n = 1; std::getline(lines, line); ++n) {
        if (std::regex_search(line, pattern)) {
          found.push_back(path + ":" + std::to_string(n) + ": " + line);
        }
      }
    }
  }
  return found;
}

const std::vector<std::string> kLogicPackages = {
    "server/table", "server/shard", "server/checkpoint", "worker/data", "worker/model",
    "worker/train"};
const std::vector<std::string> kClientSidePackages = {
    "worker", "worker/client", "worker/data", "worker/model", "worker/train", "psctl"};

TEST(LayeringTest, LogicPackagesIncludeNoGrpcHeader) {
  const std::regex grpc(R"(#include\s*[<"](grpc|grpcpp|grpc\+\+)/|#include\s*".*\.grpc\.pb\.h")");
  const std::vector<std::string> found = Matches(kLogicPackages, grpc, /*build_files=*/false);
  EXPECT_TRUE(found.empty()) << "gRPC belongs in server/rpc and worker/client:\n"
                             << ::testing::PrintToString(found);
}

TEST(LayeringTest, WorkerAndPsctlNeverIncludeServer) {
  const std::regex server(R"(#include\s*"server/)");
  const std::vector<std::string> found = Matches(kClientSidePackages, server, false);
  EXPECT_TRUE(found.empty()) << "what both sides need belongs in common/:\n"
                             << ::testing::PrintToString(found);
}

TEST(LayeringTest, WorkerAndPsctlNeverDependOnServer) {
  const std::regex server(R"("//server[/:"])");
  const std::vector<std::string> found = Matches(kClientSidePackages, server, true);
  EXPECT_TRUE(found.empty()) << ::testing::PrintToString(found);
}

}  // namespace
}  // namespace testing
}  // namespace ps
