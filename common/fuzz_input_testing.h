// FuzzInput: reads a fuzzer's bytes as the values a fuzz target needs (numbers in a
// range, floats with the awkward ones often, short strings). Reading past the end yields
// zeros, so every input is a complete run. Header-only, for fuzz targets.
#ifndef PS_COMMON_FUZZ_INPUT_TESTING_H_
#define PS_COMMON_FUZZ_INPUT_TESTING_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

namespace ps {

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool done() const { return at_ >= size_; }

  uint8_t Byte() { return at_ < size_ ? data_[at_++] : 0; }

  // A value in [low, high] (low <= high), mostly small offsets from `low`.
  int64_t Int(int64_t low, int64_t high) {
    const uint64_t span = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
    uint64_t raw = Byte();
    if (raw >= 0xf0) {  // now and then, a wide value
      raw = 0;
      for (int i = 0; i < 8; ++i) raw = (raw << 8) | Byte();
    }
    if (span == std::numeric_limits<uint64_t>::max()) return static_cast<int64_t>(raw);
    return static_cast<int64_t>(static_cast<uint64_t>(low) + raw % (span + 1));
  }

  bool Bool() { return Byte() & 1; }

  // A float: one of the values that break arithmetic (0, -0, 1e30, 3e38, inf, NaN,
  // denormals) one time in four, else four raw bytes' float.
  float Float() {
    static constexpr float kOdd[] = {0.0f,
                                     -0.0f,
                                     1.0f,
                                     -1.0f,
                                     1e30f,
                                     3e38f,
                                     -3e38f,
                                     std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity(),
                                     std::numeric_limits<float>::quiet_NaN(),
                                     std::numeric_limits<float>::denorm_min(),
                                     1e-30f};
    const uint8_t pick = Byte();
    if (pick < 64) return kOdd[pick % (sizeof(kOdd) / sizeof(kOdd[0]))];
    uint32_t bits = 0;
    for (int i = 0; i < 4; ++i) bits = (bits << 8) | Byte();
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
  }

  // Up to `max_length` raw bytes.
  std::string Bytes(size_t max_length) {
    const size_t n = static_cast<size_t>(Int(0, static_cast<int64_t>(max_length)));
    std::string out;
    for (size_t i = 0; i < n && !done(); ++i) out.push_back(static_cast<char>(Byte()));
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t at_ = 0;
};

}  // namespace ps

#endif  // PS_COMMON_FUZZ_INPUT_TESTING_H_
