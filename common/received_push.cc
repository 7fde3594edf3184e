// ReceivedPush: a push's gradients as the shard reads them, in place, gathered or widened
// (common/tensor_coding.h).
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/tensor_coding.h"
#include "common/value_format.h"

namespace ps {
namespace wire {

absl::Status ReceivedPush::Decode(const grpc::ByteBuffer& buffer, v1::PushRequest* request) {
  const int path[] = {v1::PushRequest::kDenseFieldNumber, v1::DenseSlice::kValuesFieldNumber};
  if (absl::Status s = wire::Decode(buffer, path, request, &values_); !s.ok()) return s;
  return Place(request);
}

absl::Status ReceivedPush::Decode(const grpc::ByteBuffer& buffer, v1::PushPullRequest* request) {
  const int path[] = {v1::PushPullRequest::kPushFieldNumber, v1::PushRequest::kDenseFieldNumber,
                      v1::DenseSlice::kValuesFieldNumber};
  if (absl::Status s = wire::Decode(buffer, path, request, &values_); !s.ok()) return s;
  // After parsing: parsing replaces the message's push.
  return Place(request->mutable_push());
}

absl::Status ReceivedPush::Place(v1::PushRequest* push) {
  dense_.clear();
  gathered_.clear();
  if (values_.count() != static_cast<size_t>(push->dense_size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense values outside their slices: ", values_.count(), " values for ",
                     push->dense_size(), " slices"));
  }
  dense_.assign(values_.count(), nullptr);
  for (size_t i = 0; i < values_.count(); ++i) {
    v1::DenseSlice* d = push->mutable_dense(static_cast<int>(i));
    const size_t size = values_.size(i);
    if (d->format() != v1::FLOAT32) {
      if (absl::Status s = Widen(i, *d); !s.ok()) return s;
      continue;
    }
    if (size == 0) continue;
    if (d->has_window_offset() || d->length() < 0 || size % 4 != 0 ||
        size / 4 != static_cast<uint64_t>(d->length())) {
      d->mutable_values()->resize(size);
      values_.CopyTo(i, d->mutable_values()->data());
      continue;
    }
    dense_[i] = values_.InPlace(i);
    if (dense_[i] == nullptr) {
      gathered_.emplace_back(new float[size / 4]);  // uninitialised: CopyTo fills it
      values_.CopyTo(i, reinterpret_cast<char*>(gathered_.back().get()));
      dense_[i] = reinterpret_cast<const char*>(gathered_.back().get());
    }
  }
  return absl::OkStatus();
}

absl::Status ReceivedPush::Widen(size_t i, const v1::DenseSlice& d) {
  const size_t width = ValueBytes(d.format());
  const size_t size = values_.size(i);
  auto where = [&] { return absl::StrCat("push: table '", d.table(), "' slice at ", d.offset()); };
  if (width == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), " names value format ", d.format(), ", none of float32, bf16, fp16"));
  }
  if (d.has_window_offset()) {
    return absl::InvalidArgumentError(absl::StrCat(where(), " is ", ValueFormatName(d.format()),
                                                   " but windowed (windows hold float32)"));
  }
  if (d.length() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(where(), " is empty (length ", d.length(), ")"));
  }
  // (Divided, not multiplied: a length near 2^63 must not overflow.)
  if (size % width != 0 || size / width != static_cast<uint64_t>(d.length())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(), " carries ", size, " bytes of ", ValueFormatName(d.format()),
                     " but its length ", d.length(), " needs ", width, " bytes per element"));
  }
  gathered_.emplace_back(new float[d.length()]);
  float* out = gathered_.back().get();
  const char* in = values_.InPlace(i, /*alignment=*/1);
  std::unique_ptr<char[]> joined;
  if (in == nullptr) {  // split across gRPC's slices
    joined.reset(new char[size]);
    values_.CopyTo(i, joined.get());
    in = joined.get();
  }
  DecodeValues(d.format(), in, d.length(), out);
  dense_[i] = reinterpret_cast<const char*>(out);
  return absl::OkStatus();
}

}  // namespace wire
}  // namespace ps
