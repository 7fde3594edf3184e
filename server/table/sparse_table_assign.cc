// SparseTable's given values (ps_worker --init_from) and row listing (psctl export), see
// docs/model_files.md.
#include <algorithm>
#include <cstring>

#include "server/table/dense_table.h"
#include "server/table/sparse_table.h"

namespace ps {

absl::Status SparseTable::CheckUntrained() const {
  if (version_ == 0 && pushes_ == 0) return absl::OkStatus();
  return TrainedError(name(), version_, pushes_);
}

void SparseTable::Assign(const v1::SparseRows& rows) {
  const size_t row_bytes = static_cast<size_t>(width_) * 4;
  for (int i = 0; i < rows.keys_size(); ++i) {
    std::memcpy(Row(FindOrCreate(rows.keys(i))), rows.values().data() + i * row_bytes, row_bytes);
  }
}

int64_t SparseTable::ListRows(int64_t start, int64_t max_rows, v1::SparseRows* out) const {
  out->Clear();
  out->set_table(name());
  out->set_version(version_);
  const int64_t begin = std::clamp<int64_t>(start, 0, num_rows_);
  const int64_t n = std::min(std::max<int64_t>(max_rows, 0), num_rows_ - begin);
  const size_t row_bytes = static_cast<size_t>(width_) * 4;
  std::string* values = out->mutable_values();
  values->resize(static_cast<size_t>(n) * row_bytes);
  out->mutable_keys()->Reserve(static_cast<int>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t row = static_cast<uint32_t>(begin + i);
    out->add_keys(Key(row));
    std::memcpy(values->data() + i * row_bytes, Row(row), row_bytes);
  }
  return n;
}

}  // namespace ps
