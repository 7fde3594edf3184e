// Fuzzes the tensor decoders (common/tensor_coding.h) with arbitrary bytes, cut into slices
// where the first byte says (as gRPC may hand them over): each either decodes or says
// INVALID_ARGUMENT, and whatever protobuf itself parses they decode to the same message
// and values; a push's in-place gradients are readable and exactly their slice's length,
// and its 16-bit ones widen to what common/value_format.h makes of protobuf's bytes.
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/tensor_coding.h"
#include "common/value_format.h"
#include "proto/v1/ps.pb.h"

namespace {

grpc::ByteBuffer Cut(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) slices.emplace_back(bytes.substr(at, piece));
  return grpc::ByteBuffer(slices.data(), slices.size());
}

void Fail(int line) {
  std::fprintf(stderr, "tensor_coding_fuzzer: check at line %d failed\n", line);
  std::abort();
}
#define Check(ok) \
  if (!(ok)) Fail(__LINE__)

// The message with its values put back, as protobuf would have parsed it.
template <typename Slices>
void PutBack(const ps::wire::Values& values, Slices* slices) {
  Check(values.count() == static_cast<size_t>(slices->size()));
  for (int i = 0; i < slices->size(); ++i) {
    if (values.size(i) == 0) continue;
    std::string v(values.size(i), '\0');
    values.CopyTo(i, v.data());
    slices->Mutable(i)->set_values(v);
  }
}

template <typename Message>
bool Parses(const std::string& bytes, Message* m) {
  return m->ParseFromString(bytes);
}

// Whether every 16-bit dense slice of a push protobuf parsed is one the decoder widens (a
// known format, 2 bytes per element, no window); one that is not is INVALID_ARGUMENT.
bool SixteenBitSlicesFit(const ps::v1::PushRequest& push) {
  for (const ps::v1::DenseSlice& d : push.dense()) {
    if (d.format() == ps::v1::FLOAT32) continue;
    const size_t width = ps::ValueBytes(d.format());
    if (width == 0 || d.has_window_offset() || d.length() <= 0 || d.values().size() % width != 0 ||
        d.values().size() / width != static_cast<uint64_t>(d.length())) {
      return false;
    }
  }
  return true;
}

// The float32 bytes the shard reads for slice `d` as protobuf parsed it.
std::string AsFloat32(const ps::v1::DenseSlice& d) {
  if (d.format() == ps::v1::FLOAT32) return d.values();
  std::string out(d.length() * 4, '\0');
  ps::DecodeValues(d.format(), d.values().data(), d.length(), reinterpret_cast<float*>(out.data()));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = 1 + data[0] % 64;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const grpc::ByteBuffer buffer = Cut(bytes, piece);
  {
    ps::wire::PullResponse got;
    const absl::Status s = ps::wire::Decode(buffer, &got);
    Check(s.ok() || s.code() == absl::StatusCode::kInvalidArgument);
    ps::v1::PullResponse want;
    if (Parses(bytes, &want)) {
      Check(s.ok());
      PutBack(got.values, got.message.mutable_dense());
      Check(got.message.SerializeAsString() == want.SerializeAsString());
    }
  }
  {
    ps::wire::PushPullResponse got;
    const absl::Status s = ps::wire::Decode(buffer, &got);
    Check(s.ok() || s.code() == absl::StatusCode::kInvalidArgument);
    ps::v1::PushPullResponse want;
    if (Parses(bytes, &want)) {
      Check(s.ok());
      // (mutable_pull() would add an empty pull to a reply without one.)
      if (got.message.has_pull()) {
        PutBack(got.values, got.message.mutable_pull()->mutable_dense());
      } else {
        Check(got.values.count() == 0);
      }
      Check(got.message.SerializeAsString() == want.SerializeAsString());
    }
  }
  {
    ps::v1::PushRequest got;
    ps::wire::ReceivedPush push;
    const absl::Status s = push.Decode(buffer, &got);
    Check(s.ok() || s.code() == absl::StatusCode::kInvalidArgument);
    ps::v1::PushRequest want;
    if (Parses(bytes, &want) && SixteenBitSlicesFit(want)) Check(s.ok());
    if (s.ok()) {
      Check(push.dense().size() == static_cast<size_t>(got.dense_size()));
      for (int i = 0; i < got.dense_size(); ++i) {
        const char* g = push.dense()[i];
        if (g == nullptr) continue;
        Check(got.dense(i).values().empty() && !got.dense(i).has_window_offset());
        Check(reinterpret_cast<uintptr_t>(g) % 4 == 0);
        // Put back, it must be the bytes protobuf parsed (widened, if 16-bit).
        std::string v(g, got.dense(i).length() * 4);
        Check(v == AsFloat32(want.dense(i)));
      }
    }
  }
  {
    ps::v1::PushPullRequest got;
    ps::wire::ReceivedPush push;
    const absl::Status s = push.Decode(buffer, &got);
    Check(s.ok() || s.code() == absl::StatusCode::kInvalidArgument);
    ps::v1::PushPullRequest want;
    if (Parses(bytes, &want) && SixteenBitSlicesFit(want.push())) Check(s.ok());
    if (s.ok()) Check(push.dense().size() == static_cast<size_t>(got.push().dense_size()));
  }
  return 0;
}
