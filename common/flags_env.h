// Lets every daemon take its settings from the environment as well as from flags, so one
// container image serves every role: flag `--foo_bar` may be set as PS_FOO_BAR.
// A flag given on the command line wins over the environment.
//
// Not thread-safe: call once from main() before absl::ParseCommandLine.
#ifndef PS_COMMON_FLAGS_ENV_H_
#define PS_COMMON_FLAGS_ENV_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace ps {

// Sets each named flag from the environment variable PS_<NAME> (upper case) where that
// variable is set. Returns INVALID_ARGUMENT naming the variable if a value does not parse.
absl::Status SetFlagsFromEnv(const std::vector<std::string>& flag_names);

// Returns the environment variable that carries `flag_name`.
std::string EnvNameForFlag(const std::string& flag_name);

}  // namespace ps

#endif  // PS_COMMON_FLAGS_ENV_H_
