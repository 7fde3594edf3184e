// A client's wire formats and gradient residuals.
#include "worker/client/value_coding.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/value_format.h"

namespace ps {

v1::ValueFormat WireFormats::Of(const std::string& table) const {
  auto it = tables.find(table);
  return it == tables.end() ? all : it->second;
}

std::string WireFormats::ToString() const {
  if (tables.empty()) return ValueFormatName(all);
  std::vector<std::string> parts;
  for (const auto& [table, format] : tables) {
    parts.push_back(absl::StrCat(table, "=", ValueFormatName(format)));
  }
  std::sort(parts.begin(), parts.end());
  parts.push_back(absl::StrCat("*=", ValueFormatName(all)));
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<WireFormats> ParseWireFormats(absl::string_view spec) {
  WireFormats formats;
  if (spec.find('=') == absl::string_view::npos) {
    absl::StatusOr<v1::ValueFormat> f = ParseValueFormat(absl::StripAsciiWhitespace(spec));
    if (!f.ok())
      return absl::InvalidArgumentError(absl::StrCat("--wire_format: ", f.status().message()));
    formats.all = *f;
    return formats;
  }
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(part, absl::MaxSplits('=', 1));
    const absl::string_view table = absl::StripAsciiWhitespace(kv.first);
    absl::StatusOr<v1::ValueFormat> f = ParseValueFormat(absl::StripAsciiWhitespace(kv.second));
    if (table.empty() || !f.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--wire_format: '", part, "' is not table=format (format one of float32, bf16, fp16)"));
    }
    if (table == "*") {
      formats.all = *f;
    } else if (!formats.tables.emplace(std::string(table), *f).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("--wire_format: table '", table, "' is named twice"));
    }
  }
  return formats;
}

void GradientCoder::Encode(const std::string& table, const float* tensor, int64_t num_elements,
                           int64_t begin, int64_t length, v1::ValueFormat format, char* out) {
  if (format == v1::FLOAT32 || !formats_.error_feedback) {
    EncodeValues(format, tensor + begin, length, out);
    return;
  }
  // One lock for the coding: two pushes of one table at once must not interleave
  // their residuals (the trainer never does that; tools might).
  absl::MutexLock lock(&mu_);
  std::vector<float>& residual = residual_[table];
  if (static_cast<int64_t>(residual.size()) != num_elements) residual.assign(num_elements, 0.0f);
  EncodeValuesWithFeedback(format, tensor + begin, residual.data() + begin, length, out);
}

std::vector<float> GradientCoder::Residual(const std::string& table) const {
  absl::MutexLock lock(&mu_);
  auto it = residual_.find(table);
  return it == residual_.end() ? std::vector<float>() : it->second;
}

}  // namespace ps
