#include "worker/data/mnist.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ps {
namespace {

// Fashion-MNIST training-set pixel statistics (on the [0, 1] scale).
constexpr float kPixelMean = 0.2860f;
constexpr float kPixelStd = 0.3530f;

uint32_t BigEndian32(absl::string_view b, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

absl::StatusOr<std::string> FindAndRead(const std::string& stem) {
  for (const std::string& path : {stem + ".gz", stem}) {
    if (FILE* f = std::fopen(path.c_str(), "rb")) {
      std::fclose(f);
      return ReadMaybeGzipped(path);
    }
  }
  return absl::NotFoundError(absl::StrCat("neither ", stem, ".gz nor ", stem,
                                          " exists (install Debian's dataset-fashion-mnist)"));
}

}  // namespace

absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files unchanged
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  const bool failed = n < 0 || (err != Z_OK && err != Z_STREAM_END);
  const std::string error = failed ? std::string(msg) : "";
  gzclose(f);
  if (failed) return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", error));
  return out;
}

absl::StatusOr<Dataset> ParseMnist(absl::string_view images, absl::string_view labels,
                                   absl::string_view images_name,
                                   absl::string_view labels_name) {
  if (images.size() < 16 || BigEndian32(images, 0) != 0x803) {
    return absl::DataLossError(absl::StrCat(images_name, ": not an IDX3 image file"));
  }
  if (labels.size() < 8 || BigEndian32(labels, 0) != 0x801) {
    return absl::DataLossError(absl::StrCat(labels_name, ": not an IDX1 label file"));
  }
  const uint64_t n = BigEndian32(images, 4);
  const uint64_t rows = BigEndian32(images, 8), cols = BigEndian32(images, 12);
  if (BigEndian32(labels, 4) != n) {
    return absl::DataLossError(absl::StrCat(images_name, " has ", n, " images but ",
                                            labels_name, " has ", BigEndian32(labels, 4),
                                            " labels"));
  }
  // Each factor is below 2^32, so the product fits; the cap keeps n * dim from overflowing.
  const uint64_t dim = rows * cols;
  if (dim == 0 || dim > kMaxImagePixels) {
    return absl::DataLossError(absl::StrCat(images_name, ": images of ", rows, "x", cols,
                                            " pixels (at most ", kMaxImagePixels, ")"));
  }
  if (images.size() - 16 != n * dim || labels.size() - 8 != n) {
    return absl::DataLossError(absl::StrCat(images_name, " and ", labels_name,
                                            " are truncated or too long for ", n, " images of ",
                                            rows, "x", cols));
  }
  Dataset d;
  d.size = static_cast<int64_t>(n);
  d.dim = static_cast<int>(dim);
  d.features.resize(n * dim);
  d.labels.resize(n);
  const auto* px = reinterpret_cast<const unsigned char*>(images.data() + 16);
  for (uint64_t i = 0; i < n * dim; ++i) {
    d.features[i] = (px[i] * (1.0f / 255.0f) - kPixelMean) * (1.0f / kPixelStd);
  }
  for (uint64_t i = 0; i < n; ++i) {
    const int label = static_cast<unsigned char>(labels[8 + i]);
    if (label >= d.num_classes) {
      return absl::DataLossError(absl::StrCat(labels_name, ": label ", label, " at ", i,
                                              " outside [0, ", d.num_classes, ")"));
    }
    d.labels[i] = label;
  }
  return d;
}

absl::StatusOr<Dataset> LoadMnist(const std::string& dir, const std::string& prefix) {
  const std::string images_path = absl::StrCat(dir, "/", prefix, "-images-idx3-ubyte");
  const std::string labels_path = absl::StrCat(dir, "/", prefix, "-labels-idx1-ubyte");
  absl::StatusOr<std::string> images = FindAndRead(images_path);
  if (!images.ok()) return images.status();
  absl::StatusOr<std::string> labels = FindAndRead(labels_path);
  if (!labels.ok()) return labels.status();
  return ParseMnist(*images, *labels, images_path, labels_path);
}

}  // namespace ps
