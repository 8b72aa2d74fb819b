// The architecture of a model file: the table of layer classes and their
// options (rnnkit/architecture.h), a model's JSON read against it into
// layers, each layer's tensors taken from the file by PyTorch's names, and
// each layer's summary line.
//
// Python's rk.load reads the same table (python/rnnkit/architecture.py) and
// writes the same messages, so the two loaders agree on every file.

#include "rnnkit/architecture.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <type_traits>

#include "json.h"
#include "model_layers.h"

namespace rnnkit {

namespace arch {

namespace {

Option option(std::string key, Type type) {
  Option o;
  o.key = std::move(key), o.type = type;
  return o;
}
Option integer(std::string key, double minimum, double fallback, Shown shown = Shown::NotDefault) {
  Option o = option(std::move(key), Type::Int);
  o.default_number = fallback, o.minimum = minimum, o.maximum = kMaxInt, o.shown = shown;
  return o;
}
Option size(std::string key) {  // a required size, shown as a positional argument
  Option o = integer(std::move(key), 1, 0, Shown::Positional);
  o.required = true;
  return o;
}
Option boolean(std::string key, bool fallback, Shown shown = Shown::NotDefault) {
  Option o = option(std::move(key), Type::Bool);
  o.default_number = fallback, o.shown = shown;
  return o;
}
Option fraction(std::string key, double fallback, Shown shown) {  // a number in [0, 1)
  Option o = option(std::move(key), Type::Number);
  o.default_number = fallback, o.minimum = 0, o.maximum = 1, o.shown = shown;
  return o;
}
Option choice(std::string key, std::vector<std::string> allowed, Shown shown = Shown::NotDefault) {
  Option o = option(std::move(key), Type::String);
  o.default_string = allowed.front(), o.allowed = std::move(allowed), o.shown = shown;
  return o;
}

}  // namespace

const std::vector<LayerClass>& table() {
  static const std::vector<LayerClass> classes = [] {
    const Option dtype = choice("dtype", {"float32", "float64"}, Shown::Never);
    // the weight matrices' storage (quant.h); the rest of the layer stays float32
    const Option precision = choice("precision", {"float32", "int8", "bf16"});
    // PyTorch's recurrent options; the summary shows them in this order when not default
    auto recurrent = [&](const char* name, std::vector<Option> own, std::vector<Check> checks) {
      std::vector<Option> o{size("input_size"),
                            size("hidden_size"),
                            integer("num_layers", 1, 1),
                            boolean("bias", true),
                            boolean("batch_first", false, Shown::Never),
                            fraction("dropout", 0, Shown::Never),  // training only
                            boolean("bidirectional", false)};
      o.insert(o.end(), own.begin(), own.end());
      o.push_back(precision);
      o.push_back(dtype);
      return LayerClass{name, Role::Recurrent, std::move(o), std::move(checks), "input_size"};
    };
    // a pooling layer's layout is the recurrent layer's before it: these are not read
    const std::vector<Option> pool{boolean("batch_first", true, Shown::Never),
                                   boolean("bidirectional", false, Shown::Never)};
    Option padding_idx = option("padding_idx", Type::IntOrNull);
    padding_idx.minimum = -kMaxInt, padding_idx.maximum = kMaxInt;  // then IndexInto bounds it
    return std::vector<LayerClass>{
        {"Embedding", Role::Embedding, {size("num_embeddings"), size("embedding_dim"), padding_idx, dtype},
         {{CheckKind::IndexInto, "padding_idx", "num_embeddings"}}, ""},
        recurrent("RNN", {choice("nonlinearity", {"tanh", "relu"})}, {}),
        recurrent("LSTM", {integer("proj_size", 0, 0), boolean("peepholes", false)},
                  {{CheckKind::SmallerThan, "proj_size", "hidden_size"}}),
        recurrent("GRU", {boolean("reset_after", true)}, {}),
        {"Linear", Role::Linear, {size("in_features"), size("out_features"), boolean("bias", true), precision, dtype}, {},
         "in_features"},
        {"LastStep", Role::Pool, pool, {}, ""},
        {"MeanPool", Role::Pool, pool, {}, ""},
        {"Dropout", Role::Dropout, {fraction("p", 0.5, Shown::Always)}, {}, ""},  // the identity at inference
    };
  }();
  return classes;
}

const LayerClass* find(const std::string& name) {
  for (const LayerClass& c : table())
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace arch

namespace detail {

namespace {

using json::Value;

// A number as messages and summary lines write it (Python's loader writes the
// same): whole numbers in full, others to 6 significant digits.
std::string number_str(double v) {
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%.0f", v == 0 ? 0.0 : v);
  else
    std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// "\"a\", \"b\" or \"c\""
std::string alternatives(const std::vector<std::string>& allowed) {
  std::string s;
  for (std::size_t i = 0; i < allowed.size(); ++i)
    s += (i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + json::quote(allowed[i]);
  return s;
}

Value default_of(const arch::Option& o) {
  Value v;
  switch (o.type) {
    case arch::Type::Bool: v.type = Value::Type::Bool, v.boolean = o.default_number != 0; break;
    case arch::Type::Int:
    case arch::Type::Number: v.type = Value::Type::Number, v.number = o.default_number; break;
    case arch::Type::String: v.type = Value::Type::String, v.string = o.default_string; break;
    case arch::Type::IntOrNull: break;
  }
  return v;
}

// Why `v` is not a value of option `o`, or "" when it is one.
std::string refusal(const arch::Option& o, const Value& v) {
  const std::string opt = "option '" + o.key + "' must be ";
  const std::string got = v.is(Value::Type::Number) ? number_str(v.number)
                          : v.is(Value::Type::String)                ? json::quote(v.string)
                          : v.is(Value::Type::Bool)                  ? (v.boolean ? "true" : "false")
                                                                     : json::type_name(v.type);
  const bool whole = v.is(Value::Type::Number) && v.number == std::floor(v.number);
  switch (o.type) {
    case arch::Type::Bool:
      if (!v.is(Value::Type::Bool)) return opt + "true or false, got " + got;
      break;
    case arch::Type::Int:
      if (!whole || v.number < o.minimum) return opt + "a whole number >= " + number_str(o.minimum) + ", got " + got;
      if (v.number > o.maximum) return opt + "a whole number <= " + number_str(o.maximum) + ", got " + got;
      break;
    case arch::Type::IntOrNull:
      if (!v.is(Value::Type::Null) && (!whole || v.number < o.minimum || v.number > o.maximum))
        return opt + "a whole number or null, got " + got;
      break;
    case arch::Type::Number:
      if (!v.is(Value::Type::Number)) return opt + "a number, got " + got;
      if (!(v.number >= o.minimum && v.number < o.maximum))
        return opt + "in [" + number_str(o.minimum) + ", " + number_str(o.maximum) + "), got " + got;
      break;
    case arch::Type::String:
      if (!o.allowed.empty()) {
        bool ok = false;
        for (const std::string& a : o.allowed) ok = ok || (v.is(Value::Type::String) && v.string == a);
        if (!ok) return opt + alternatives(o.allowed) + ", got " + got;
      } else if (!v.is(Value::Type::String)) {
        return opt + "a string, got " + got;
      }
      break;
  }
  return "";
}

// The option's value as the summary line writes it: Python's literal.
std::string literal(const Value& v) {
  switch (v.type) {
    case Value::Type::Null: return "None";
    case Value::Type::Bool: return v.boolean ? "True" : "False";
    case Value::Type::Number: return number_str(v.number);
    case Value::Type::String: return "'" + v.string + "'";
    default: return "?";
  }
}

bool same(const Value& a, const Value& b) {
  return a.type == b.type && a.boolean == b.boolean && a.number == b.number && a.string == b.string;
}

// One layer entry read against the table: every option of its class, given or default.
struct LayerConfig {
  const arch::LayerClass* cls = nullptr;
  std::vector<Value> values;  // [option of *cls]
  std::string where;          // "layer 1 (LSTM)", for messages
  std::string what;           // the file, for messages

  [[noreturn]] void fail(const std::string& msg) const { throw ModelFileError(what + ": " + where + ": " + msg); }

  const Value& get(const std::string& key) const {
    for (std::size_t i = 0; i < cls->options.size(); ++i)
      if (cls->options[i].key == key) return values[i];
    throw std::logic_error("the table of " + cls->name + " has no option " + key);
  }
  Index integer(const std::string& key) const { return Index(get(key).number); }
  bool boolean(const std::string& key) const { return get(key).boolean; }
  double number(const std::string& key) const { return get(key).number; }
  const std::string& string(const std::string& key) const { return get(key).string; }
  // the layer's weight matrices' precision (float32 for a class without the option)
  Precision precision() const {
    for (std::size_t i = 0; i < cls->options.size(); ++i)
      if (cls->options[i].key == "precision") return precision_from_name(values[i].string);
    return Precision::Float;
  }

  // "LSTM(3, 8, num_layers=2)"
  std::string summary() const {
    std::string s = cls->name + "(";
    bool first = true;
    for (std::size_t i = 0; i < cls->options.size(); ++i) {
      const arch::Option& o = cls->options[i];
      if (o.shown == arch::Shown::Never || (o.shown == arch::Shown::NotDefault && same(values[i], default_of(o))))
        continue;
      s += (first ? "" : ", ") + (o.shown == arch::Shown::Positional ? "" : o.key + "=") + literal(values[i]);
      first = false;
    }
    return s + ")";
  }
};

// Refuse a key of `obj` other than `keys`: what this reader would ignore could be meant
// to change the model (a reader that knows it would compute something else).
void only_keys(const Value& obj, std::initializer_list<const char*> keys, const std::string& where) {
  for (const auto& kv : obj.object) {
    bool known = false;
    std::string list;
    for (const char* k : keys) {
      known = known || kv.first == k;
      list += (list.empty() ? "" : " and ") + json::quote(k);
    }
    if (!known) throw ModelFileError(where + " has an unknown key " + json::quote(kv.first) + "; it takes " + list);
  }
}

// The class and options of layer `index`, checked against the table: each option's
// type and range, no option the table does not list, the class's checks across options.
LayerConfig read_config(const Value& entry, Index index, const std::string& what) {
  const std::string at = "layer " + std::to_string(index);
  if (!entry.is(Value::Type::Object)) throw ModelFileError(what + ": " + at + " is not an object");
  const Value* cls = entry.find("class");
  const Value* cfg = entry.find("config");
  if (!cls || !cls->is(Value::Type::String) || !cfg || !cfg->is(Value::Type::Object))
    throw ModelFileError(what + ": " + at + " needs a \"class\" name and a \"config\" object");
  only_keys(entry, {"class", "config"}, what + ": " + at);
  LayerConfig c;
  c.cls = arch::find(cls->string);
  if (!c.cls) {
    std::string known;
    for (const arch::LayerClass& k : arch::table()) known += (known.empty() ? "" : ", ") + k.name;
    throw ModelFileError(what + ": " + at + " is an unknown layer " + json::quote(cls->string) +
                         "; the layers are " + known);
  }
  c.where = at + " (" + c.cls->name + ")";
  c.what = what;
  for (const arch::Option& o : c.cls->options) {
    const Value* v = cfg->find(o.key);
    if (!v && o.required) c.fail("option '" + o.key + "' is missing");
    c.values.push_back(v ? *v : default_of(o));
    const std::string why = refusal(o, c.values.back());
    if (!why.empty()) c.fail(why);
  }
  for (const auto& kv : cfg->object) {  // each key once: the JSON reader refuses a repeated one
    bool known = false;
    for (const arch::Option& o : c.cls->options) known = known || o.key == kv.first;
    if (!known) {
      std::string keys;
      for (const arch::Option& o : c.cls->options) keys += (keys.empty() ? "" : ", ") + o.key;
      c.fail("unknown option '" + kv.first + "'; " + c.cls->name + " takes " + keys);
    }
  }
  for (const arch::Check& k : c.cls->checks) {
    const Value& v = c.get(k.option);
    const double other = c.number(k.other);
    switch (k.kind) {
      case arch::CheckKind::SmallerThan:
        if (v.number != 0 && v.number >= other)
          c.fail(k.option + " must be smaller than " + k.other + " (" + number_str(other) + "), got " +
                 number_str(v.number));
        break;
      case arch::CheckKind::IndexInto:
        if (!v.is(Value::Type::Null) && (v.number < -other || v.number >= other))
          c.fail(k.option + " must be in " + number_str(-other) + ".." + number_str(other - 1) + " (" + k.other +
                 " is " + number_str(other) + "), got " + number_str(v.number));
        break;
    }
  }
  return c;
}

// The stack a recurrent layer's options describe.
StackSpec stack_spec(const LayerConfig& c) {
  const std::string& name = c.cls->name;
  StackSpec s;
  s.cell = name == "LSTM" ? CellType::LSTM : name == "GRU" ? CellType::GRU : CellType::RNN_TANH;
  if (name == "RNN" && c.string("nonlinearity") == "relu") s.cell = CellType::RNN_RELU;
  s.input_size = c.integer("input_size");
  s.hidden_size = c.integer("hidden_size");
  s.num_layers = c.integer("num_layers");
  s.bias = c.boolean("bias");
  s.bidirectional = c.boolean("bidirectional");
  if (name == "LSTM") s.proj_size = c.integer("proj_size");
  if (name == "LSTM") s.peepholes = c.boolean("peepholes");
  if (name == "GRU") s.reset_after = c.boolean("reset_after");
  try {
    s.validate();
  } catch (const std::invalid_argument& e) {
    c.fail(e.what());
  }
  return s;
}

// "(3, 4)", "(4,)", "()": a shape as Python writes a tuple.
std::string shape_str(const std::vector<Index>& s) {
  std::string o = "(";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + (s.size() == 1 ? ",)" : ")");
}

// A tensor a layer needs.
struct Needed {
  std::string name;  // with the layer's prefix: "1.weight_ih_l0"
  std::vector<Index> shape;
  std::string dtype;  // "I8" or "BF16" for a reduced-precision weight matrix, "" for F32 / F64
};

// A weight matrix of a recurrent stack, the tensors a reduced precision stores.
bool is_matrix(const std::string& param) {
  return param.rfind("weight_ih", 0) == 0 || param.rfind("weight_hh", 0) == 0 || param.rfind("weight_hr", 0) == 0;
}

// A reduced-precision matrix's tensors: its values, and for int8 its rows' scales (name + "_scale").
void add_matrix(std::vector<Needed>& out, const std::string& name, Index rows, Index cols, Precision p) {
  if (p == Precision::Float) {
    out.push_back({name, {rows, cols}, ""});
    return;
  }
  out.push_back({name, {rows, cols}, p == Precision::Int8 ? "I8" : "BF16"});
  if (p == Precision::Int8) out.push_back({name + "_scale", {rows}, ""});
}

// How many tensors the layer needs, in closed form: a file claiming 2^31 layers is
// refused on this count, before anything is listed or allocated for them.
Index tensor_count(const LayerConfig& c) {
  switch (c.cls->role) {
    case arch::Role::Recurrent: {  // int8: a scale beside each weight matrix
      const StackSpec s = stack_spec(c);
      const Index scales = c.precision() == Precision::Int8 ? s.num_layers * s.directions() * (2 + (s.proj_size > 0)) : 0;
      return s.num_tensors() + scales;
    }
    case arch::Role::Embedding: return 1;
    case arch::Role::Linear: return (c.boolean("bias") ? 2 : 1) + (c.precision() == Precision::Int8);
    case arch::Role::Pool:
    case arch::Role::Dropout: return 0;
  }
  return 0;
}

// The tensors the layer needs, in the order its buffer holds them. Only asked for once
// tensor_count() is within the file's tensors, so the list is as long as the file's.
std::vector<Needed> needed_tensors(const LayerConfig& c, const std::string& prefix) {
  std::vector<Needed> out;
  switch (c.cls->role) {
    case arch::Role::Recurrent:
      for (const ParamInfo& p : stack_spec(c).param_shapes()) {
        if (is_matrix(p.name))
          add_matrix(out, prefix + p.name, p.rows, p.cols, c.precision());
        else
          out.push_back({prefix + p.name, p.cols ? std::vector<Index>{p.rows, p.cols} : std::vector<Index>{p.rows}, ""});
      }
      break;
    case arch::Role::Embedding:
      out.push_back({prefix + "weight", {c.integer("num_embeddings"), c.integer("embedding_dim")}, ""});
      break;
    case arch::Role::Linear:
      add_matrix(out, prefix + "weight", c.integer("out_features"), c.integer("in_features"), c.precision());
      if (c.boolean("bias")) out.push_back({prefix + "bias", {c.integer("out_features")}, ""});
      break;
    case arch::Role::Pool:
    case arch::Role::Dropout: break;
  }
  return out;
}

// A layer's reduced-precision tensors as read, by name, for its packing (LowpTensors).
struct LowpStore {
  std::map<std::string, std::vector<std::int8_t>> int8;
  std::map<std::string, std::vector<float>> scale;
  std::map<std::string, std::vector<Bf16>> bf16;
  const void* find(const std::string& name) const {
    if (auto it = int8.find(name); it != int8.end()) return it->second.data();
    if (auto it = scale.find(name); it != scale.end()) return it->second.data();
    if (auto it = bf16.find(name); it != bf16.end()) return it->second.data();
    return nullptr;
  }
};

// The file's tensors by name, checked against what the layers need before any is
// copied (check), then copied one by one into the layers' buffers (copy).
struct TensorTable {
  const std::string& what;
  std::map<std::string, const TensorRef*> by_name;
  bool float32 = false;  // values must be finite in float32: the model's dtype, or the runtime's

  TensorTable(const std::vector<TensorRef>& refs, const std::string& what_) : what(what_) {
    for (const TensorRef& r : refs)
      if (!by_name.emplace(r.name, &r).second) throw ModelFileError(what + ": tensor '" + r.name + "' is given twice");
  }

  // Every tensor needed is there, with its shape and a floating-point dtype, and the file
  // holds no other. Reads no tensor's data; after it each tensor's size is the file's.
  void check(const std::vector<LayerConfig>& configs, const std::vector<std::string>& prefixes) const {
    const Index have = Index(by_name.size());
    Index total = 0;  // at most have + a layer's count: no overflow
    for (std::size_t i = 0; i < configs.size(); ++i) {
      const Index count = tensor_count(configs[i]);
      total += count;
      if (total > have)
        throw ModelFileError(what + ": layer " + std::to_string(i) + " (" + configs[i].summary() + ") needs " +
                             std::to_string(count) + " tensors" +
                             (total > count ? ", " + std::to_string(total) + " with the layers before it" : "") +
                             "; the file has " + std::to_string(have));
    }
    std::set<std::string> used;
    for (std::size_t i = 0; i < configs.size(); ++i)
      for (const Needed& n : needed_tensors(configs[i], prefixes[i])) {
        const auto it = by_name.find(n.name);
        if (it == by_name.end()) throw ModelFileError(what + ": tensor '" + n.name + "' is missing");
        const TensorRef& t = *it->second;
        if (t.shape != n.shape)
          throw ModelFileError(what + ": tensor '" + n.name + "' has shape " + shape_str(t.shape) +
                               ", the architecture needs " + shape_str(n.shape));
        if (!n.dtype.empty() && t.dtype != n.dtype)
          throw ModelFileError(what + ": tensor '" + n.name + "' has dtype " + t.dtype + ", expected " + n.dtype);
        if (n.dtype.empty() && t.dtype != "F32" && t.dtype != "F64")
          throw ModelFileError(what + ": tensor '" + n.name + "' has dtype " + t.dtype + ", expected F32 or F64");
        used.insert(n.name);
      }
    for (const auto& [name, t] : by_name)
      if (!used.count(name)) throw ModelFileError(what + ": tensor '" + name + "' belongs to no layer");
  }

  // Tensor `name` (checked) converted into dst, once every value is finite: NaN or
  // infinity in a weight makes every output NaN, and a float64 value past float32's
  // range would become one in float32.
  template <class S>
  void copy(const std::string& name, S* dst) const {
    const TensorRef& t = *by_name.at(name);
    Index n = 1;
    for (Index d : t.shape) n *= d;
    const auto* bytes = static_cast<const unsigned char*>(t.data);
    for (Index i = 0; i < n; ++i) {
      double v;
      if (t.dtype == "F32") {
        float f;
        std::memcpy(&f, bytes + 4 * i, 4);  // the bytes need not be aligned
        v = f;
      } else {
        std::memcpy(&v, bytes + 8 * i, 8);
      }
      if (!std::isfinite(v))
        throw ModelFileError(what + ": tensor '" + name + "' has a NaN or infinite value (element " +
                             std::to_string(i) + ")");
      if (float32 && !std::isfinite(float(v)))
        throw ModelFileError(what + ": tensor '" + name + "' has a value beyond float32's range (element " +
                             std::to_string(i) + ")");
    }
    read_floats(t.dtype, t.data, n, dst);
  }

  // An int8 weight matrix (checked) into dst, its values in -127..127 (the kernels' range).
  void copy_int8(const std::string& name, std::int8_t* dst) const {
    const TensorRef& t = *by_name.at(name);
    const Index n = t.shape[0] * t.shape[1];
    std::memcpy(dst, t.data, std::size_t(n));
    for (Index i = 0; i < n; ++i)
      if (dst[i] < -127)
        throw ModelFileError(what + ": tensor '" + name + "' has the value -128 (element " + std::to_string(i) +
                             "): int8 weights are in -127..127");
  }
  // A bfloat16 weight matrix (checked) into dst, every value finite.
  void copy_bf16(const std::string& name, Bf16* dst) const {
    const TensorRef& t = *by_name.at(name);
    const Index n = t.shape[0] * t.shape[1];
    std::memcpy(dst, t.data, std::size_t(2 * n));
    for (Index i = 0; i < n; ++i)
      if ((dst[i].bits & 0x7f80u) == 0x7f80u)
        throw ModelFileError(what + ": tensor '" + name + "' has a NaN or infinite value (element " +
                             std::to_string(i) + ")");
  }
  // An int8 matrix's row scales (checked): finite, >= 0.
  void copy_scale(const std::string& name, float* dst) const {
    copy(name, dst);
    const TensorRef& t = *by_name.at(name);
    for (Index i = 0; i < t.shape[0]; ++i)
      if (dst[i] < 0)
        throw ModelFileError(what + ": tensor '" + name + "' has a negative scale (element " + std::to_string(i) + ")");
  }

  // A weight matrix (rows, cols) in precision p into dst as float (int8: q·scale), and
  // its stored values kept for the packing in `store` (under the name without prefix).
  template <class S>
  void copy_matrix(const std::string& prefix, const std::string& name, Index rows, Index cols, Precision p, S* dst,
                   LowpStore& store) const {
    const std::string full = prefix + name;
    if (p == Precision::Float) return copy(full, dst);
    if (p == Precision::Int8) {
      auto& q = store.int8[name];
      auto& sc = store.scale[name + "_scale"];
      q.resize(std::size_t(rows * cols)), sc.resize(std::size_t(rows));
      copy_int8(full, q.data());
      copy_scale(full + "_scale", sc.data());
      for (Index r = 0; r < rows; ++r)
        for (Index k = 0; k < cols; ++k) dst[r * cols + k] = S(float(q[std::size_t(r * cols + k)]) * sc[std::size_t(r)]);
    } else {
      auto& b = store.bf16[name];
      b.resize(std::size_t(rows * cols));
      copy_bf16(full, b.data());
      for (Index i = 0; i < rows * cols; ++i) dst[i] = S(from_bf16(b[std::size_t(i)]));
    }
  }
};

// The layer `c` describes, with its tensors copied from the table (checked);
// `features`: what the layer before gives per row (read_layers has checked that the two fit).
template <class S>
Layer<S> make_layer(const LayerConfig& c, const std::string& prefix, Index features, const TensorTable& tensors) {
  Layer<S> L;
  L.summary = c.summary();
  switch (c.cls->role) {
    case arch::Role::Recurrent: {
      L.kind = Kind::Recurrent;
      StackSpec& s = L.spec;
      s = stack_spec(c);
      L.batch_first = c.boolean("batch_first");
      L.in = s.input_size;
      L.out = s.directions() * s.out_size();
      L.params.resize(std::size_t(s.num_params()));
      const Precision prec = c.precision();
      if (prec != Precision::Float && !std::is_same_v<S, float>)
        c.fail(std::string("its ") + precision_name(prec) + " weights run in float32: load the model as float32");
      LowpStore store;
      for (const ParamInfo& p : s.param_layout()) {
        if (is_matrix(p.name))
          tensors.copy_matrix(prefix, p.name, p.rows, p.cols, prec, L.params.data() + p.offset, store);
        else
          tensors.copy(prefix + p.name, L.params.data() + p.offset);
      }
      if (prec != Precision::Float) {
        L.lowp = std::make_shared<const LowpStack>(
            lowp_stack(s, prec, [&](const std::string& name) { return store.find(name); }));
      } else if (!s.bidirectional) {
        for (Index l = 0; l < s.num_layers; ++l) L.step.push_back(step_weights(s, L.params.data(), l));
      }
      break;
    }
    case arch::Role::Embedding:
      L.kind = Kind::Embedding;
      L.in = c.integer("num_embeddings");
      L.out = c.integer("embedding_dim");
      L.params.resize(std::size_t(L.in * L.out));
      tensors.copy(prefix + "weight", L.params.data());
      break;
    case arch::Role::Linear: {
      L.kind = Kind::Linear;
      L.in = c.integer("in_features");
      L.out = c.integer("out_features");
      L.bias = c.boolean("bias");
      L.params.resize(std::size_t(L.out * L.in + (L.bias ? L.out : 0)));
      const Precision prec = c.precision();
      if (prec != Precision::Float && !std::is_same_v<S, float>)
        c.fail(std::string("its ") + precision_name(prec) + " weights run in float32: load the model as float32");
      LowpStore store;
      tensors.copy_matrix(prefix, "weight", L.out, L.in, prec, L.params.data(), store);
      if (L.bias) tensors.copy(prefix + "bias", L.params.data() + L.out * L.in);
      if (prec == Precision::Float)
        L.linear_w = packed_transpose(L.params.data(), L.out, L.in);
      else
        L.lowp_linear = std::make_shared<const LowpLinear>(
            lowp_linear(prec, L.out, L.in, store.find("weight"), static_cast<const float*>(store.find("weight_scale"))));
      break;
    }
    case arch::Role::Pool:
      L.kind = c.cls->name == "LastStep" ? Kind::LastStep : Kind::MeanPool;
      L.in = L.out = features;
      break;
    case arch::Role::Dropout:
      L.kind = Kind::Dropout;
      L.in = L.out = features;
      break;
  }
  return L;
}

// The layer entries of an architecture: {"class": "Sequential", "config": {"layers": [...]}}
// or one layer alone.
std::vector<const Value*> layer_entries(const Value& arch, const std::string& what) {
  const Value* cls = arch.is(Value::Type::Object) ? arch.find("class") : nullptr;
  const Value* cfg = arch.is(Value::Type::Object) ? arch.find("config") : nullptr;
  if (!cls || !cls->is(Value::Type::String) || !cfg || !cfg->is(Value::Type::Object))
    throw ModelFileError(what + ": the architecture must be {\"class\": ..., \"config\": {...}}");
  only_keys(arch, {"class", "config"}, what + ": the architecture");
  if (cls->string != "Sequential") return {&arch};
  const Value* layers = cfg->find("layers");
  if (!layers || !layers->is(Value::Type::Array) || layers->array.empty())
    throw ModelFileError(what + ": a Sequential architecture needs a non-empty \"layers\" list");
  only_keys(*cfg, {"layers"}, what + ": the Sequential's config");
  std::vector<const Value*> entries;
  for (const Value& v : layers->array) entries.push_back(&v);
  return entries;
}

// Every layer's config, and how the layers fit together: each layer's input is
// what the one before gives, an Embedding comes first, a sequence is pooled at
// most once and nothing recurrent follows, the recurrent layers share one
// batch_first and every layer one dtype (Python's rk.load checks the same).
// The runtime must also know its input's size, from a layer with one before any
// pooling; Python, which runs a lone Dropout or MeanPool on any features, does not ask.
std::vector<LayerConfig> read_layers(const std::vector<const Value*>& entries, const std::string& what,
                                     std::string& model_dtype) {
  std::vector<LayerConfig> configs;
  Index features = -1;  // features per row so far; -1 before the first sized layer
  bool pooled = false;
  const Value* batch_first = nullptr;
  const Value* dtype = nullptr;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    LayerConfig c = read_config(*entries[i], Index(i), what);
    const arch::Role role = c.cls->role;
    if (!c.cls->input.empty() && features >= 0 && features != c.integer(c.cls->input))
      c.fail(c.cls->input + " is " + std::to_string(c.integer(c.cls->input)) + " but the layer before gives " +
             std::to_string(features) + " features");
    if (role == arch::Role::Embedding && i != 0) c.fail("an Embedding must be the first layer");
    if (role == arch::Role::Pool && features < 0) c.fail("a pooling layer needs a sequence before it");
    const std::string at = what + ": layer " + std::to_string(i) + " (" + c.summary() + "): ";
    if (role == arch::Role::Recurrent) {
      if (pooled) throw ModelFileError(at + "a recurrent layer cannot follow LastStep or MeanPool");
      const Value& bf = c.get("batch_first");
      if (batch_first && bf.boolean != batch_first->boolean)
        throw ModelFileError(at + "the recurrent layers disagree on batch_first, so the Python model feeds one "
                                  "layer's time axis to the next as its batch axis; refusing to guess");
      batch_first = &bf;
    }
    if (role == arch::Role::Pool) {
      if (pooled) throw ModelFileError(at + "the sequence is already pooled");
      pooled = true;
    }
    for (std::size_t k = 0; k < c.cls->options.size(); ++k)
      if (c.cls->options[k].key == "dtype") {
        const Value& d = c.values[k];
        if (dtype && d.string != dtype->string)
          throw ModelFileError(at + "dtype " + json::quote(d.string) + " differs from the layers' before it (" +
                               json::quote(dtype->string) + "): a model has one dtype");
        dtype = &d;
      }
    if (c.precision() != Precision::Float && c.string("dtype") != "float32")
      throw ModelFileError(at + "precision " + json::quote(precision_name(c.precision())) +
                           " runs in float32: its dtype must be \"float32\"");
    switch (role) {
      case arch::Role::Recurrent: {
        const StackSpec s = stack_spec(c);
        features = s.directions() * s.out_size();
        break;
      }
      case arch::Role::Embedding: features = c.integer("embedding_dim"); break;
      case arch::Role::Linear: features = c.integer("out_features"); break;
      case arch::Role::Pool:
      case arch::Role::Dropout: break;
    }
    configs.push_back(std::move(c));
  }
  if (features < 0) throw ModelFileError(what + ": the model has no layer with a size (only Dropout)");
  model_dtype = dtype ? dtype->string : "float32";
  return configs;
}


// An architecture read and its tensors checked against it: what build() makes layers of.
struct Plan {
  std::vector<LayerConfig> configs;
  std::vector<std::string> prefixes;  // each layer's tensors' ("1." in a Sequential)
  std::string dtype;                  // the model's
};

// Everything the architecture claims, checked against the tensors there before any
// buffer is sized from it: the buffers are then no larger than the tensors.
Plan plan(const std::string& architecture, const TensorTable& tensors, const std::string& what) {
  Value arch;
  try {
    arch = json::parse(architecture.data(), architecture.size());
  } catch (const std::runtime_error& e) {
    throw ModelFileError(what + ": the architecture is not valid JSON (" + e.what() + ")");
  }
  const std::vector<const Value*> entries = layer_entries(arch, what);
  const bool sequential = entries.front() != &arch;
  Plan p;
  p.configs = read_layers(entries, what, p.dtype);
  for (std::size_t i = 0; i < p.configs.size(); ++i) p.prefixes.push_back(sequential ? std::to_string(i) + "." : "");
  tensors.check(p.configs, p.prefixes);
  return p;
}

}  // namespace

bool check_tensors(const std::string& architecture, const std::vector<TensorRef>& refs, const std::string& what) {
  const Plan p = plan(architecture, TensorTable(refs, what), what);
  return std::any_of(p.configs.begin(), p.configs.end(),
                     [](const LayerConfig& c) { return c.precision() != Precision::Float; });
}

template <class S>
std::shared_ptr<ModelLayers<S>> build(const std::string& architecture, const std::vector<TensorRef>& refs,
                                      const std::string& what) {
  TensorTable tensors(refs, what);
  const Plan p = plan(architecture, tensors, what);
  const std::vector<LayerConfig>& configs = p.configs;
  const std::vector<std::string>& prefixes = p.prefixes;
  tensors.float32 = p.dtype == "float32" || sizeof(S) == sizeof(float);

  auto m = std::make_shared<ModelLayers<S>>();
  Index features = -1;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    Layer<S> L = make_layer<S>(configs[i], prefixes[i], features, tensors);
    if (L.kind == Kind::Recurrent) m->bidirectional = m->bidirectional || L.spec.bidirectional;
    if (L.kind == Kind::LastStep || L.kind == Kind::MeanPool) {
      // Python's pooling layer takes its layout from the recurrent layer before it
      for (auto it = m->layers.rbegin(); it != m->layers.rend(); ++it)
        if (it->kind == Kind::Recurrent) {
          L.directions = it->spec.directions();
          break;
        }
      m->per_step = false;
    }
    if (L.kind == Kind::Embedding) m->ids = true;
    if (features < 0 && L.kind != Kind::Dropout) m->input = m->ids ? 1 : L.in;
    if (L.kind != Kind::Dropout) features = L.out;
    m->num_params += Index(L.params.size());
    m->layers.push_back(std::move(L));
  }
  m->output = features;
  return m;
}

template std::shared_ptr<ModelLayers<float>> build<float>(const std::string&, const std::vector<TensorRef>&,
                                                          const std::string&);
template std::shared_ptr<ModelLayers<double>> build<double>(const std::string&, const std::vector<TensorRef>&,
                                                            const std::string&);

}  // namespace detail

}  // namespace rnnkit
