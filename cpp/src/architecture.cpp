// The architecture of a model file: the table of layer classes and their
// options (rnnkit/architecture.h), a model's JSON read against it into
// layers, each layer's tensors taken from the file by PyTorch's names, and
// each layer's summary line.
//
// Python's rk.load reads the same table (python/rnnkit/architecture.py) and
// writes the same messages, so the two loaders agree on every file.

#include "rnnkit/architecture.h"

#include <cmath>
#include <cstdio>
#include <set>

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
        {"Linear", Role::Linear, {size("in_features"), size("out_features"), boolean("bias", true), dtype}, {},
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

// The class and options of layer `index`, checked against the table: each option's
// type and range, no option the table does not list, the class's checks across options.
LayerConfig read_config(const Value& entry, Index index, const std::string& what) {
  const std::string at = "layer " + std::to_string(index);
  if (!entry.is(Value::Type::Object)) throw ModelFileError(what + ": " + at + " is not an object");
  const Value* cls = entry.find("class");
  const Value* cfg = entry.find("config");
  if (!cls || !cls->is(Value::Type::String) || !cfg || !cfg->is(Value::Type::Object))
    throw ModelFileError(what + ": " + at + " needs a \"class\" name and a \"config\" object");
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
  std::set<std::string> seen;
  for (const auto& kv : cfg->object) {
    bool known = false;
    for (const arch::Option& o : c.cls->options) known = known || o.key == kv.first;
    if (!known) {
      std::string keys;
      for (const arch::Option& o : c.cls->options) keys += (keys.empty() ? "" : ", ") + o.key;
      c.fail("unknown option '" + kv.first + "'; " + c.cls->name + " takes " + keys);
    }
    if (!seen.insert(kv.first).second) c.fail("option '" + kv.first + "' is given twice");
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

// Tensors by name, each used at most once.
struct TensorTable {
  const std::vector<TensorRef>& refs;
  const std::string& what;
  std::set<std::string> used;

  template <class S>
  void take(const std::string& name, const std::vector<Index>& shape, S* dst) {
    const TensorRef* t = nullptr;
    for (const TensorRef& r : refs)
      if (r.name == name) t = &r;
    if (!t) throw ModelFileError(what + ": tensor '" + name + "' is missing");
    if (t->shape != shape) {
      auto str = [](const std::vector<Index>& s) {
        std::string o = "(";
        for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
        return o + (s.size() == 1 ? ",)" : ")");
      };
      throw ModelFileError(what + ": tensor '" + name + "' has shape " + str(t->shape) + ", the architecture needs " +
                           str(shape));
    }
    Index n = 1;
    for (Index d : shape) n *= d;
    if (!read_floats(t->dtype, t->data, n, dst))
      throw ModelFileError(what + ": tensor '" + name + "' has dtype " + t->dtype + ", expected F32 or F64");
    used.insert(name);
  }
  void finish() const {
    for (const TensorRef& r : refs)
      if (!used.count(r.name)) throw ModelFileError(what + ": tensor '" + r.name + "' belongs to no layer");
  }
};

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

// The layer `c` describes, with its tensors taken from the file; `features`: what
// the layer before gives per row (read_layers has checked that the two fit).
template <class S>
Layer<S> make_layer(const LayerConfig& c, const std::string& prefix, Index features, TensorTable& tensors) {
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
      const auto layout = s.param_layout();
      L.params.resize(std::size_t(s.num_params()));
      for (const ParamInfo& p : layout) {
        std::vector<Index> shape = p.cols ? std::vector<Index>{p.rows, p.cols} : std::vector<Index>{p.rows};
        tensors.take(prefix + p.name, shape, L.params.data() + p.offset);
      }
      if (!s.bidirectional)
        for (Index l = 0; l < s.num_layers; ++l) L.step.push_back(step_weights(s, L.params.data(), l));
      break;
    }
    case arch::Role::Embedding:
      L.kind = Kind::Embedding;
      L.in = c.integer("num_embeddings");
      L.out = c.integer("embedding_dim");
      L.params.resize(std::size_t(L.in * L.out));
      tensors.take(prefix + "weight", {L.in, L.out}, L.params.data());
      break;
    case arch::Role::Linear:
      L.kind = Kind::Linear;
      L.in = c.integer("in_features");
      L.out = c.integer("out_features");
      L.bias = c.boolean("bias");
      L.params.resize(std::size_t(L.out * L.in + (L.bias ? L.out : 0)));
      tensors.take(prefix + "weight", {L.out, L.in}, L.params.data());
      if (L.bias) tensors.take(prefix + "bias", {L.out}, L.params.data() + L.out * L.in);
      L.linear_w = packed_transpose(L.params.data(), L.out, L.in);
      break;
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
  if (cls->string != "Sequential") return {&arch};
  const Value* layers = cfg->find("layers");
  if (!layers || !layers->is(Value::Type::Array) || layers->array.empty())
    throw ModelFileError(what + ": a Sequential architecture needs a non-empty \"layers\" list");
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
std::vector<LayerConfig> read_layers(const std::vector<const Value*>& entries, const std::string& what) {
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
  return configs;
}

}  // namespace

template <class S>
std::shared_ptr<ModelLayers<S>> build(const std::string& architecture, const std::vector<TensorRef>& refs,
                                      const std::string& what) {
  Value arch;
  try {
    arch = json::parse(architecture.data(), architecture.size());
  } catch (const std::runtime_error& e) {
    throw ModelFileError(what + ": the architecture is not valid JSON (" + e.what() + ")");
  }
  const std::vector<const Value*> entries = layer_entries(arch, what);
  const bool sequential = entries.front() != &arch;
  const std::vector<LayerConfig> configs = read_layers(entries, what);

  auto m = std::make_shared<ModelLayers<S>>();
  TensorTable tensors{refs, what, {}};
  Index features = -1;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const std::string prefix = sequential ? std::to_string(i) + "." : "";
    Layer<S> L = make_layer<S>(configs[i], prefix, features, tensors);
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
  tensors.finish();
  m->output = features;
  return m;
}

template std::shared_ptr<ModelLayers<float>> build<float>(const std::string&, const std::vector<TensorRef>&,
                                                          const std::string&);
template std::shared_ptr<ModelLayers<double>> build<double>(const std::string&, const std::vector<TensorRef>&,
                                                            const std::string&);

}  // namespace detail

}  // namespace rnnkit
