// The safetensors reader and writer of rnnkit/safetensors.h.

#include "rnnkit/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "json.h"

namespace rnnkit {

namespace {

using json::Value;

// A header larger than this is not a model file (the reference reader's limit).
constexpr std::uint64_t kMaxHeader = 100'000'000;

[[noreturn]] void fail(const std::string& what, const std::string& msg) { throw ModelFileError(what + ": " + msg); }

std::uint64_t read_u64_le(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int k = 7; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}

// A JSON number that must be a whole number in [0, limit], written as one: safetensors'
// own reader refuses 3.0, 3e0 or -0 for a size, so this one does too.
std::uint64_t whole(const Value& v, std::uint64_t limit, const std::string& what, const std::string& field) {
  if (!v.is(Value::Type::Number) || !v.integer || std::signbit(v.number) || v.number > double(limit))
    fail(what, "truncated or corrupt: " + field + " must be a whole number in 0.." + std::to_string(limit) +
                   " (the data section's size)");
  return std::uint64_t(v.number);
}

}  // namespace

Index TensorInfo::numel() const {
  // a zero anywhere first: the other dimensions of an empty tensor may multiply past an Index
  for (Index d : shape)
    if (d == 0) return 0;
  Index n = 1;
  for (Index d : shape) n *= d;
  return n;
}

std::size_t dtype_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

TensorFile TensorFile::read(const std::string& path) {
  // A folder or a device opens as a stream too, with a size that means nothing.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!ec && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    fail(path, "not a regular file (a folder or a device?)");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the model file (" + std::string(std::strerror(errno)) + ")");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) fail(path, "cannot read the model file");
  in.seekg(0, std::ios::beg);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(size));
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) fail(path, "cannot read the model file");
  return parse(std::move(bytes), path);
}

TensorFile TensorFile::parse(std::vector<unsigned char> bytes, const std::string& what) {
  TensorFile f;
  f.bytes_ = std::move(bytes);
  const std::size_t size = f.bytes_.size();
  if (size < 8) fail(what, "truncated: " + std::to_string(size) + " bytes, too short for a safetensors header");
  const std::uint64_t n = read_u64_le(f.bytes_.data());
  if (n > kMaxHeader || n > size - 8)
    fail(what, "truncated or not a safetensors file: the header claims " + std::to_string(n) + " bytes, the file has " +
                   std::to_string(size - 8) + " after the size field");
  f.data_start_ = 8 + std::size_t(n);
  const std::size_t data_size = size - f.data_start_;

  Value header;
  try {
    header = json::parse(reinterpret_cast<const char*>(f.bytes_.data()) + 8, std::size_t(n));
  } catch (const std::runtime_error& e) {
    fail(what, std::string("corrupt header (") + e.what() + ")");
  }
  if (!header.is(Value::Type::Object)) fail(what, "corrupt header: not a JSON object");

  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  for (const auto& [name, v] : header.object) {
    if (name == "__metadata__") {
      if (!v.is(Value::Type::Object)) fail(what, "corrupt header: __metadata__ is not an object");
      for (const auto& [key, val] : v.object) {
        if (!val.is(Value::Type::String)) fail(what, "corrupt header: metadata '" + key + "' is not a string");
        f.metadata_[key] = val.string;
      }
      continue;
    }
    const std::string field = "tensor '" + name + "'";
    if (!v.is(Value::Type::Object)) fail(what, "corrupt header: " + field + " is not an object");
    const Value* dtype = v.find("dtype");
    const Value* shape = v.find("shape");
    const Value* offsets = v.find("data_offsets");
    if (!dtype || !dtype->is(Value::Type::String) || !shape || !shape->is(Value::Type::Array) || !offsets ||
        !offsets->is(Value::Type::Array) || offsets->array.size() != 2)
      fail(what, "corrupt header: " + field + " needs dtype, shape and data_offsets [begin, end]");
    TensorInfo t;
    t.dtype = dtype->string;
    const std::size_t esize = dtype_size(t.dtype);
    if (!esize) fail(what, field + " has an unknown dtype '" + t.dtype + "'");
    // numel * esize must fit in the data section, which bounds every product below.
    std::uint64_t count = 1;
    for (const Value& d : shape->array) {
      const std::uint64_t dim = whole(d, data_size, what, field + "'s shape");
      t.shape.push_back(Index(dim));
      count = (dim == 0 || count == 0) ? 0 : (count > data_size / dim ? data_size + 1 : count * dim);
    }
    t.begin = whole(offsets->array[0], data_size, what, field + "'s data_offsets");
    t.end = whole(offsets->array[1], data_size, what, field + "'s data_offsets");
    if (t.end < t.begin) fail(what, "corrupt header: " + field + " ends before it begins");
    if (count > data_size || count * esize != t.end - t.begin)
      fail(what, "corrupt header: " + field + " has " + std::to_string(t.end - t.begin) + " bytes for its shape of " +
                     std::to_string(count) + " " + t.dtype + " elements");
    f.tensors_.emplace(name, t);  // a name once: the JSON reader refuses a repeated key
    ranges.emplace_back(t.begin, t.end);
  }
  // The tensors tile the data section: no gaps, no overlaps, nothing after.
  std::sort(ranges.begin(), ranges.end());
  std::size_t at = 0;
  for (const auto& [b, e] : ranges) {
    if (b != at) fail(what, "corrupt header: tensor data overlaps or leaves a gap at byte " + std::to_string(at));
    at = e;
  }
  if (at != data_size)
    fail(what, "truncated or corrupt: the tensors take " + std::to_string(at) + " bytes, the data section has " +
                   std::to_string(data_size));
  return f;
}

template <class S>
bool read_floats(const std::string& dtype, const void* bytes, Index n, S* dst) {
  const auto* src = static_cast<const unsigned char*>(bytes);
  auto convert = [&](auto stored) {  // memcpy: the bytes need not be aligned
    for (Index i = 0; i < n; ++i) {
      std::memcpy(&stored, src + sizeof(stored) * i, sizeof(stored));
      dst[i] = S(stored);
    }
  };
  if (dtype == "F32")
    convert(float());
  else if (dtype == "F64")
    convert(double());
  else
    return false;
  return true;
}

template bool read_floats<float>(const std::string&, const void*, Index, float*);
template bool read_floats<double>(const std::string&, const void*, Index, double*);

template <class S>
void TensorFile::copy_to(const std::string& name, S* dst) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw ModelFileError("no tensor '" + name + "'");
  const TensorInfo& t = it->second;
  if (!read_floats(t.dtype, bytes(t), t.numel(), dst))
    throw ModelFileError("tensor '" + name + "' has dtype " + t.dtype + ", expected F32 or F64");
}

template void TensorFile::copy_to<float>(const std::string&, float*) const;
template void TensorFile::copy_to<double>(const std::string&, double*) const;

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      header += (first ? "" : ",") + json::quote(k) + ":" + json::quote(v);
      first = false;
    }
    header += "}";
  }
  std::size_t offset = 0;
  for (const TensorRef& t : tensors) {
    const std::size_t esize = dtype_size(t.dtype);
    if (!esize) throw std::invalid_argument("tensor '" + t.name + "': unknown dtype '" + t.dtype + "'");
    std::size_t count = 1;
    std::string shape;
    for (Index d : t.shape) {
      if (d < 0) throw std::invalid_argument("tensor '" + t.name + "': negative dimension");
      count *= std::size_t(d);
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    }
    header += (header.size() > 1 ? "," : "") + json::quote(t.name) + ":{\"dtype\":\"" + t.dtype +
              "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + count * esize) + "]}";
    offset += count * esize;
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned

  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write " + tmp + " (" + std::strerror(errno) + ")");
    unsigned char size[8];
    for (int k = 0; k < 8; ++k) size[k] = static_cast<unsigned char>(std::uint64_t(header.size()) >> (8 * k));
    out.write(reinterpret_cast<const char*>(size), 8);
    out.write(header.data(), std::streamsize(header.size()));
    for (const TensorRef& t : tensors) {
      std::size_t n = dtype_size(t.dtype);
      for (Index d : t.shape) n *= std::size_t(d);
      out.write(static_cast<const char*>(t.data), std::streamsize(n));
    }
    if (!out.flush()) {
      out.close();
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path + " (" + std::strerror(errno) + ")");
  }
}

}  // namespace rnnkit
