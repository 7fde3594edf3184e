#include "worker/data/libsvm.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "worker/data/mnist.h"

namespace ps {
namespace {

absl::Status BadToken(const std::string& name, int64_t line, absl::string_view problem,
                      absl::string_view token) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, ":", line, ": ", problem, " '", token, "'"));
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Splits `line` into whitespace-separated tokens (no allocation beyond `out`).
void Tokenize(absl::string_view line, std::vector<absl::string_view>* out) {
  out->clear();
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && IsSpace(line[i])) ++i;
    const size_t start = i;
    while (i < line.size() && !IsSpace(line[i])) ++i;
    if (i > start) out->push_back(line.substr(start, i - start));
  }
}

}  // namespace

void SparseDataset::Add(float label, const std::vector<int64_t>& example_ids,
                        const std::vector<float>& example_values) {
  labels.push_back(label);
  ids.insert(ids.end(), example_ids.begin(), example_ids.end());
  values.insert(values.end(), example_values.begin(), example_values.end());
  offsets.push_back(static_cast<int64_t>(ids.size()));
}

double SparseDataset::PositiveRate() const {
  if (labels.empty()) return 0;
  double positives = 0;
  for (float y : labels) positives += y;
  return positives / static_cast<double>(labels.size());
}

absl::StatusOr<SparseDataset> ParseLibSvm(absl::string_view text, const std::string& name) {
  SparseDataset data;
  std::vector<absl::string_view> tokens;
  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == absl::string_view::npos) end = text.size();
    absl::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (const size_t hash = line.find('#'); hash != absl::string_view::npos) {
      line = line.substr(0, hash);
    }
    Tokenize(line, &tokens);
    if (tokens.empty()) continue;

    double label = 0;
    if (!absl::SimpleAtod(tokens[0], &label) ||
        (label != 1.0 && label != 0.0 && label != -1.0)) {
      return BadToken(name, line_number, "label must be 0, 1, -1 or +1, got", tokens[0]);
    }
    for (size_t t = 1; t < tokens.size(); ++t) {
      const absl::string_view token = tokens[t];
      const size_t colon = token.find(':');
      if (colon == absl::string_view::npos) {
        return BadToken(name, line_number, "expected index:value, got", token);
      }
      int64_t id = 0;
      if (!absl::SimpleAtoi(token.substr(0, colon), &id)) {
        return BadToken(name, line_number, "feature index is not an int64 in", token);
      }
      if (id < 0) return BadToken(name, line_number, "feature index is negative in", token);
      float value = 0;
      if (!absl::SimpleAtof(token.substr(colon + 1), &value) || !std::isfinite(value)) {
        return BadToken(name, line_number, "feature value is not a finite float in", token);
      }
      data.ids.push_back(id);
      data.values.push_back(value);
    }
    data.labels.push_back(label > 0 ? 1.0f : 0.0f);
    data.offsets.push_back(static_cast<int64_t>(data.ids.size()));
  }
  return data;
}

absl::StatusOr<SparseDataset> ReadLibSvm(const std::string& path) {
  absl::StatusOr<std::string> text = ReadMaybeGzipped(path);
  if (!text.ok()) return text.status();
  return ParseLibSvm(*text, path);
}

std::string FormatLibSvm(const SparseDataset& data) {
  std::string out;
  out.reserve(static_cast<size_t>(data.size()) * 4 + static_cast<size_t>(data.num_entries()) * 12);
  for (int64_t i = 0; i < data.size(); ++i) {
    out += data.labels[i] > 0.5f ? '1' : '0';
    for (int64_t j = data.offsets[i]; j < data.offsets[i + 1]; ++j) {
      // %.9g reads back as the same float.
      absl::StrAppend(&out, " ", data.ids[j], ":",
                      data.values[j] == 1.0f ? std::string("1")
                                             : absl::StrFormat("%.9g", data.values[j]));
    }
    out += '\n';
  }
  return out;
}

absl::Status WriteLibSvm(const SparseDataset& data, const std::string& path) {
  const std::string text = FormatLibSvm(data);
  if (absl::EndsWith(path, ".gz")) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (f == nullptr) {
      return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
    }
    size_t written = 0;
    bool ok = true;
    while (ok && written < text.size()) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(text.size() - written, 1 << 20));
      ok = gzwrite(f, text.data() + written, chunk) == static_cast<int>(chunk);
      written += chunk;
    }
    ok = gzclose(f) == Z_OK && ok;
    if (!ok) return absl::UnavailableError(absl::StrCat("cannot write ", path));
    return absl::OkStatus();
  }
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if ((std::fclose(f) != 0) || !ok) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace ps
