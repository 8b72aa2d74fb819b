#pragma once
// SHA-256 (FIPS 180-4), for the checksum a model file carries in its metadata.
// Private to the library.

#include <cstddef>
#include <cstdint>
#include <string>

namespace rnnkit {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t n);
  std::string hex_digest();  // finishes the hash; call once

 private:
  void block(const unsigned char* p);
  std::uint32_t h_[8];
  unsigned char buf_[64];
  std::size_t used_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace rnnkit
