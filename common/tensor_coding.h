// Tensor bytes between memory and gRPC without protobuf copies (docs/wire.md), the way
// TensorFlow's gRPC runtime codes tensors. The bytes on the wire are the protobuf encoding
// of the service's messages (proto/v1/ps.proto), so any protobuf peer reads them; only the
// way they are built and read differs:
// - Encoding: the messages' small fields are serialized by protobuf; each tensor's bytes
//   become a slice of their own that points at the tensor memory (the worker's tensors,
//   read by gRPC as it writes the socket) or at a string moved in (a shard's pull reply).
// - Decoding: the messages' small fields are parsed by protobuf; the tensor bytes stay in
//   the slices gRPC received them in, and are copied once, straight to where they belong.
// The wire types below carry a message and its tensor bytes; their
// grpc::SerializationTraits let a TemplatedGenericStub send and receive them.
//
// Thread safety: a SliceRefs may be released from any thread; everything else belongs to
// one call at a time.
#ifndef PS_COMMON_TENSOR_CODING_H_
#define PS_COMMON_TENSOR_CODING_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/serialization_traits.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "proto/v1/ps.pb.h"

namespace ps {
namespace wire {

// Counts the slices gRPC holds that point at memory its owner must keep; the destructor
// waits until gRPC has let go of all of them.
class SliceRefs {
 public:
  SliceRefs() = default;
  SliceRefs(const SliceRefs&) = delete;
  SliceRefs& operator=(const SliceRefs&) = delete;
  ~SliceRefs() { Wait(); }

  void Add();
  void Release();
  // Returns once no slice is held.
  void Wait();
  int64_t held() const;

 private:
  mutable absl::Mutex mu_;
  int64_t held_ ABSL_GUARDED_BY(mu_) = 0;
};

// The bytes of a message being encoded, in order: small pieces copied, tensor bytes
// referred to or taken over.
class Parts {
 public:
  // Copies `bytes` (protobuf-encoded fields, tags, lengths).
  void Copy(const std::string& bytes);
  // Refers to `size` bytes at `data`, which must stay valid until `refs` is released.
  void Refer(const char* data, size_t size, SliceRefs* refs);
  // Takes `bytes` over without copying them.
  void Take(std::string bytes);
  // Appends length-delimited field `field` (wire type 2) holding `inner`.
  void AppendField(int field, Parts inner);
  // Appends bytes field `field` holding what Refer or Take would add.
  void AppendBytesField(int field, const char* data, size_t size, SliceRefs* refs);
  void AppendBytesField(int field, std::string bytes);

  size_t size() const { return size_; }
  grpc::ByteBuffer Finish() &&;

 private:
  struct Piece {
    std::string copied;                  // kind kCopy
    std::unique_ptr<std::string> taken;  // kind kTake
    const char* data = nullptr;          // kind kRefer
    size_t size = 0;
    SliceRefs* refs = nullptr;
  };
  std::vector<Piece> pieces_;
  size_t size_ = 0;
};

// Where the tensor bytes of a decoded message lie in the slices it arrived in.
class Values {
 public:
  struct View {
    size_t begin = 0;  // byte offset in the message
    size_t size = 0;
  };

  // One per occurrence of the message that holds them (e.g. per DenseSlice).
  size_t count() const { return views_.size(); }
  size_t size(size_t i) const { return views_[i].size; }
  // Copies value i (size(i) bytes) to `dest`.
  void CopyTo(size_t i, char* dest) const;
  // Value i where it arrived, when it lies in one slice and starts `alignment`-byte
  // aligned (4: as a float reader needs it); else nullptr.
  const char* InPlace(size_t i, size_t alignment = alignof(float)) const;
  void Clear();

 private:
  friend absl::Status Decode(const grpc::ByteBuffer&, absl::Span<const int>,
                             google::protobuf::MessageLite*, Values*);
  friend class Reader;
  std::vector<grpc::Slice> slices_;
  std::vector<size_t> starts_;  // byte offset of each slice in the message
  std::vector<View> views_;
};

// Parses `buffer` into `message`, except the bytes fields along `path` (field numbers from
// the outer message in: {dense, values} for a PullResponse's dense values), which are not
// copied; `values` gets one entry per occurrence of the message holding them, in order
// (empty where one holds none). INVALID_ARGUMENT, naming the problem, for bytes that are
// not such a message.
absl::Status Decode(const grpc::ByteBuffer& buffer, absl::Span<const int> path,
                    google::protobuf::MessageLite* message, Values* values);

// A dense push whose values gRPC reads straight from the worker's tensors: `message`
// without the dense slices' values, which are `values[i]` (empty: none, e.g. windowed).
// Values coded in a 16-bit format lie in `coded`, which the request owns. Members are
// destroyed in reverse order: `refs` waits for gRPC before `coded` goes.
struct PushRequest {
  v1::PushRequest message;
  std::vector<absl::Span<const char>> values;
  std::vector<std::unique_ptr<char[]>> coded;
  std::unique_ptr<SliceRefs> refs = std::make_unique<SliceRefs>();
};

// The same for a push-pull: `values[i]` are message.push().dense(i)'s.
struct PushPullRequest {
  v1::PushPullRequest message;
  std::vector<absl::Span<const char>> values;
  std::vector<std::unique_ptr<char[]>> coded;
  std::unique_ptr<SliceRefs> refs = std::make_unique<SliceRefs>();
};

// A pull reply: `message` without the dense slices' values, which lie in `values`.
struct PullResponse {
  v1::PullResponse message;
  Values values;
  void Clear() {
    message.Clear();
    values.Clear();
  }
};

// A push-pull reply: values[i] are message.pull().dense(i)'s.
struct PushPullResponse {
  v1::PushPullResponse message;
  Values values;
  void Clear() {
    message.Clear();
    values.Clear();
  }
};

// A push as it arrived: each dense slice's float32 gradient is left where it lies when it
// can be read there, else copied once into aligned memory the push owns; a 16-bit one
// (DenseSlice.format) is widened to float32 there in one pass. A float32 slice whose bytes
// do not match its length, or that also names a window, keeps them in the message, for
// the shard to name the mismatch; a 16-bit one is refused here.
class ReceivedPush {
 public:
  // Parses a push (alone or in a push-pull) from `buffer`; INVALID_ARGUMENT as Decode.
  absl::Status Decode(const grpc::ByteBuffer& buffer, v1::PushRequest* request);
  absl::Status Decode(const grpc::ByteBuffer& buffer, v1::PushPullRequest* request);

  // Per dense slice of the push: its gradient, or null (in the message, or none).
  const std::vector<const char*>& dense() const { return dense_; }
  // How many gradients had to be copied (or widened) to be read.
  size_t gathered() const { return gathered_.size(); }

 private:
  absl::Status Place(v1::PushRequest* push);
  // Widens slice i's 16-bit values into memory of the push.
  absl::Status Widen(size_t i, const v1::DenseSlice& d);

  Values values_;
  std::vector<const char*> dense_;
  std::vector<std::unique_ptr<float[]>> gathered_;
};

grpc::ByteBuffer Encode(const PushRequest& request);
grpc::ByteBuffer Encode(const PushPullRequest& request);
// A shard's replies: the values (dense and sparse) are moved out of `response` into slices
// of their own, not copied.
grpc::ByteBuffer EncodeMoving(v1::PullResponse* response);
grpc::ByteBuffer EncodeMoving(v1::PushPullResponse* response);

absl::Status Decode(const grpc::ByteBuffer& buffer, PullResponse* response);
absl::Status Decode(const grpc::ByteBuffer& buffer, PushPullResponse* response);

}  // namespace wire
}  // namespace ps

namespace grpc {

// How gRPC's generic stubs send and receive the wire types.
template <typename T>
class WireSerializationTraits {
 public:
  static Status Serialize(const T& message, ByteBuffer* buffer, bool* own_buffer) {
    *buffer = ps::wire::Encode(message);
    *own_buffer = true;
    return Status::OK;
  }
  static Status Deserialize(ByteBuffer* buffer, T* message) {
    absl::Status s = ps::wire::Decode(*buffer, message);
    buffer->Clear();
    if (!s.ok()) return Status(StatusCode::INTERNAL, std::string(s.message()));
    return Status::OK;
  }
};

template <>
class SerializationTraits<ps::wire::PushRequest>
    : public WireSerializationTraits<ps::wire::PushRequest> {};
template <>
class SerializationTraits<ps::wire::PushPullRequest>
    : public WireSerializationTraits<ps::wire::PushPullRequest> {};
template <>
class SerializationTraits<ps::wire::PullResponse>
    : public WireSerializationTraits<ps::wire::PullResponse> {};
template <>
class SerializationTraits<ps::wire::PushPullResponse>
    : public WireSerializationTraits<ps::wire::PushPullResponse> {};

}  // namespace grpc

#endif  // PS_COMMON_TENSOR_CODING_H_
