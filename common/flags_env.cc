#include "common/flags_env.h"

#include <cctype>
#include <cstdlib>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"

namespace ps {

std::string EnvNameForFlag(const std::string& flag_name) {
  std::string env = "PS_";
  for (char c : flag_name) env += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
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

}  // namespace ps
