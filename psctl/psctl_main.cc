// psctl: the operator's client for a running job. Asks any one ps_server (the first in
// --servers that answers) for the whole job's status through the Admin service.
//
// Exit status: 0 ok; 1 when no server could be asked, a shard is unreachable, or a
// command failed; 2 for usage errors.
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/channel_credentials.h"
#include "common/client_security_flags.h"
#include "common/flags_env.h"
#include "psctl/admin_client.h"
#include "psctl/export.h"
#include "psctl/format.h"

ABSL_FLAG(std::string, servers, "",
          "Comma-separated host:port of the shards (any one answers for all); or PS_SERVERS.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(3), "Deadline of each call to a server.");
ABSL_FLAG(std::string, token_file, "",
          "The operator's (or a monitor's) token, in a file; unset: $PS_TOKEN, else none.");
ABSL_FLAG(bool, json, false, "Print the answer as JSON (the proto's JSON mapping).");
ABSL_FLAG(absl::Duration, interval, absl::Seconds(1), "watch: time between updates (>= 100ms).");
ABSL_FLAG(int64_t, count, 0, "watch: stop after this many updates; 0 runs until interrupted.");
ABSL_FLAG(int64_t, at_version, 0,
          "checkpoint: capture sync tables at this version; 0 picks the newest any shard has.");
ABSL_FLAG(absl::Duration, checkpoint_timeout, absl::Minutes(2),
          "checkpoint: how long to wait for every shard to write.");
ABSL_FLAG(std::string, out, "",
          "export: the .npz file to write (numpy.load, docs/model_files.md).");

namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

constexpr char kUsageText[] = R"(usage: psctl [flags] <command>

commands:
  status      shards, tables and workers of the whole job
  tables      every table on every shard
  workers     every worker as the shards last heard from it
  watch       status redrawn every --interval (--count N stops after N updates)
  checkpoint  every shard writes a checkpoint, sync tables at one version
  export      every table into one .npz file (--out=FILE) that numpy and PyTorch load
)";

// Parses --name=value, --name value, --bool and --nobool anywhere on the command line
// and returns the other arguments. Unlike absl::ParseCommandLine it reports errors
// instead of exiting, so that usage errors get exit status 2.
absl::StatusOr<std::vector<std::string>> ParseArgs(int argc, char** argv, bool* help) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) positional.push_back(argv[i]);
      break;
    }
    std::string name;
    std::optional<std::string> value;
    if (!ps::SplitFlagArgument(arg, &name, &value)) {
      positional.emplace_back(arg);
      continue;
    }
    if ((name == "help" || name == "h") && !value.has_value()) {
      *help = true;
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !value.has_value()) {
      flag = absl::FindCommandLineFlag(name.substr(2));
      if (flag != nullptr && flag->IsOfType<bool>()) {
        value = "false";
        name = name.substr(2);
      } else {
        flag = nullptr;
      }
    }
    if (flag == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (!value.has_value()) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    std::string error;
    if (!flag->ParseFrom(*value, &error)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, "=", *value, ": ", error));
    }
  }
  return positional;
}

// Prints each line of `message` as "psctl: <line>" on stderr, after what stdout holds.
void PrintError(absl::string_view message) {
  std::cout.flush();
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    std::cerr << "psctl: " << line << "\n";
  }
}

std::string ToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

enum class View { kStatus, kTables, kWorkers };

int ShowStatus(ps::psctl::AdminClient& client, View view, bool json) {
  absl::StatusOr<ps::v1::ClusterStatusResponse> cluster = client.ClusterStatus();
  if (!cluster.ok()) {
    PrintError(cluster.status().message());
    return kFailed;
  }
  if (json) {
    std::cout << ToJson(*cluster, /*pretty=*/true);
  } else if (view == View::kTables) {
    std::cout << ps::psctl::FormatTables(*cluster);
  } else if (view == View::kWorkers) {
    std::cout << ps::psctl::FormatWorkers(*cluster);
  } else {
    std::cout << ps::psctl::FormatStatus(*cluster);
  }
  const std::vector<std::string> errors = ps::psctl::ShardErrors(*cluster);
  for (const std::string& e : errors) PrintError(e);
  return errors.empty() ? kOk : kFailed;
}

int Watch(ps::psctl::AdminClient& client, bool json) {
  ps::v1::WatchRequest request;
  request.set_interval_ms(absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_interval)));
  request.set_max_updates(absl::GetFlag(FLAGS_count));
  const bool tty = isatty(STDOUT_FILENO) == 1;
  int64_t updates = 0;
  std::vector<std::string> errors;
  const absl::Status s = client.Watch(request, [&](const ps::v1::ClusterStatusResponse& c) {
    errors = ps::psctl::ShardErrors(c);
    if (json) {
      std::cout << ToJson(c, /*pretty=*/false) << "\n";
    } else {
      if (tty) {
        std::cout << "\033[H\033[2J";  // cursor home, clear screen: redraw in place
      } else if (updates > 0) {
        std::cout << "----\n";
      }
      std::cout << ps::psctl::FormatStatus(c);
      for (const std::string& e : errors) std::cout << "! " << e << "\n";
    }
    std::cout.flush();
    ++updates;
  });
  if (!s.ok()) {
    PrintError(s.message());
    return kFailed;
  }
  for (const std::string& e : errors) PrintError(e);
  return errors.empty() ? kOk : kFailed;
}

int Checkpoint(ps::psctl::AdminClient& client, bool json) {
  ps::v1::CheckpointRequest request;
  request.set_all_shards(true);
  request.set_at_version(absl::GetFlag(FLAGS_at_version));
  absl::StatusOr<ps::v1::CheckpointResponse> response =
      client.Checkpoint(request, absl::GetFlag(FLAGS_checkpoint_timeout));
  if (!response.ok()) {
    PrintError(absl::StrCat("checkpoint failed: ", absl::StatusCodeToString(response.status().code()),
                            ": ", response.status().message()));
    return kFailed;
  }
  std::cout << (json ? ToJson(*response, /*pretty=*/true) : ps::psctl::FormatCheckpoint(*response));
  return kOk;
}

int Export(ps::psctl::AdminClient& client, const ps::ChannelCredentials& credentials) {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    PrintError("export needs --out=FILE (an .npz file to write)");
    return kUsage;
  }
  absl::StatusOr<ps::v1::ClusterStatusResponse> cluster = client.ClusterStatus();
  if (!cluster.ok()) {
    PrintError(cluster.status().message());
    return kFailed;
  }
  absl::StatusOr<std::vector<ps::psctl::ExportedTable>> tables = ps::psctl::ExportModel(
      *cluster, credentials, absl::GetFlag(FLAGS_timeout), out,
      [](const std::string& line) { std::cout << "  " << line << "\n" << std::flush; });
  if (!tables.ok()) {
    PrintError(absl::StrCat("export failed: ", absl::StatusCodeToString(tables.status().code()),
                            ": ", tables.status().message()));
    return kFailed;
  }
  int64_t values = 0;
  bool moved = false;
  for (const ps::psctl::ExportedTable& t : *tables) {
    values += t.values;
    moved |= t.min_version != t.max_version;
  }
  std::cout << "wrote " << out << ": " << tables->size() << " tables, " << values << " values\n";
  if (moved) {
    PrintError("the job trained during the export, so a table's parts come from different "
               "versions; export when the workers are done (or stopped) for one model");
  }
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (absl::Status s = ps::SetFlagsFromEnv(); !s.ok()) {
    PrintError(s.message());
    return kUsage;
  }
  bool help = false;
  absl::StatusOr<std::vector<std::string>> args = ParseArgs(argc, argv, &help);
  if (help) {
    std::cout << ps::FlagsHelp(kUsageText, /*with_glog=*/false);
    return kOk;
  }
  if (!args.ok()) {
    PrintError(args.status().message());
    std::cerr << kUsageText;
    return kUsage;
  }
  if (args->size() != 1) {
    PrintError(args->empty() ? "no command given" : absl::StrCat("one command expected, got ", args->size()));
    std::cerr << kUsageText;
    return kUsage;
  }
  const std::string& command = (*args)[0];
  std::vector<std::string> servers =
      absl::StrSplit(absl::GetFlag(FLAGS_servers), ',', absl::SkipWhitespace());
  if (servers.empty()) {
    PrintError("no servers: pass --servers=host:port,... or set PS_SERVERS");
    return kUsage;
  }
  if (absl::GetFlag(FLAGS_timeout) <= absl::ZeroDuration() || absl::GetFlag(FLAGS_count) < 0) {
    PrintError("--timeout must be positive and --count not negative");
    return kUsage;
  }
  absl::StatusOr<std::string> token = ps::LoadToken(absl::GetFlag(FLAGS_token_file));
  if (!token.ok()) {
    PrintError(token.status().message());
    return kUsage;
  }
  ps::ChannelCredentials credentials = ps::TlsCredentialsFromFlags();
  credentials.token = *token;
  if (absl::Status s = ps::CheckClientSecurityFlags(servers); !s.ok()) {
    PrintError(s.message());
    return kUsage;
  }
  ps::psctl::AdminClient client(std::move(servers), absl::GetFlag(FLAGS_timeout), credentials);
  const bool json = absl::GetFlag(FLAGS_json);
  if (command == "status") return ShowStatus(client, View::kStatus, json);
  if (command == "tables") return ShowStatus(client, View::kTables, json);
  if (command == "workers") return ShowStatus(client, View::kWorkers, json);
  if (command == "watch") return Watch(client, json);
  if (command == "checkpoint") return Checkpoint(client, json);
  if (command == "export") return Export(client, credentials);
  PrintError(absl::StrCat("unknown command '", command, "'"));
  std::cerr << kUsageText;
  return kUsage;
}
