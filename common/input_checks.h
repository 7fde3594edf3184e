// Checks for the strings clients send. Table names, hosts and device labels are bounded
// and printable, so a shard can store, compare and log them safely; Printable() escapes
// whatever else ends up in a log line or an error message (an unknown table's name, say).
#ifndef PS_COMMON_INPUT_CHECKS_H_
#define PS_COMMON_INPUT_CHECKS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

inline constexpr size_t kMaxTableNameLength = 128;
inline constexpr size_t kMaxLabelLength = 253;  // a DNS name's limit

// A table name: 1 to kMaxTableNameLength characters from [A-Za-z0-9_.:/-]. INVALID_ARGUMENT
// names the first offending character (escaped) and its position.
absl::Status CheckTableName(absl::string_view name);
// A host or device label: at most kMaxLabelLength printable ASCII characters. `what` names
// the field in the error.
absl::Status CheckLabel(absl::string_view what, absl::string_view value);
// `s` with every byte outside printable ASCII escaped C-style (\n, \x1b, ...) and cut to
// about `max` characters ("..." and the full length appended), for logs and messages.
std::string Printable(absl::string_view s, size_t max = 160);

}  // namespace ps

#endif  // PS_COMMON_INPUT_CHECKS_H_
