// The daemons' command lines: every flag a program defines may also be set from the
// environment, so one container image serves every role (`--foo_bar` as PS_FOO_BAR; the
// command line wins); `--help` lists the program's own flags; glog's flags (`--v`,
// `--vmodule`, `--log_dir`, ...) are taken from the same command line.
//
// The list of flags comes from Abseil's flag registry, so a new flag is settable from the
// environment and listed by --help without being named anywhere else.
//
// Not thread-safe: call once from main() before any other thread starts.
#ifndef PS_COMMON_FLAGS_ENV_H_
#define PS_COMMON_FLAGS_ENV_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

// The flags defined by this program's own sources (not by Abseil), sorted by name.
std::vector<absl::CommandLineFlag*> ProgramFlags();

// Sets each program flag from the environment variable PS_<NAME> where that variable is
// set. Returns INVALID_ARGUMENT naming the variable if a value does not parse.
absl::Status SetFlagsFromEnv();

// As above, for the named flags only.
absl::Status SetFlagsFromEnv(const std::vector<std::string>& flag_names);

// Returns the environment variable that carries `flag_name`.
std::string EnvNameForFlag(const std::string& flag_name);

// `usage`, then every program flag (default, type, environment variable, help), then
// glog's flags if `with_glog`.
std::string FlagsHelp(absl::string_view usage, bool with_glog);

// Moves glog's flags out of argv (which keeps argv[0] and every other argument, in
// order) into glog, and appends their names to `taken` (when not null). Returns
// INVALID_ARGUMENT naming a glog flag whose value glog refuses.
absl::Status TakeGlogFlags(int* argc, char** argv, std::vector<std::string>* taken);

// One command-line argument read as a flag: "--name=value" or "-name=value" (value set),
// "--name" or "-name" (value unset). False for "--", "-" and arguments that do not start
// with '-'. TakeGlogFlags and psctl's parser share it.
bool SplitFlagArgument(absl::string_view arg, std::string* name,
                       std::optional<std::string>* value);

// The daemons' start: --help (-h, --helpfull) prints FlagsHelp(usage) on stdout and exits
// 0; then the environment, glog's flags and the command line, in that order. Logs go to
// stderr unless GLOG_logtostderr, --logtostderr or --log_dir (GLOG_log_dir) say otherwise. A bad value
// exits 2 with a message naming the flag or variable.
void ParseFlagsOrExit(int argc, char** argv, absl::string_view program, absl::string_view usage);

}  // namespace ps

#endif  // PS_COMMON_FLAGS_ENV_H_
