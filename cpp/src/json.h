#pragma once
// A small strict JSON reader and string quoting, for the safetensors header
// and the architecture in its metadata. Private to the library.
//
// It reads untrusted bytes (a model file may be truncated or corrupt), so
// every read is bounds-checked, nesting is limited (no stack overflow on
// "[[[[..."), and every error throws ModelFileError with the byte offset.

#include <string>
#include <utility>
#include <vector>

namespace rnnkit::json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
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

const char* type_name(Value::Type t);

/// Parse exactly one JSON value spanning text[0, size) (surrounding whitespace allowed).
/// Throws std::runtime_error("... at byte N") on any malformed input.
Value parse(const char* text, std::size_t size);

/// `s` as a JSON string literal, quotes included.
std::string quote(const std::string& s);

}  // namespace rnnkit::json
