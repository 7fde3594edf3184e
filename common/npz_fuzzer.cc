// Fuzzes the .npz reader (common/npz.h), which reads files users bring (ps_worker
// --init_from): an even first byte makes the rest one .npy member for ParseNpy; an odd
// one makes it a whole file for ReadNpz (libzip's archive, then each member's NPY header).
// Either must answer OK or INVALID_ARGUMENT, never crash or allocate what a member only
// claims; an array it accepts holds exactly what its dtype and shape need.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/npz.h"

namespace {

void CheckArray(const ps::NpyArray& a) {
  if (static_cast<int64_t>(a.data.size()) != a.elements() * ps::DtypeBytes(a.dtype)) {
    std::fprintf(stderr, "array '%s' holds %zu bytes for its shape\n", a.name.c_str(),
                 a.data.size());
    std::abort();
  }
}

void CheckCode(const absl::Status& s) {
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) {
    std::fprintf(stderr, "unexpected status: %s\n", s.ToString().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    ps::NpyArray a;
    const absl::Status s = ps::ParseNpy(bytes, "input", &a);
    CheckCode(s);
    if (s.ok()) CheckArray(a);
    return 0;
  }
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path =
      std::string(dir != nullptr ? dir : "/tmp") + "/npz_fuzz_" + std::to_string(getpid());
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  } else {
    return 0;
  }
  std::vector<ps::NpzMember> extra;
  absl::StatusOr<std::vector<ps::NpyArray>> arrays = ps::ReadNpz(path, &extra);
  CheckCode(arrays.status());
  if (arrays.ok()) {
    for (const ps::NpyArray& a : *arrays) CheckArray(a);
  }
  std::remove(path.c_str());
  return 0;
}
