// The JSON reader of json.h: recursive descent over a bounds-checked cursor.

#include "json.h"

#include <charconv>
#include <stdexcept>
#include <unordered_set>

namespace rnnkit::json {

namespace {

// A byte as a message shows it: 'x' when printable ASCII, else 0xNN (a message
// must stay valid UTF-8 whatever the file holds).
std::string show(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7F) return std::string("'") + c + "'";
  static const char* hex = "0123456789abcdef";
  return std::string("byte 0x") + hex[u >> 4] + hex[u & 15];
}

struct Reader {
  const char* p;
  std::size_t n, i = 0;

  [[noreturn]] void fail(const std::string& what) const { fail_at(what, i); }
  [[noreturn]] static void fail_at(const std::string& what, std::size_t at) {
    throw std::runtime_error("invalid JSON: " + what + " at byte " + std::to_string(at));
  }
  bool done() const { return i >= n; }
  char peek() const { return done() ? '\0' : p[i]; }
  bool digit() const { return !done() && p[i] >= '0' && p[i] <= '9'; }
  void skip_ws() {
    while (!done() && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) ++i;
  }
  void expect(char c) {
    if (done()) fail(std::string("expected '") + c + "', got the end of the input");
    if (p[i] != c) fail(std::string("expected '") + c + "', got " + show(p[i]));
    ++i;
  }
  void literal(const char* word) {
    for (const char* w = word; *w; ++w) expect(*w);
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      if (done()) fail("truncated \\u escape");
      const char c = p[i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else fail("bad hex digit " + show(c) + " in \\u escape");
      ++i;
    }
    return v;
  }

  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xC0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F));
      out += char(0x80 | (cp & 0x3F));
    }
  }

  // One UTF-8 sequence starting at p[i] (its lead byte >= 0x80), copied to out:
  // well-formed as Unicode defines it (no overlong forms, no surrogates, nothing past U+10FFFF).
  void utf8_sequence(std::string& out) {
    const std::size_t at = i;
    const auto lead = static_cast<unsigned char>(p[i]);
    int more = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the byte after the lead
    if (lead >= 0xC2 && lead <= 0xDF) more = 1;
    else if (lead >= 0xE0 && lead <= 0xEF) more = 2, lo = lead == 0xE0 ? 0xA0 : 0x80, hi = lead == 0xED ? 0x9F : 0xBF;
    else if (lead >= 0xF0 && lead <= 0xF4) more = 3, lo = lead == 0xF0 ? 0x90 : 0x80, hi = lead == 0xF4 ? 0x8F : 0xBF;
    else fail_at("invalid UTF-8 (" + show(p[i]) + ") in a string", at);
    for (int k = 1; k <= more; ++k) {
      if (at + std::size_t(k) >= n) fail_at("truncated UTF-8 sequence in a string", at);
      const auto c = static_cast<unsigned char>(p[at + std::size_t(k)]);
      if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF))
        fail_at("invalid UTF-8 (" + show(p[at]) + " then " + show(char(c)) + ") in a string", at);
    }
    out.append(p + at, std::size_t(more) + 1);
    i = at + std::size_t(more) + 1;
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (done()) fail("unterminated string");
      const char c = p[i];
      if (c == '"') {
        ++i;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character (" + show(c) + ") in a string");
      if (static_cast<unsigned char>(c) >= 0x80) {
        utf8_sequence(out);
        continue;
      }
      ++i;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (done()) fail("unterminated escape");
      const char e = p[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
            if (peek() != '\\' || i + 1 >= n || p[i + 1] != 'u') fail("lone high surrogate");
            i += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("lone low surrogate");
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape " + show(e));
      }
    }
  }

  // JSON's grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, read as the
  // nearest double (std::from_chars: no locale's decimal point); a magnitude past a
  // double's is refused, one below its least is 0, as Python's float() reads them.
  double number(bool& integer) {
    const std::size_t start = i;
    if (peek() == '-') ++i;
    auto digits = [&] {
      if (!digit()) fail(done() ? "expected a digit, got the end of the input" : "expected a digit, got " + show(p[i]));
      while (digit()) ++i;
    };
    const std::size_t int_start = i;
    if (peek() == '0') {
      ++i;
      if (digit()) fail("leading zero in a number");
    } else {
      digits();
    }
    const std::size_t int_digits = i - int_start;
    integer = true;
    long exponent = 0;  // the written exponent, saturated (its size only says over- or underflow)
    if (peek() == '.') {
      ++i;
      digits();
      integer = false;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i;
      const bool negative = peek() == '-';
      if (peek() == '+' || peek() == '-') ++i;
      const std::size_t exp_start = i;
      digits();
      for (std::size_t k = exp_start; k < i && exponent < 100000; ++k) exponent = exponent * 10 + (p[k] - '0');
      if (negative) exponent = -exponent;
      integer = false;
    }
    double v = 0;
    const auto r = std::from_chars(p + start, p + i, v);
    if (r.ec == std::errc::result_out_of_range) {
      // The value's magnitude is about 10^(position of its first non-zero digit + exponent).
      long magnitude = long(int_digits) - 1;
      const char* d = p + int_start;
      if (int_digits == 1 && *d == '0') {  // 0.000ddd
        magnitude = 0;
        for (const char* q = d + 2; q < p + i && *q == '0'; ++q) --magnitude;
        --magnitude;
      }
      if (magnitude + exponent > 0) fail_at("number out of range", start);
      v = p[start] == '-' ? -0.0 : 0.0;
    } else if (r.ec != std::errc() || r.ptr != p + i) {
      fail_at("bad number", start);
    }
    return v;
  }

  // A value; `depth`: the arrays and objects open around it.
  Value value(int depth) {
    skip_ws();
    Value v;
    const char c = peek();
    if ((c == '{' || c == '[') && depth >= kMaxDepth)
      fail("nesting deeper than " + std::to_string(kMaxDepth) + " arrays and objects");
    if (c == '{') {
      v.type = Value::Type::Object;
      ++i;
      skip_ws();
      if (peek() == '}') {
        ++i;
        return v;
      }
      std::unordered_set<std::string> keys;
      for (;;) {
        skip_ws();
        const std::size_t key_at = i;
        std::string key = string();
        if (!keys.insert(key).second) fail_at("duplicate key " + quote(key), key_at);
        skip_ws();
        expect(':');
        v.object.emplace_back(std::move(key), value(depth + 1));
        skip_ws();
        if (peek() == ',') {
          ++i;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.type = Value::Type::Array;
      ++i;
      skip_ws();
      if (peek() == ']') {
        ++i;
        return v;
      }
      for (;;) {
        v.array.push_back(value(depth + 1));
        skip_ws();
        if (peek() == ',') {
          ++i;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.type = Value::Type::String;
      v.string = string();
      return v;
    }
    if (c == 't') {
      literal("true");
      v.type = Value::Type::Bool;
      v.boolean = true;
      return v;
    }
    if (c == 'f') {
      literal("false");
      v.type = Value::Type::Bool;
      return v;
    }
    if (c == 'n') {
      literal("null");
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Value::Type::Number;
      v.number = number(v.integer);
      return v;
    }
    if (done()) fail("unexpected end of input");
    fail("unexpected character " + show(c));
  }
};

}  // namespace

const char* type_name(Value::Type t) {
  switch (t) {
    case Value::Type::Null: return "null";
    case Value::Type::Bool: return "a boolean";
    case Value::Type::Number: return "a number";
    case Value::Type::String: return "a string";
    case Value::Type::Array: return "a list";
    case Value::Type::Object: return "an object";
  }
  return "?";
}

Value parse(const char* text, std::size_t size) {
  Reader r{text, size};
  Value v = r.value(0);
  r.skip_ws();
  if (!r.done()) r.fail("trailing characters");
  return v;
}

std::string quote(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20) out += std::string("\\u00") + hex[u >> 4] + hex[u & 15];
    else out += c;
  }
  return out + "\"";
}

}  // namespace rnnkit::json
