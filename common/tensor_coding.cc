// Tensor coding: protobuf's wire format built and read around the tensor bytes.
#include "common/tensor_coding.h"

#include <grpc/slice.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ps {
namespace wire {
namespace {

constexpr int kLengthDelimited = 2;

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

std::string FieldHeader(int field, size_t size) {
  std::string header;
  AppendVarint((static_cast<uint64_t>(field) << 3) | kLengthDelimited, &header);
  AppendVarint(size, &header);
  return header;
}

void ReleaseRef(void* refs) { static_cast<SliceRefs*>(refs)->Release(); }
void DeleteString(void* s) { delete static_cast<std::string*>(s); }

// The slices (dense slices or sparse rows) of a reply, each encoded as field `field` of the
// message that holds them, itself wrapped as field `outer` of the top message when
// `outer` > 0; their values move into slices of their own. Empties `slices`.
template <typename Slices>
void AppendMoving(Slices* slices, int field, int values_field, int outer, Parts* top) {
  for (auto& s : *slices) {
    std::string values = std::move(*s.mutable_values());
    s.clear_values();
    Parts one;
    one.Copy(s.SerializeAsString());
    if (!values.empty()) one.AppendBytesField(values_field, std::move(values));
    if (outer > 0) {
      Parts wrapped;
      wrapped.AppendField(field, std::move(one));
      top->AppendField(outer, std::move(wrapped));
    } else {
      top->AppendField(field, std::move(one));
    }
  }
  slices->Clear();
}

// A push's dense slices with their values referred to, as in AppendMoving.
void AppendReferring(const v1::PushRequest& push, const std::vector<absl::Span<const char>>& values,
                     int outer, SliceRefs* refs, Parts* top) {
  for (int i = 0; i < push.dense_size(); ++i) {
    Parts one;
    one.Copy(push.dense(i).SerializeAsString());
    if (static_cast<size_t>(i) < values.size() && !values[i].empty()) {
      if (refs != nullptr) {
        one.AppendBytesField(v1::DenseSlice::kValuesFieldNumber, values[i].data(), values[i].size(),
                             refs);
      } else {  // a request moved from: nothing counts its slices, so copy
        one.AppendBytesField(v1::DenseSlice::kValuesFieldNumber,
                             std::string(values[i].data(), values[i].size()));
      }
    }
    if (outer > 0) {
      Parts wrapped;
      wrapped.AppendField(v1::PushRequest::kDenseFieldNumber, std::move(one));
      top->AppendField(outer, std::move(wrapped));
    } else {
      top->AppendField(v1::PushRequest::kDenseFieldNumber, std::move(one));
    }
  }
}

}  // namespace

void SliceRefs::Add() {
  absl::MutexLock lock(&mu_);
  ++held_;
}

void SliceRefs::Release() {
  absl::MutexLock lock(&mu_);
  --held_;
}

void SliceRefs::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int64_t* held) { return *held == 0; }, &held_));
}

int64_t SliceRefs::held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

void Parts::Copy(const std::string& bytes) {
  if (bytes.empty()) return;
  size_ += bytes.size();
  if (!pieces_.empty() && pieces_.back().data == nullptr && pieces_.back().taken == nullptr) {
    pieces_.back().copied += bytes;
    return;
  }
  Piece p;
  p.copied = bytes;
  pieces_.push_back(std::move(p));
}

void Parts::Refer(const char* data, size_t size, SliceRefs* refs) {
  if (size == 0) return;
  size_ += size;
  Piece p;
  p.data = data;
  p.size = size;
  p.refs = refs;
  pieces_.push_back(std::move(p));
}

void Parts::Take(std::string bytes) {
  if (bytes.empty()) return;
  size_ += bytes.size();
  Piece p;
  p.taken = std::make_unique<std::string>(std::move(bytes));
  pieces_.push_back(std::move(p));
}

void Parts::AppendField(int field, Parts inner) {
  Copy(FieldHeader(field, inner.size()));
  for (Piece& p : inner.pieces_) {
    if (p.data == nullptr && p.taken == nullptr) {
      Copy(p.copied);
      continue;
    }
    size_ += p.taken != nullptr ? p.taken->size() : p.size;
    pieces_.push_back(std::move(p));
  }
}

void Parts::AppendBytesField(int field, const char* data, size_t size, SliceRefs* refs) {
  Copy(FieldHeader(field, size));
  Refer(data, size, refs);
}

void Parts::AppendBytesField(int field, std::string bytes) {
  Copy(FieldHeader(field, bytes.size()));
  Take(std::move(bytes));
}

grpc::ByteBuffer Parts::Finish() && {
  std::vector<grpc::Slice> slices;
  slices.reserve(pieces_.size());
  for (Piece& p : pieces_) {
    if (p.taken != nullptr) {
      std::string* s = p.taken.release();
      slices.emplace_back(grpc_slice_new_with_user_data(s->data(), s->size(), DeleteString, s),
                          grpc::Slice::STEAL_REF);
    } else if (p.data != nullptr) {
      p.refs->Add();
      slices.emplace_back(
          grpc_slice_new_with_user_data(const_cast<char*>(p.data), p.size, ReleaseRef, p.refs),
          grpc::Slice::STEAL_REF);
    } else {
      slices.emplace_back(p.copied);
    }
  }
  pieces_.clear();
  size_ = 0;
  return grpc::ByteBuffer(slices.data(), slices.size());
}

void Values::CopyTo(size_t i, char* dest) const {
  size_t at = views_[i].begin;
  size_t left = views_[i].size;
  // The slice holding byte `at`: the last one starting at or before it.
  size_t k = std::upper_bound(starts_.begin(), starts_.end(), at) - starts_.begin() - 1;
  while (left > 0) {
    const grpc::Slice& s = slices_[k];
    const size_t offset = at - starts_[k];
    const size_t n = std::min(left, s.size() - offset);
    std::memcpy(dest, s.begin() + offset, n);
    dest += n;
    at += n;
    left -= n;
    ++k;
  }
}

const char* Values::InPlace(size_t i, size_t alignment) const {
  const View& v = views_[i];
  if (v.size == 0) return nullptr;
  const size_t k = std::upper_bound(starts_.begin(), starts_.end(), v.begin) - starts_.begin() - 1;
  if (v.begin + v.size > starts_[k] + slices_[k].size()) return nullptr;
  const char* p = reinterpret_cast<const char*>(slices_[k].begin()) + (v.begin - starts_[k]);
  return reinterpret_cast<uintptr_t>(p) % alignment == 0 ? p : nullptr;
}

void Values::Clear() {
  slices_.clear();
  starts_.clear();
  views_.clear();
}

// Reads a message's bytes across the slices it arrived in.
class Reader {
 public:
  Reader(Values* v, size_t total) : v_(v), total_(total) {}

  size_t pos() const { return pos_; }

  bool ReadByte(uint8_t* b) {
    if (pos_ >= total_) return false;
    while (pos_ >= v_->starts_[k_] + v_->slices_[k_].size()) ++k_;
    *b = v_->slices_[k_].begin()[pos_ - v_->starts_[k_]];
    ++pos_;
    return true;
  }

  bool ReadVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!ReadByte(&b)) return false;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  bool Skip(uint64_t n, size_t limit) {
    if (pos_ > limit || n > limit - pos_) return false;
    pos_ += n;
    return true;
  }

  // Appends bytes [from, pos()) to *out.
  void CopyFrom(size_t from, std::string* out) const {
    Values::View view{from, pos_ - from};
    const size_t old = out->size();
    out->resize(old + view.size);
    v_->views_.push_back(view);
    v_->CopyTo(v_->views_.size() - 1, out->data() + old);
    v_->views_.pop_back();
  }

 private:
  Values* v_;
  const size_t total_;
  size_t pos_ = 0;
  size_t k_ = 0;
};

namespace {

// Skips one field's value of wire type `type` (after its tag), within `end`; a group (types
// 3 and 4, which protobuf still parses as unknown fields) up to its end tag, at most
// `depth` groups deep. False if the bytes end first or are not a value.
bool SkipValue(Reader* r, int field, int type, size_t end, int depth) {
  uint64_t value;
  switch (type) {
    case 0:
      return r->ReadVarint(&value) && r->pos() <= end;
    case 1:
      return r->Skip(8, end);
    case 5:
      return r->Skip(4, end);
    case kLengthDelimited:
      return r->ReadVarint(&value) && r->pos() <= end && r->Skip(value, end);
    case 3:
      if (depth == 0) return false;
      while (r->pos() < end) {
        uint64_t tag;
        if (!r->ReadVarint(&tag) || r->pos() > end) return false;
        tag &= 0xffffffffu;
        if (tag >> 3 == 0) return false;
        const int inner = static_cast<int>(tag >> 3), inner_type = static_cast<int>(tag & 7);
        if (inner_type == 4) return inner == field;
        if (!SkipValue(r, inner, inner_type, end, depth - 1)) return false;
      }
      return false;
    default:
      return false;
  }
}

// Reads the fields of a message that ends at byte `end`, appending all but the diverted
// ones to *out: the rest of `path` leads to the diverted bytes field; each occurrence of
// the message holding it opens a view in *views.
absl::Status Walk(Reader* r, size_t end, absl::Span<const int> path, std::string* out,
                  std::vector<Values::View>* views) {
  while (r->pos() < end) {
    const size_t start = r->pos();
    uint64_t tag;
    if (!r->ReadVarint(&tag) || r->pos() > end) {
      return absl::InvalidArgumentError("truncated field tag");
    }
    // As protobuf reads a tag: its low 32 bits; field number 0 is none.
    tag &= 0xffffffffu;
    if (tag >> 3 == 0) return absl::InvalidArgumentError("a field numbered 0");
    const int field = static_cast<int>(tag >> 3);
    const int type = static_cast<int>(tag & 7);
    if (type == kLengthDelimited && !path.empty() && field == path[0]) {
      uint64_t size;
      if (!r->ReadVarint(&size) || r->pos() > end || size > end - r->pos()) {
        return absl::InvalidArgumentError(absl::StrCat("field ", field, " runs past its message"));
      }
      if (path.size() == 1) {
        if (views->empty()) return absl::InvalidArgumentError("values outside their message");
        views->back() = {r->pos(), static_cast<size_t>(size)};
        r->Skip(size, end);
        continue;
      }
      if (path.size() == 2) views->push_back({});
      std::string inner;
      if (absl::Status s = Walk(r, r->pos() + size, path.subspan(1), &inner, views); !s.ok()) {
        return s;
      }
      out->append(FieldHeader(field, inner.size()));
      out->append(inner);
      continue;
    }
    if (!SkipValue(r, field, type, end, /*depth=*/100) || r->pos() > end) {
      return absl::InvalidArgumentError(
          absl::StrCat("field ", field, " (wire type ", type, ") runs past its message"));
    }
    r->CopyFrom(start, out);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Decode(const grpc::ByteBuffer& buffer, absl::Span<const int> path,
                    google::protobuf::MessageLite* message, Values* values) {
  values->Clear();
  if (buffer.Valid() && !buffer.Dump(&values->slices_).ok()) {
    return absl::InvalidArgumentError("the message's bytes cannot be read");
  }
  size_t total = 0;
  for (const grpc::Slice& s : values->slices_) {
    values->starts_.push_back(total);
    total += s.size();
  }
  Reader reader(values, total);
  std::vector<Values::View> views;
  std::string skeleton;
  if (absl::Status s = Walk(&reader, total, path, &skeleton, &views); !s.ok()) return s;
  values->views_ = std::move(views);
  if (!message->ParseFromString(skeleton)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the fields around the tensor bytes do not parse as ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

grpc::ByteBuffer Encode(const PushRequest& request) {
  v1::PushRequest skeleton = request.message;
  skeleton.clear_dense();
  Parts top;
  top.Copy(skeleton.SerializeAsString());
  AppendReferring(request.message, request.values, 0, request.refs.get(), &top);
  return std::move(top).Finish();
}

grpc::ByteBuffer Encode(const PushPullRequest& request) {
  v1::PushPullRequest skeleton = request.message;
  skeleton.mutable_push()->clear_dense();
  Parts top;
  top.Copy(skeleton.SerializeAsString());
  AppendReferring(request.message.push(), request.values, v1::PushPullRequest::kPushFieldNumber,
                  request.refs.get(), &top);
  return std::move(top).Finish();
}

grpc::ByteBuffer EncodeMoving(v1::PullResponse* response) {
  google::protobuf::RepeatedPtrField<v1::DenseSlice> dense;
  google::protobuf::RepeatedPtrField<v1::SparseRows> sparse;
  dense.Swap(response->mutable_dense());
  sparse.Swap(response->mutable_sparse());
  Parts top;
  top.Copy(response->SerializeAsString());
  AppendMoving(&dense, v1::PullResponse::kDenseFieldNumber, v1::DenseSlice::kValuesFieldNumber, 0,
               &top);
  AppendMoving(&sparse, v1::PullResponse::kSparseFieldNumber, v1::SparseRows::kValuesFieldNumber, 0,
               &top);
  return std::move(top).Finish();
}

grpc::ByteBuffer EncodeMoving(v1::PushPullResponse* response) {
  google::protobuf::RepeatedPtrField<v1::DenseSlice> dense;
  google::protobuf::RepeatedPtrField<v1::SparseRows> sparse;
  dense.Swap(response->mutable_pull()->mutable_dense());
  sparse.Swap(response->mutable_pull()->mutable_sparse());
  Parts top;
  top.Copy(response->SerializeAsString());
  const int pull = v1::PushPullResponse::kPullFieldNumber;
  AppendMoving(&dense, v1::PullResponse::kDenseFieldNumber, v1::DenseSlice::kValuesFieldNumber,
               pull, &top);
  AppendMoving(&sparse, v1::PullResponse::kSparseFieldNumber, v1::SparseRows::kValuesFieldNumber,
               pull, &top);
  return std::move(top).Finish();
}

absl::Status Decode(const grpc::ByteBuffer& buffer, PullResponse* response) {
  const int path[] = {v1::PullResponse::kDenseFieldNumber, v1::DenseSlice::kValuesFieldNumber};
  return Decode(buffer, path, &response->message, &response->values);
}

absl::Status Decode(const grpc::ByteBuffer& buffer, PushPullResponse* response) {
  const int path[] = {v1::PushPullResponse::kPullFieldNumber, v1::PullResponse::kDenseFieldNumber,
                      v1::DenseSlice::kValuesFieldNumber};
  return Decode(buffer, path, &response->message, &response->values);
}

}  // namespace wire
}  // namespace ps
