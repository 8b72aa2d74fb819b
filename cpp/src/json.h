#pragma once
// A small strict JSON reader and string quoting, for the safetensors header
// and the architecture in its metadata. Private to the library.
//
// It reads untrusted bytes (a model file may be truncated or corrupt), so
// every read is bounds-checked, nesting is limited (no stack overflow on
// "[[[[..."), and every error throws std::runtime_error with the byte offset.
//
// It is strict where JSON readers differ, so that no text means one thing to
// it and another to Python's json module or to safetensors' serde_json (which
// read the same files in rk.load): a key repeated in an object is refused
// (readers keep the first or the last), so are invalid UTF-8, lone
// surrogates, numbers beyond a double's range (Python reads 1e400 as inf),
// leading zeros, NaN and Infinity. Python's loader (rnnkit/io.py) applies the
// same rules and the same depth limit.

#include <string>
#include <utility>
#include <vector>

namespace rnnkit::json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  bool integer = false;  // Number: written without a fraction or exponent ("3", not "3.0" or "3e0")
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in file order

  const Value* find(const std::string& key) const {
    for (const auto& kv : object)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  bool is(Type t) const { return type == t; }
};

/// The most arrays and objects open at once: "[[1]]" has 2.
constexpr int kMaxDepth = 64;

const char* type_name(Value::Type t);

/// Parse exactly one JSON value spanning text[0, size) (surrounding whitespace allowed).
/// Throws std::runtime_error("invalid JSON: ... at byte N") on any malformed input.
Value parse(const char* text, std::size_t size);

/// `s` as a JSON string literal, quotes included.
std::string quote(const std::string& s);

}  // namespace rnnkit::json
