// .npz files, numpy's archive of arrays (numpy.savez / numpy.load): a zip of members
// "<name>.npy", each an NPY header (magic, version, a Python dict literal with descr,
// fortran_order and shape) then the array's bytes in C order. The container is libzip's;
// the NPY part is written and parsed here. Model files are described in
// docs/model_files.md.
//
// Thread-compatible functions.
#ifndef PS_COMMON_NPZ_H_
#define PS_COMMON_NPZ_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

// One array: `dtype` is numpy's type string ("<f4" float32, "<i8" int64, ...), `data`
// the elements' little-endian bytes in C (row-major) order.
struct NpyArray {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;

  // Product of the shape (1 for a 0-d array).
  int64_t elements() const;
};

// The NPY header of an array of `dtype` and `shape` (version 1.0, or 2.0 past 64 KiB of
// header), padded so the data starts 64-byte aligned, as numpy writes it.
std::string NpyHeader(absl::string_view dtype, const std::vector<int64_t>& shape);
// Parses one .npy member. INVALID_ARGUMENT naming `what` and the problem (bad magic,
// unknown version, a header it cannot read, Fortran order, a data size that disagrees
// with the shape). `out->name` is left as it was.
absl::Status ParseNpy(absl::string_view bytes, absl::string_view what, NpyArray* out);
// The same without the copy: checks everything, sets dtype and shape, and tells where the
// data starts in `bytes`.
absl::Status ParseNpyHeader(absl::string_view bytes, absl::string_view what, NpyArray* out,
                            size_t* data_at);
// Bytes per element of a dtype this code handles: "<f4", "<f8", "<i4", "<i8", "<u8",
// "|u1"; 0 for any other.
int DtypeBytes(absl::string_view dtype);

// A plain (not .npy) member of the archive, e.g. a JSON description.
struct NpzMember {
  std::string name;
  std::string data;
};

// Writes `arrays` as "<name>.npy" members and `extra` as themselves, uncompressed, to a
// temporary file beside `path` that replaces `path` only when complete (a failed write
// leaves what was there). INVALID_ARGUMENT for an empty or repeated name or data that
// does not match its shape; otherwise errors name the path and libzip's reason.
absl::Status WriteNpz(const std::string& path, const std::vector<NpyArray>& arrays,
                      const std::vector<NpzMember>& extra = {});

// Every member of an .npz: arrays (".npy" members, the suffix taken off the name, in
// archive order) and the plain members in `extra` (when not null). Errors name the path
// and the member.
absl::StatusOr<std::vector<NpyArray>> ReadNpz(const std::string& path,
                                              std::vector<NpzMember>* extra = nullptr);

}  // namespace ps

#endif  // PS_COMMON_NPZ_H_
