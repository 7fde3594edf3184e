#include "worker/train/init_from.h"

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/npz.h"
#include "glog/logging.h"

namespace ps {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// The array's values as float32, in the array's own memory (no copy of the model): <f4
// as read, <f8 narrowed in place (float i is written at byte 4i, after double i at 8i
// was read).
absl::StatusOr<float*> Floats(const std::string& path, NpyArray* a) {
  const size_t n = static_cast<size_t>(a->elements());
  if (a->dtype == "<f8") {
    for (size_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, a->data.data() + i * 8, 8);
      const float f = static_cast<float>(d);
      std::memcpy(a->data.data() + i * 4, &f, 4);
    }
    a->data.resize(n * 4);
    a->dtype = "<f4";
  } else if (a->dtype != "<f4") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": array '", a->name, "' is ", a->dtype,
                     "; a table's values must be float32 or float64"));
  }
  return reinterpret_cast<float*>(a->data.data());  // new'd or in-object: aligned for float
}

absl::StatusOr<std::vector<int64_t>> Keys(const std::string& path, const NpyArray& a) {
  if (a.dtype != "<i8") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": array '", a.name, "' is ", a.dtype, "; keys must be int64"));
  }
  if (a.shape.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": array '", a.name, "' has shape ",
                                                   ShapeText(a.shape), "; keys are 1-D"));
  }
  std::vector<int64_t> keys(static_cast<size_t>(a.elements()));
  std::memcpy(keys.data(), a.data.data(), keys.size() * 8);
  return keys;
}

// The file's arrays by name; each is taken once, and what is left names no table.
class FileArrays {
 public:
  FileArrays(const std::string& path, std::vector<NpyArray>* arrays) : path_(path) {
    for (NpyArray& a : *arrays) by_name_[a.name] = &a;
  }

  absl::StatusOr<NpyArray*> Take(const std::string& name) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
      std::vector<std::string> names;
      for (const auto& [n, a] : by_name_) names.push_back(n);
      return absl::InvalidArgumentError(
          absl::StrCat(path_, " has no array '", name, "' for the model's table; it holds: ",
                       names.empty() ? "nothing" : absl::StrJoin(names, ", ")));
    }
    NpyArray* a = it->second;
    by_name_.erase(it);
    return a;
  }

  void WarnAboutTheRest() const {
    for (const auto& [name, a] : by_name_) {
      LOG(WARNING) << path_ << ": array '" << name << "' names no table of this model; left alone";
    }
  }

 private:
  const std::string path_;
  std::map<std::string, NpyArray*> by_name_;
};

// A dense table's values from the file (in the file's memory), checked against its spec.
absl::StatusOr<DenseTensor> DenseValues(const std::string& path, const v1::TableSpec& spec,
                                        FileArrays* file) {
  absl::StatusOr<NpyArray*> a = file->Take(spec.name());
  if (!a.ok()) return a.status();
  const std::vector<int64_t> want(spec.shape().begin(), spec.shape().end());
  if ((*a)->shape != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": array '", spec.name(), "' has shape ", ShapeText((*a)->shape),
        " but the table is ", ShapeText(want), " (do the model flags, e.g. --layers, match?)"));
  }
  absl::StatusOr<float*> values = Floats(path, *a);
  if (!values.ok()) return values.status();
  return DenseTensor{spec.name(), (*a)->elements(), *values};
}

struct SparseValues {
  const v1::TableSpec* spec;
  std::vector<int64_t> keys;
  const float* rows;  // in the file's memory
  int64_t values;
};

// A sparse table's keys and rows from the file, checked against its spec.
absl::StatusOr<SparseValues> SparseValuesOf(const std::string& path, const v1::TableSpec& spec,
                                            FileArrays* file) {
  absl::StatusOr<NpyArray*> k = file->Take(spec.name() + "/keys");
  if (!k.ok()) return k.status();
  absl::StatusOr<NpyArray*> r = file->Take(spec.name() + "/values");
  if (!r.ok()) return r.status();
  absl::StatusOr<std::vector<int64_t>> keys = Keys(path, **k);
  if (!keys.ok()) return keys.status();
  const std::vector<int64_t> want = {static_cast<int64_t>(keys->size()), spec.row_width()};
  if ((*r)->shape != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": array '", (*r)->name, "' has shape ", ShapeText((*r)->shape), "; ",
                     keys->size(), " keys of table '", spec.name(), "' need ", ShapeText(want)));
  }
  absl::StatusOr<float*> rows = Floats(path, *r);
  if (!rows.ok()) return rows.status();
  return SparseValues{&spec, *std::move(keys), *rows, (*r)->elements()};
}

}  // namespace

absl::StatusOr<InitFromResult> InitTablesFromFile(const std::string& path,
                                                  const std::vector<v1::TableSpec>& specs,
                                                  PsClient* client) {
  absl::StatusOr<std::vector<NpyArray>> arrays = ReadNpz(path);
  if (!arrays.ok()) return arrays.status();
  FileArrays file(path, &*arrays);
  // Every table is checked before anything is sent.
  InitFromResult result;
  std::vector<DenseTensor> dense;
  std::vector<SparseValues> sparse;
  for (const v1::TableSpec& spec : specs) {
    if (spec.kind() == v1::SPARSE) {
      absl::StatusOr<SparseValues> v = SparseValuesOf(path, spec, &file);
      if (!v.ok()) return v.status();
      result.values += v->values;
      sparse.push_back(*std::move(v));
    } else {
      absl::StatusOr<DenseTensor> v = DenseValues(path, spec, &file);
      if (!v.ok()) return v.status();
      result.values += v->num_elements;
      dense.push_back(*std::move(v));
    }
    ++result.tables;
  }
  if (!dense.empty()) {
    if (absl::Status s = client->Assign(dense); !s.ok()) return s;
  }
  for (const SparseValues& v : sparse) {
    if (v.keys.empty()) continue;
    absl::Status s =
        client->AssignSparse(v.spec->name(), v.keys, static_cast<int>(v.spec->row_width()), v.rows);
    if (!s.ok()) return s;
  }
  file.WarnAboutTheRest();
  return result;
}

}  // namespace ps
