#include "common/npz.h"

#include <sys/stat.h>
#include <zip.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace ps {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr char kSuffix[] = ".npy";

std::string ZipError(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

// The value of 'key' in an NPY header's dict literal, up to the next top-level ',' or '}'
// (a shape's tuple taken whole).
absl::StatusOr<std::string> HeaderValue(absl::string_view header, absl::string_view key) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t at = header.find(quoted);
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("its header has no ", quoted));
  }
  at = header.find(':', at + quoted.size());
  if (at == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("its header has no value for ", quoted));
  }
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(header.substr(at + 1));
  size_t end = 0;
  if (!rest.empty() && rest[0] == '(') {
    end = rest.find(')');
    if (end == absl::string_view::npos) {
      return absl::InvalidArgumentError("its header's shape has no ')'");
    }
    ++end;
  } else {
    end = rest.find_first_of(",}");
    if (end == absl::string_view::npos) end = rest.size();
  }
  return std::string(absl::StripAsciiWhitespace(rest.substr(0, end)));
}

absl::StatusOr<std::vector<int64_t>> ParseShape(absl::string_view tuple) {
  // "(784, 256)", "(10,)", "()"
  tuple.remove_prefix(1);
  tuple.remove_suffix(1);
  std::vector<int64_t> shape;
  for (absl::string_view part : absl::StrSplit(tuple, ',', absl::SkipWhitespace())) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d < 0) {
      return absl::InvalidArgumentError(absl::StrCat("its shape has a bad dimension '", part, "'"));
    }
    shape.push_back(d);
  }
  return shape;
}

}  // namespace

int64_t NpyArray::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int DtypeBytes(absl::string_view dtype) {
  if (dtype == "<f4" || dtype == "<i4") return 4;
  if (dtype == "<f8" || dtype == "<i8" || dtype == "<u8") return 8;
  if (dtype == "|u1") return 1;
  return 0;
}

std::string NpyHeader(absl::string_view dtype, const std::vector<int64_t>& shape) {
  std::string dims = absl::StrJoin(shape, ", ");
  if (shape.size() == 1) dims += ",";
  std::string dict =
      absl::StrCat("{'descr': '", dtype, "', 'fortran_order': False, 'shape': (", dims, "), }");
  // magic, 2 version bytes, the length (2 bytes in 1.0, 4 in 2.0), dict, spaces, '\n'.
  const bool v2 = dict.size() + 1 + 10 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  const size_t total = (prefix + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(kMagic, kMagicSize);
  out += static_cast<char>(v2 ? 2 : 1);
  out += '\0';
  const uint32_t len = static_cast<uint32_t>(dict.size());
  for (size_t i = 0; i < (v2 ? 4u : 2u); ++i) out += static_cast<char>((len >> (8 * i)) & 0xff);
  return out + dict;
}

absl::Status ParseNpyHeader(absl::string_view bytes, absl::string_view what, NpyArray* out,
                            size_t* data_at_out) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a readable .npy array: ", why));
  };
  if (bytes.size() < 10 || bytes.substr(0, kMagicSize) != absl::string_view(kMagic, kMagicSize)) {
    return bad("it does not start with numpy's magic bytes");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3) return bad(absl::StrCat("NPY version ", major, " is unknown"));
  const size_t len_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_bytes) return bad("it ends inside its header");
  size_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) {
    header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  }
  const size_t data_at = 8 + len_bytes + header_len;
  if (data_at > bytes.size()) return bad("it ends inside its header");
  const absl::string_view header = bytes.substr(8 + len_bytes, header_len);
  absl::StatusOr<std::string> descr = HeaderValue(header, "descr");
  absl::StatusOr<std::string> fortran = HeaderValue(header, "fortran_order");
  absl::StatusOr<std::string> shape = HeaderValue(header, "shape");
  for (const auto* v : {&descr, &fortran, &shape}) {
    if (!v->ok()) return bad(v->status().message());
  }
  if (descr->size() < 2 || ((*descr)[0] != '\'' && (*descr)[0] != '"')) {
    return bad(absl::StrCat("its descr ", *descr, " is not a plain type string"));
  }
  out->dtype = descr->substr(1, descr->size() - 2);
  if (*fortran != "False") return bad("it is in Fortran order (save it with np.ascontiguousarray)");
  if (shape->empty() || (*shape)[0] != '(')
    return bad(absl::StrCat("its shape ", *shape, " is not a tuple"));
  absl::StatusOr<std::vector<int64_t>> dims = ParseShape(*shape);
  if (!dims.ok()) return bad(dims.status().message());
  out->shape = *std::move(dims);
  const int width = DtypeBytes(out->dtype);
  if (width == 0) {
    return bad(absl::StrCat("its dtype '", out->dtype,
                            "' is not one of <f4, <f8, <i4, <i8, <u8, |u1 (little-endian)"));
  }
  const absl::string_view data = bytes.substr(data_at);
  int64_t n = 1;
  for (int64_t d : out->shape) {
    if (d != 0 && n > (int64_t{1} << 50) / d) return bad("its shape is too large");
    n *= d;
  }
  if (static_cast<int64_t>(data.size()) != n * width) {
    return bad(
        absl::StrCat("its shape needs ", n * width, " bytes of data, it holds ", data.size()));
  }
  *data_at_out = data_at;
  return absl::OkStatus();
}

absl::Status ParseNpy(absl::string_view bytes, absl::string_view what, NpyArray* out) {
  size_t data_at = 0;
  if (absl::Status s = ParseNpyHeader(bytes, what, out, &data_at); !s.ok()) return s;
  out->data.assign(bytes.data() + data_at, bytes.size() - data_at);
  return absl::OkStatus();
}

absl::Status WriteNpz(const std::string& path, const std::vector<NpyArray>& arrays,
                      const std::vector<NpzMember>& extra) {
  absl::flat_hash_set<std::string> names;
  std::vector<std::string> headers;
  headers.reserve(arrays.size());
  for (const NpyArray& a : arrays) {
    if (a.name.empty() || !names.insert(a.name + kSuffix).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("array name '", a.name, "' is empty or repeated"));
    }
    const int width = DtypeBytes(a.dtype);
    if (width == 0 || static_cast<int64_t>(a.data.size()) != a.elements() * width) {
      return absl::InvalidArgumentError(absl::StrCat("array '", a.name, "': ", a.data.size(),
                                                     " bytes do not fit dtype ", a.dtype,
                                                     " and its shape"));
    }
    headers.push_back(NpyHeader(a.dtype, a.shape));
  }
  for (const NpzMember& m : extra) {
    if (m.name.empty() || !names.insert(m.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member name '", m.name, "' is empty or repeated"));
    }
  }
  int code = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (zip == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", path, ": ", ZipError(code)));
  }
  auto fail = [&](absl::string_view what, std::string reason = "") {
    if (reason.empty()) reason = zip_strerror(zip);
    zip_discard(zip);  // leaves `path` as it was
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", what, ": ", reason));
  };
  // Adds a member from fragments that stay alive until zip_close.
  // Adds a member from fragments that stay alive until zip_close; "" or what failed.
  auto add = [&](const std::string& name, std::vector<zip_buffer_fragment_t> parts) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source =
        zip_source_buffer_fragment_create(parts.data(), parts.size(), /*freep=*/0, &error);
    std::string reason = source == nullptr ? zip_error_strerror(&error) : "";
    zip_error_fini(&error);
    if (source == nullptr) return reason;
    const zip_int64_t index = zip_file_add(zip, name.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);
      return std::string(zip_strerror(zip));
    }
    if (zip_set_file_compression(zip, index, ZIP_CM_STORE, 0) != 0)
      return std::string(zip_strerror(zip));
    return std::string();
  };
  for (size_t i = 0; i < arrays.size(); ++i) {
    std::vector<zip_buffer_fragment_t> parts = {
        {reinterpret_cast<zip_uint8_t*>(headers[i].data()), headers[i].size()}};
    if (!arrays[i].data.empty()) {
      parts.push_back({reinterpret_cast<zip_uint8_t*>(const_cast<char*>(arrays[i].data.data())),
                       arrays[i].data.size()});
    }
    if (std::string e = add(arrays[i].name + kSuffix, std::move(parts)); !e.empty()) {
      return fail(arrays[i].name, e);
    }
  }
  for (const NpzMember& m : extra) {
    std::vector<zip_buffer_fragment_t> parts;
    if (!m.data.empty()) {
      parts.push_back(
          {reinterpret_cast<zip_uint8_t*>(const_cast<char*>(m.data.data())), m.data.size()});
    }
    if (std::string e = add(m.name, std::move(parts)); !e.empty()) return fail(m.name, e);
  }
  if (zip_close(zip) != 0) return fail("closing the archive");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NpyArray>> ReadNpz(const std::string& path,
                                              std::vector<NpzMember>* extra) {
  int code = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_RDONLY, &code);
  if (zip == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", ZipError(code)));
  }
  std::unique_ptr<zip_t, int (*)(zip_t*)> closer(zip, zip_close);
  struct stat file_stat;
  if (::stat(path.c_str(), &file_stat) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  const uint64_t file_size = static_cast<uint64_t>(file_stat.st_size);
  std::vector<NpyArray> arrays;
  const zip_int64_t n = zip_get_num_entries(zip, 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
        !(st.valid & ZIP_STAT_NAME)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read ", path, ": member ", i, ": ", zip_strerror(zip)));
    }
    const std::string name = st.name;
    // What a member claims is checked before it is allocated: its compressed bytes lie in
    // the file, a stored member holds what it stores, and deflate expands at most about
    // 1032-fold.
    const bool sized = (st.valid & ZIP_STAT_COMP_SIZE) && (st.valid & ZIP_STAT_COMP_METHOD);
    const bool stored = sized && st.comp_method == ZIP_CM_STORE;
    if (!sized || st.comp_size > file_size || (stored && st.size != st.comp_size) ||
        st.size > 1100 * st.comp_size + 64 || st.size > (uint64_t{1} << 36)) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": member ", name,
                                                     " claims ", st.size,
                                                     " bytes, which its compressed size or the "
                                                     "64 GiB limit does not allow"));
    }
    std::string bytes(st.size, '\0');
    zip_file_t* file = zip_fopen_index(zip, i, 0);
    const zip_int64_t got = file == nullptr ? -1 : zip_fread(file, bytes.data(), st.size);
    const std::string reason = file == nullptr ? zip_strerror(zip) : zip_file_strerror(file);
    if (file != nullptr) zip_fclose(file);
    if (got != static_cast<zip_int64_t>(st.size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read ", path, ": member ", name, ": ", reason));
    }
    if (!absl::EndsWith(name, kSuffix)) {
      if (extra != nullptr) extra->push_back({name, std::move(bytes)});
      continue;
    }
    NpyArray a;
    a.name = name.substr(0, name.size() - (sizeof(kSuffix) - 1));
    size_t data_at = 0;
    if (absl::Status s = ParseNpyHeader(bytes, absl::StrCat(path, ": member ", name), &a, &data_at);
        !s.ok()) {
      return s;
    }
    a.data = std::move(bytes);  // no second copy: the header is cut off in place
    a.data.erase(0, data_at);
    arrays.push_back(std::move(a));
  }
  return arrays;
}

}  // namespace ps
