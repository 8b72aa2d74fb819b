#pragma once
// safetensors files (the format rk.save writes): an 8-byte little-endian
// header size N, N bytes of JSON
//
//   {"__metadata__": {"key": "value", ...},
//    "name": {"dtype": "F32", "shape": [4, 3], "data_offsets": [begin, end]}, ...}
//
// then the tensors' bytes, C order, little-endian, back to back; offsets count
// from the first byte after the header.
//
// The reader trusts nothing in the file: every size and offset is checked
// against the file's real length before anything is read, and the tensors
// must tile the data section exactly (as the reference Rust reader demands).
// Any problem throws ModelFileError with a message that says what is wrong.

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"

namespace rnnkit {

/// A model file that cannot be read or used: missing, truncated, corrupt, foreign, or of another version.
class ModelFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TensorInfo {
  std::string dtype;          // "F32", "F64", "I64", "I32", ...
  std::vector<Index> shape;
  std::size_t begin = 0;      // byte range in the data section
  std::size_t end = 0;
  Index numel() const;
};

/// A whole safetensors file in memory, checked.
class TensorFile {
 public:
  /// Read and check `path`. Throws ModelFileError (missing, truncated, malformed).
  static TensorFile read(const std::string& path);
  /// Check and take `bytes` (the whole file's content); `what` names it in error messages.
  static TensorFile parse(std::vector<unsigned char> bytes, const std::string& what);

  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  /// The tensor's bytes (end - begin of them).
  const unsigned char* bytes(const TensorInfo& t) const { return bytes_.data() + data_start_ + t.begin; }
  /// Copy a floating-point tensor (F32 or F64) into dst, converting to S. numel() elements.
  template <class S>
  void copy_to(const std::string& name, S* dst) const;

 private:
  std::vector<unsigned char> bytes_;
  std::size_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorInfo> tensors_;
};

/// One tensor to write: its bytes are numel(shape) elements of `dtype` at `data`.
struct TensorRef {
  std::string name;
  std::string dtype;  // "F32", "F64", "I64" or "I32"
  std::vector<Index> shape;
  const void* data = nullptr;
};

/// Convert n elements of a floating-point tensor's bytes ("F32" or "F64", little-endian, any
/// alignment) to S in dst. False (and nothing written) for any other dtype.
template <class S>
bool read_floats(const std::string& dtype, const void* bytes, Index n, S* dst);

/// Bytes per element of a safetensors dtype name; 0 if this reader does not know it.
std::size_t dtype_size(const std::string& dtype);

/// Write a safetensors file atomically (a temporary file in the same folder, then renamed).
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace rnnkit
