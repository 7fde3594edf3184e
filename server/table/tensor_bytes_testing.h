// Tests' conversion between float vectors and the wire's tensor bytes (little-endian
// float32, 4 bytes each), written out byte by byte so the tests do not share the
// server's own (memcpy) reading of them.
#ifndef PS_SERVER_TABLE_TENSOR_BYTES_TESTING_H_
#define PS_SERVER_TABLE_TENSOR_BYTES_TESTING_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ps {
namespace testing {

inline std::string Encode(const std::vector<float>& values) {
  std::string bytes(values.size() * 4, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return bytes;
}

inline std::vector<float> Decode(const std::string& bytes) {
  std::vector<float> values(bytes.size() / 4);
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) {
      bits |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[4 * i + b])) << (8 * b);
    }
    std::memcpy(&values[i], &bits, 4);
  }
  return values;
}

}  // namespace testing
}  // namespace ps

#endif  // PS_SERVER_TABLE_TENSOR_BYTES_TESTING_H_
