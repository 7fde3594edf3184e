#include "common/input_checks.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ps {
namespace {

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
         c == ':' || c == '/' || c == '-';
}

bool IsPrintable(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x20 && u < 0x7f;
}

}  // namespace

absl::Status CheckTableName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("table name is empty");
  if (name.size() > kMaxTableNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "table name '", Printable(name, 40), "' is ", name.size(),
        " characters long; the limit is ", kMaxTableNameLength));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "table name '", Printable(name), "' has '", Printable(name.substr(i, 1)),
          "' at position ", i, "; names use letters, digits and _ . : / -"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckLabel(absl::string_view what, absl::string_view value) {
  if (value.size() > kMaxLabelLength) {
    return absl::InvalidArgumentError(absl::StrCat(what, " '", Printable(value, 40), "' is ",
                                                   value.size(), " characters long; the limit is ",
                                                   kMaxLabelLength));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (!IsPrintable(value[i])) {
      return absl::InvalidArgumentError(absl::StrCat(what, " '", Printable(value),
                                                     "' has a control or non-ASCII byte at position ",
                                                     i));
    }
  }
  return absl::OkStatus();
}

std::string Printable(absl::string_view s, size_t max) {
  const bool cut = s.size() > max;
  std::string out;
  for (char c : cut ? s.substr(0, max) : s) {
    switch (c) {
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\\': out += "\\\\"; break;
      default:
        if (IsPrintable(c)) {
          out += c;
        } else {
          absl::StrAppend(&out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        }
    }
  }
  if (cut) absl::StrAppend(&out, "... (", s.size(), " bytes)");
  return out;
}

}  // namespace ps
