#include "common/flags_env.h"

#include <gflags/gflags.h>
#include <glog/logging.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ps {
namespace {

// Abseil's own flags (--flagfile, --fromenv, --help, ...) are defined in absl/flags/.
bool IsAbseilFlag(const absl::CommandLineFlag& flag) {
  return absl::StrContains(flag.Filename(), "absl/");
}

std::string TypeOf(const absl::CommandLineFlag& flag) {
  if (flag.IsOfType<bool>()) return "bool";
  if (flag.IsOfType<int32_t>()) return "int32";
  if (flag.IsOfType<int64_t>()) return "int64";
  if (flag.IsOfType<uint64_t>()) return "uint64";
  if (flag.IsOfType<uint32_t>()) return "uint32";
  if (flag.IsOfType<double>()) return "double";
  if (flag.IsOfType<float>()) return "float";
  if (flag.IsOfType<std::string>()) return "string";
  if (flag.IsOfType<absl::Duration>()) return "duration";
  return "value";
}

// Help text wrapped at 90 columns, each line indented by 6.
void AppendWrapped(absl::string_view text, std::string* out) {
  std::string line = "     ";
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    if (line.size() + 1 + word.size() > 90 && line.size() > 6) {
      absl::StrAppend(out, line, "\n");
      line = "     ";
    }
    absl::StrAppend(&line, " ", word);
  }
  if (line.size() > 5) absl::StrAppend(out, line, "\n");
}

// glog's flags as gflags knows them (gflags' own --help, --flagfile, ... left out).
std::vector<gflags::CommandLineFlagInfo> GlogFlags() {
  std::vector<gflags::CommandLineFlagInfo> all;
  gflags::GetAllFlags(&all);
  std::vector<gflags::CommandLineFlagInfo> glog;
  for (gflags::CommandLineFlagInfo& info : all) {
    if (!absl::StrContains(info.filename, "gflags")) glog.push_back(std::move(info));
  }
  std::sort(glog.begin(), glog.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return glog;
}

bool IsGlogFlag(const std::string& name, bool* is_bool) {
  gflags::CommandLineFlagInfo info;
  if (!gflags::GetCommandLineFlagInfo(name.c_str(), &info)) return false;
  if (absl::StrContains(info.filename, "gflags")) return false;
  *is_bool = info.type == "bool";
  return true;
}

}  // namespace

std::string EnvNameForFlag(const std::string& flag_name) {
  std::string env = "PS_";
  for (char c : flag_name) env += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
}

std::vector<absl::CommandLineFlag*> ProgramFlags() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsAbseilFlag(*flag) && !flag->IsRetired()) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  return flags;
}

absl::Status SetFlagsFromEnv(const std::vector<std::string>& flag_names) {
  for (const std::string& name : flag_names) {
    const std::string env = EnvNameForFlag(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) return absl::InternalError(absl::StrCat("no flag --", name));
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", env, "='", value, "': ", error));
    }
  }
  return absl::OkStatus();
}

absl::Status SetFlagsFromEnv() {
  std::vector<std::string> names;
  for (const absl::CommandLineFlag* flag : ProgramFlags()) names.emplace_back(flag->Name());
  return SetFlagsFromEnv(names);
}

std::string FlagsHelp(absl::string_view usage, bool with_glog) {
  std::string out = absl::StrCat(
      absl::StripTrailingAsciiWhitespace(usage),
      "\n\nEvery flag may also be set in the environment as PS_<FLAG> (--servers as "
      "PS_SERVERS);\nthe command line wins.\n\nFlags:\n");
  for (const absl::CommandLineFlag* flag : ProgramFlags()) {
    const std::string name(flag->Name());
    absl::StrAppend(&out, "  --", name, "=", flag->DefaultValue(), "  (", TypeOf(*flag), "; ",
                    EnvNameForFlag(name), ")\n");
    AppendWrapped(flag->Help(), &out);
  }
  if (!with_glog) return out;
  absl::StrAppend(&out,
                  "\nLogging (glog's flags; each also as GLOG_<flag> in the environment, e.g. "
                  "GLOG_v=2):\n");
  for (const gflags::CommandLineFlagInfo& info : GlogFlags()) {
    absl::StrAppend(&out, "  --", info.name, "=", info.default_value, "  (", info.type, ")\n");
    AppendWrapped(info.description, &out);
  }
  return out;
}

bool SplitFlagArgument(absl::string_view arg, std::string* name,
                       std::optional<std::string>* value) {
  if (arg.size() < 2 || arg[0] != '-' || arg == "--") return false;
  absl::string_view body = arg.substr(absl::StartsWith(arg, "--") ? 2 : 1);
  const size_t eq = body.find('=');
  *name = std::string(body.substr(0, eq));
  if (eq == absl::string_view::npos) {
    value->reset();
  } else {
    *value = std::string(body.substr(eq + 1));
  }
  return true;
}

absl::Status TakeGlogFlags(int* argc, char** argv, std::vector<std::string>* taken) {
  int kept = 1;
  bool flags_done = false;
  for (int i = 1; i < *argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") flags_done = true;
    std::string name;
    std::optional<std::string> value;
    if (flags_done || !SplitFlagArgument(arg, &name, &value) ||
        absl::FindCommandLineFlag(name) != nullptr) {
      argv[kept++] = argv[i];
      continue;
    }
    bool is_bool = false;
    if (!IsGlogFlag(name, &is_bool)) {
      if (value.has_value() || !absl::StartsWith(name, "no") ||
          !IsGlogFlag(name.substr(2), &is_bool) || !is_bool) {
        argv[kept++] = argv[i];  // absl::ParseCommandLine names it as unknown
        continue;
      }
      name = name.substr(2);
      value = "false";
    }
    if (!value.has_value()) {
      if (is_bool) {
        value = "true";
      } else if (i + 1 < *argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (gflags::SetCommandLineOption(name.c_str(), value->c_str()).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, "=", *value, ": not a valid value for glog's flag"));
    }
    if (taken != nullptr) taken->push_back(name);
  }
  *argc = kept;
  argv[kept] = nullptr;
  return absl::OkStatus();
}

void ParseFlagsOrExit(int argc, char** argv, absl::string_view program, absl::string_view usage) {
  absl::SetProgramUsageMessage(usage);  // for Abseil's own --helpon=, --helpmatch=, ...
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "-h" || arg == "--help" || arg == "-help" || arg == "--helpfull" ||
        arg == "--helpshort") {
      std::fputs(FlagsHelp(usage, /*with_glog=*/true).c_str(), stdout);
      std::exit(0);
    }
  }
  if (std::getenv("GLOG_logtostderr") == nullptr) FLAGS_logtostderr = true;
  std::vector<std::string> glog_flags;
  absl::Status s = SetFlagsFromEnv();
  if (s.ok()) s = TakeGlogFlags(&argc, argv, &glog_flags);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s (see --help)\n", std::string(program).c_str(),
                 std::string(s.message()).c_str());
    std::exit(2);
  }
  // --log_dir without --logtostderr: the logs go to files, as asked.
  const auto given = [&](const char* name) {
    return std::find(glog_flags.begin(), glog_flags.end(), name) != glog_flags.end();
  };
  if ((given("log_dir") || std::getenv("GLOG_log_dir") != nullptr) && !given("logtostderr") &&
      std::getenv("GLOG_logtostderr") == nullptr) {
    FLAGS_logtostderr = false;
  }
  absl::ParseCommandLine(argc, argv);
}

}  // namespace ps
