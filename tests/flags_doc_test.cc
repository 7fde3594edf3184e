// The README's flag tables against the binaries: `--help` of ps_server, ps_worker and psctl
// exits 0 and lists the program's flags (each with its PS_ variable), every flag a table
// names exists, and every flag a binary has is in its table. Also the environment: a
// PS_<FLAG> variable reaches a flag that no hand-kept list names (--eval_only), and a bad
// value is refused naming the variable, as a bad glog flag is refused naming the flag.
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cluster.h"
#include "tests/deploy_testing.h"

namespace ps {
namespace testing {
namespace {

using ::testing::HasSubstr;

// The program flags `binary --help` lists, one "  --name=default  (type; PS_NAME)" each.
std::set<std::string> HelpFlags(const std::string& binary) {
  absl::StatusOr<std::string> out =
      RunCommand({RunfilePath(binary), "--help"}, TempDir("help") + "/help.log");
  EXPECT_TRUE(out.ok()) << out.status();  // non-zero exit is an error here
  std::set<std::string> flags;
  if (!out.ok()) return flags;
  const std::regex line(R"(^  --([A-Za-z0-9_]+)=.*  \([a-z0-9]+; PS_([A-Z0-9_]+)\)$)");
  for (absl::string_view l : absl::StrSplit(*out, '\n')) {
    std::smatch m;
    const std::string s(l);
    if (!std::regex_match(s, m, line)) continue;
    std::string upper = m[1];
    for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(m[2].str(), upper) << s;
    flags.insert(m[1]);
  }
  return flags;
}

// The README's table under "### `<program>`": the flags in its first column, and every
// flag its rows mention anywhere.
struct Table {
  std::set<std::string> first_column;
  std::set<std::string> mentioned;
};

Table ReadmeTable(const std::string& program) {
  std::ifstream in(RunfilePath("README.md"));
  EXPECT_TRUE(in.good()) << "README.md is not in the runfiles";
  Table table;
  bool inside = false;
  const std::regex flag(R"(`--(?:no)?([a-z0-9_]+)[`=])");
  for (std::string line; std::getline(in, line);) {
    if (absl::StartsWith(line, "#")) inside = line == "### `" + program + "`";
    if (!inside || !absl::StartsWith(line, "| `--")) continue;
    const std::vector<std::string> cells = absl::StrSplit(line, '|');
    for (size_t c = 1; c < cells.size(); ++c) {
      for (std::sregex_iterator it(cells[c].begin(), cells[c].end(), flag), end; it != end;
           ++it) {
        if (c == 1) table.first_column.insert((*it)[1]);
        table.mentioned.insert((*it)[1]);
      }
    }
  }
  return table;
}

void CheckTable(const std::string& program, const std::string& binary) {
  const std::set<std::string> flags = HelpFlags(binary);
  ASSERT_GT(flags.size(), 5u) << binary << " --help lists almost no flags";
  const Table table = ReadmeTable(program);
  ASSERT_FALSE(table.first_column.empty()) << "README.md has no table under ### `" << program
                                           << "`";
  std::vector<std::string> unknown, undocumented;
  for (const std::string& f : table.first_column) {
    if (flags.count(f) == 0) unknown.push_back("--" + f);
  }
  for (const std::string& f : flags) {
    if (table.mentioned.count(f) == 0) undocumented.push_back("--" + f);
  }
  EXPECT_TRUE(unknown.empty()) << "README.md's " << program << " table names flags "
                               << program << " does not have: " << absl::StrJoin(unknown, " ");
  EXPECT_TRUE(undocumented.empty()) << program << " has flags README.md's table leaves out: "
                                    << absl::StrJoin(undocumented, " ");
}

TEST(FlagsDocTest, ServerTableMatchesTheBinary) { CheckTable("ps_server", "server/ps_server"); }
TEST(FlagsDocTest, WorkerTableMatchesTheBinary) { CheckTable("ps_worker", "worker/ps_worker"); }
TEST(FlagsDocTest, PsctlTableMatchesTheBinary) { CheckTable("psctl", "psctl/psctl"); }

TEST(FlagsDocTest, HelpListsGlogVerbosity) {
  absl::StatusOr<std::string> out = RunCommand({RunfilePath("worker/ps_worker"), "--help"},
                                               TempDir("help-glog") + "/help.log");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(*out, HasSubstr("Usage: ps_worker --servers="));
  EXPECT_THAT(*out, HasSubstr("\n  --v=0  (int32)\n"));
  EXPECT_THAT(*out, HasSubstr("\n  --vmodule=  (string)\n"));
}

// Every flag is read from the environment, from the registry: --eval_only was missing from
// the hand-kept list this replaced. With no server to ask, the worker fails, and how it
// fails shows which flags it took (a bad value is refused before anything else).
TEST(FlagsDocTest, EnvironmentReachesEveryFlagAndBadValuesAreNamed) {
  const std::string dir = TempDir("env");
  absl::StatusOr<std::string> out = RunCommand(
      {"/usr/bin/env", "PS_EVAL_ONLY=maybe", RunfilePath("worker/ps_worker")}, dir + "/a.log");
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()),
              HasSubstr("environment variable PS_EVAL_ONLY='maybe'"));

  out = RunCommand({RunfilePath("worker/ps_worker"), "--v=often"}, dir + "/b.log");
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("--v=often: not a valid value"));

  out = RunCommand({RunfilePath("server/ps_server"), "--no_such_flag=1"}, dir + "/c.log");
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("no_such_flag"));
}

}  // namespace
}  // namespace testing
}  // namespace ps
