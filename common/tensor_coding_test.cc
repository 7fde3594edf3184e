#include "common/tensor_coding.h"

#include <grpc/slice.h>

#include <numeric>
#include <string>
#include <vector>

#include "common/value_format.h"
#include "gtest/gtest.h"

namespace ps {
namespace wire {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// The same bytes cut into slices of `piece` bytes (the last one shorter), with an empty
// slice between each, as no sender would send them but a reader must take them.
grpc::ByteBuffer Recut(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.substr(at, piece));
    slices.emplace_back(std::string());
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Floats(int n, float first) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), first);
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

v1::PullResponse Reply() {
  v1::PullResponse r;
  for (int i = 0; i < 3; ++i) {
    v1::DenseSlice* d = r.add_dense();
    d->set_table(i == 1 ? "fc1.w" : "fc0.w");
    d->set_offset(100 * i);
    d->set_length(i == 2 ? 0 : 257 * (i + 1));
    d->set_version(7 + i);
    if (i != 2) d->set_values(Floats(257 * (i + 1), 0.5f + i));
  }
  v1::SparseRows* s = r.add_sparse();
  s->set_table("emb");
  s->add_keys(3);
  s->add_keys(1 << 20);
  s->set_values(Floats(8, -2));
  return r;
}

TEST(TensorCodingTest, ARepliesBytesParseAsTheMessageWithProtobuf) {
  const v1::PullResponse want = Reply();
  v1::PullResponse moved = want;
  const std::string bytes = Flatten(EncodeMoving(&moved));
  EXPECT_EQ(moved.dense_size(), 0);
  v1::PullResponse got;
  ASSERT_TRUE(got.ParseFromString(bytes));
  EXPECT_EQ(got.SerializeAsString(), want.SerializeAsString());
}

TEST(TensorCodingTest, APushPullRepliesBytesParseAsTheMessageWithProtobuf) {
  v1::PushPullResponse want;
  *want.mutable_pull() = Reply();
  want.mutable_push()->add_dense_versions(4);
  want.set_pull_code(0);
  v1::PushPullResponse moved = want;
  v1::PushPullResponse got;
  ASSERT_TRUE(got.ParseFromString(Flatten(EncodeMoving(&moved))));
  EXPECT_EQ(got.SerializeAsString(), want.SerializeAsString());
}

TEST(TensorCodingTest, DecodingKeepsTheValuesOutOfTheMessageAcrossAnySlicing) {
  const v1::PullResponse want = Reply();
  for (size_t piece : {size_t{1}, size_t{3}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    PullResponse got;
    ASSERT_TRUE(Decode(Recut(want.SerializeAsString(), piece), &got).ok()) << piece;
    ASSERT_EQ(got.message.dense_size(), 3);
    ASSERT_EQ(got.values.count(), 3u);
    for (int i = 0; i < 3; ++i) {
      EXPECT_TRUE(got.message.dense(i).values().empty());
      EXPECT_EQ(got.message.dense(i).table(), want.dense(i).table());
      EXPECT_EQ(got.message.dense(i).version(), want.dense(i).version());
      std::string v(got.values.size(i), '\0');
      got.values.CopyTo(i, v.data());
      EXPECT_EQ(v, want.dense(i).values()) << "slice " << i << ", pieces of " << piece;
    }
    // Sparse rows are not on the path: they stay in the message.
    EXPECT_EQ(got.message.sparse(0).SerializeAsString(), want.sparse(0).SerializeAsString());
  }
}

TEST(TensorCodingTest, APushReadsTheTensorMemoryUntilGrpcLetsGo) {
  const std::string grad = Floats(1000, 1);
  PushRequest push;
  push.message.set_worker_index(2);
  push.message.mutable_id()->set_sequence(9);
  v1::DenseSlice* d = push.message.add_dense();
  d->set_table("fc0.w");
  d->set_length(1000);
  push.message.add_dense()->set_table("windowed");  // no values: it went through a window
  push.values = {absl::MakeConstSpan(grad.data(), grad.size()), {}};
  v1::PushRequest got;
  {
    grpc::ByteBuffer buffer = Encode(push);
    EXPECT_EQ(push.refs->held(), 1);
    ASSERT_TRUE(got.ParseFromString(Flatten(buffer)));
  }
  EXPECT_EQ(push.refs->held(), 0);
  EXPECT_EQ(got.worker_index(), 2);
  EXPECT_EQ(got.id().sequence(), 9);
  ASSERT_EQ(got.dense_size(), 2);
  EXPECT_EQ(got.dense(0).values(), grad);
  EXPECT_TRUE(got.dense(1).values().empty());
  EXPECT_EQ(got.dense(1).table(), "windowed");
}

TEST(TensorCodingTest, APushPullReplyDecodesItsPullsValues) {
  v1::PushPullResponse want;
  *want.mutable_pull() = Reply();
  want.set_pull_code(4);
  want.set_pull_message("late");
  PushPullResponse got;
  ASSERT_TRUE(Decode(Recut(want.SerializeAsString(), 5), &got).ok());
  EXPECT_EQ(got.message.pull_code(), 4);
  EXPECT_EQ(got.message.pull_message(), "late");
  ASSERT_EQ(got.values.count(), 3u);
  std::string v(got.values.size(1), '\0');
  got.values.CopyTo(1, v.data());
  EXPECT_EQ(v, want.pull().dense(1).values());
  EXPECT_EQ(got.values.size(2), 0u);
}

TEST(TensorCodingTest, MalformedBytesAreInvalidArgument) {
  const std::string good = Reply().SerializeAsString();
  for (size_t cut : {size_t{1}, size_t{2}, size_t{5}, good.size() / 2, good.size() - 1}) {
    PullResponse got;
    absl::Status s = Decode(Recut(good.substr(0, cut), 3), &got);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << cut << ": " << s;
  }
  PullResponse got;
  // A tag that runs past the end of its message (a dense slice of 1 byte holding the first
  // byte of a 2-byte tag of a fixed64): its 8 bytes are not the slice's to read.
  const std::string tag_past_end = std::string("\x0a\x01\x89\x01") + std::string(8, 'x');
  EXPECT_EQ(Decode(Recut(tag_past_end, 2), &got).code(), absl::StatusCode::kInvalidArgument);
  // A length that runs past the end of the message holding it (a pull of 2 bytes whose
  // dense slice's length varint goes on outside it): nothing past the buffer is read (the
  // suite's ASan run catches a read), and the bytes are invalid.
  PushPullResponse reply;
  EXPECT_EQ(Decode(Recut(std::string("\x12\x02\x0a\x80\x01\x09"
                                     "abcd"),
                         3),
                   &reply)
                .code(),
            absl::StatusCode::kInvalidArgument);
  // Field number 0 is invalid; a tag wider than 32 bits is read as protobuf reads it, by
  // its low 32 bits (here field 1, a dense slice, so its values are diverted too).
  EXPECT_EQ(Decode(Recut(std::string("\x02\x00", 2), 1), &got).code(),
            absl::StatusCode::kInvalidArgument);
  const std::string wide("\x8a\x80\x80\x80\x10\x02\x22\x00", 8);  // dense { values: "" }
  v1::PullResponse want;
  ASSERT_TRUE(want.ParseFromString(wide));
  ASSERT_TRUE(Decode(Recut(wide, 2), &got).ok());
  EXPECT_EQ(got.message.dense_size(), want.dense_size());
  EXPECT_EQ(got.values.count(), static_cast<size_t>(want.dense_size()));
  // A group (wire types 3 and 4) is never in this protocol, but protobuf parses one as
  // an unknown field, and so does Decode; one that never ends is invalid.
  const std::string group = "\x0b\x10\x01\x0c";  // field 1 { field 2: 1 }
  EXPECT_TRUE(Decode(Recut(group, 1), &got).ok());
  EXPECT_EQ(Decode(Recut(group.substr(0, 3), 1), &got).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Decode(grpc::ByteBuffer(), &got).ok());
  EXPECT_EQ(got.values.count(), 0u);
}

}  // namespace
}  // namespace wire
}  // namespace ps

namespace ps {
namespace wire {
namespace {

TEST(TensorCodingTest, AReceivedPushPullKeepsItsGradientsInPlace) {
  const std::string grad = Floats(600, 1);
  PushPullRequest sent;
  sent.message.mutable_push()->set_worker_index(1);
  sent.message.mutable_pull()->set_min_version(3);
  sent.message.mutable_pull()->add_dense()->set_table("w");
  v1::DenseSlice* d = sent.message.mutable_push()->add_dense();
  d->set_table("w");
  d->set_length(600);
  v1::DenseSlice* windowed = sent.message.mutable_push()->add_dense();
  windowed->set_table("v");
  windowed->set_length(5);
  windowed->set_window_offset(0);
  v1::DenseSlice* wrong = sent.message.mutable_push()->add_dense();
  wrong->set_table("u");
  wrong->set_length(3);  // but 600 floats come with it
  sent.values = {absl::MakeConstSpan(grad.data(), grad.size()),
                 {},
                 absl::MakeConstSpan(grad.data(), grad.size())};
  for (size_t piece : {size_t{7}, size_t{1} << 20}) {
    v1::PushPullRequest got;
    ReceivedPush push;
    ASSERT_TRUE(push.Decode(Recut(Flatten(Encode(sent)), piece), &got).ok()) << piece;
    EXPECT_EQ(got.pull().min_version(), 3);
    ASSERT_EQ(got.push().dense_size(), 3);
    ASSERT_EQ(push.dense().size(), 3u);
    ASSERT_NE(push.dense()[0], nullptr);
    EXPECT_EQ(std::string(push.dense()[0], grad.size()), grad);
    EXPECT_EQ(push.dense()[1], nullptr);
    // The mismatched slice keeps its bytes in the message, for the shard to refuse.
    EXPECT_EQ(push.dense()[2], nullptr);
    EXPECT_EQ(got.push().dense(2).values(), grad);
    // Cut into 7-byte pieces the gradient had to be gathered; whole, it is read in place.
    EXPECT_EQ(push.gathered(), piece == 7 ? 1u : 0u);
  }
}

// `n` values from `first` coded in `format`.
std::string Coded(v1::ValueFormat format, int n, float first) {
  const std::string f = Floats(n, first);
  std::string out(n * ValueBytes(format), '\0');
  EncodeValues(format, reinterpret_cast<const float*>(f.data()), n, out.data());
  return out;
}

TEST(TensorCodingTest, AReceivedPushWidens16BitGradientsAcrossAnySlicing) {
  const std::string bf = Coded(v1::BFLOAT16, 250, 1), fp = Coded(v1::FLOAT16, 40, -3);
  PushRequest sent;
  v1::DenseSlice* a = sent.message.add_dense();
  a->set_table("w");
  a->set_length(250);
  a->set_format(v1::BFLOAT16);
  v1::DenseSlice* b = sent.message.add_dense();
  b->set_table("b");
  b->set_length(40);
  b->set_format(v1::FLOAT16);
  sent.values = {absl::MakeConstSpan(bf.data(), bf.size()),
                 absl::MakeConstSpan(fp.data(), fp.size())};
  for (size_t piece : {size_t{1}, size_t{7}, size_t{1} << 20}) {
    v1::PushRequest got;
    ReceivedPush push;
    ASSERT_TRUE(push.Decode(Recut(Flatten(Encode(sent)), piece), &got).ok()) << piece;
    ASSERT_EQ(push.dense().size(), 2u);
    // Integers to 256 are exact in both formats: the widened floats are the originals.
    EXPECT_TRUE(std::string(push.dense()[0], 250 * 4) == Floats(250, 1)) << piece;
    EXPECT_TRUE(std::string(push.dense()[1], 40 * 4) == Floats(40, -3)) << piece;
    EXPECT_EQ(push.gathered(), 2u);
    // The slice still says how it came (the shard counts the bytes as they came).
    EXPECT_EQ(got.dense(0).format(), v1::BFLOAT16);
  }
}

TEST(TensorCodingTest, A16BitGradientThatDoesNotFitItsSliceIsRefusedByName) {
  const std::string bf = Coded(v1::BFLOAT16, 10, 1);
  struct Case {
    int64_t length;
    int format;
    bool windowed;
    const char* want;
  };
  for (const Case& c :
       {Case{11, v1::BFLOAT16, false,
             "carries 20 bytes of bf16 but its length 11 needs 2 bytes per element"},
        Case{5, v1::FLOAT16, false,
             "carries 20 bytes of fp16 but its length 5 needs 2 bytes per element"},
        Case{10, 7, false, "names value format 7, none of float32, bf16, fp16"},
        Case{10, v1::BFLOAT16, true, "is bf16 but windowed"},
        Case{0, v1::BFLOAT16, false, "is empty (length 0)"}}) {
    PushRequest sent;
    v1::DenseSlice* d = sent.message.add_dense();
    d->set_table("fc0.w");
    d->set_offset(64);
    d->set_length(c.length);
    d->set_format(static_cast<v1::ValueFormat>(c.format));
    if (c.windowed) d->set_window_offset(0);
    sent.values = {absl::MakeConstSpan(bf.data(), bf.size())};
    v1::PushRequest got;
    ReceivedPush push;
    const absl::Status s = push.Decode(Encode(sent), &got);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.want;
    EXPECT_NE(s.message().find("push: table 'fc0.w' slice at 64"), std::string::npos) << s;
    EXPECT_NE(s.message().find(c.want), std::string::npos) << s;
  }
}

}  // namespace
}  // namespace wire
}  // namespace ps
