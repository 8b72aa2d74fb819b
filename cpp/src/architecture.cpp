// The architecture of a model file: its JSON read into layers, each layer's
// options checked, its tensors taken from the file by PyTorch's names, and the
// summary line of each layer.

#include <cmath>
#include <optional>
#include <set>
#include <sstream>

#include "json.h"
#include "model_layers.h"

namespace rnnkit {

namespace detail {

namespace {

using json::Value;

// ---- reading the architecture ---------------------------------------------------------

struct ConfigReader {
  const Value& cfg;
  std::string where;  // "layer 1 (LSTM)"
  const std::string& what;
  std::set<std::string> used;

  [[noreturn]] void fail(const std::string& msg) const { throw ModelFileError(what + ": " + where + ": " + msg); }

  const Value* get(const std::string& key) {
    used.insert(key);
    return cfg.find(key);
  }
  Index integer(const std::string& key, Index min, std::optional<Index> fallback = std::nullopt) {
    const Value* v = get(key);
    if (!v) {
      if (fallback) return *fallback;
      fail("option '" + key + "' is missing");
    }
    if (!v->is(Value::Type::Number) || v->number != std::floor(v->number) || v->number < double(min) ||
        v->number > 1e12)
      fail("option '" + key + "' must be a whole number >= " + std::to_string(min));
    return Index(v->number);
  }
  bool boolean(const std::string& key, bool fallback) {
    const Value* v = get(key);
    if (!v) return fallback;
    if (!v->is(Value::Type::Bool)) fail("option '" + key + "' must be true or false, got " + json::type_name(v->type));
    return v->boolean;
  }
  std::string string(const std::string& key, const std::string& fallback) {
    const Value* v = get(key);
    if (!v) return fallback;
    if (!v->is(Value::Type::String)) fail("option '" + key + "' must be a string, got " + json::type_name(v->type));
    return v->string;
  }
  double number(const std::string& key, double fallback) {
    const Value* v = get(key);
    if (!v) return fallback;
    if (!v->is(Value::Type::Number)) fail("option '" + key + "' must be a number, got " + json::type_name(v->type));
    return v->number;
  }
  void dtype() {
    const std::string d = string("dtype", "float32");
    if (d != "float32" && d != "float64") fail("dtype must be \"float32\" or \"float64\", got \"" + d + "\"");
  }
  // An option this runtime does not know could change what the layer computes: refuse it.
  void finish() const {
    for (const auto& kv : cfg.object)
      if (!used.count(kv.first)) fail("unknown option '" + kv.first + "'");
  }
};

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

template <class S>
Layer<S> read_layer(const Value& entry, Index index, const std::string& prefix, Index features, TensorTable& tensors,
                    const std::string& what) {
  const std::string at = "layer " + std::to_string(index);
  if (!entry.is(Value::Type::Object)) throw ModelFileError(what + ": " + at + " is not an object");
  const Value* cls = entry.find("class");
  const Value* cfg = entry.find("config");
  if (!cls || !cls->is(Value::Type::String) || !cfg || !cfg->is(Value::Type::Object))
    throw ModelFileError(what + ": " + at + " needs a \"class\" name and a \"config\" object");
  const std::string& name = cls->string;
  ConfigReader r{*cfg, at + " (" + name + ")", what, {}};
  Layer<S> L;
  std::ostringstream sum;

  if (name == "RNN" || name == "LSTM" || name == "GRU") {
    L.kind = Kind::Recurrent;
    StackSpec& s = L.spec;
    s.cell = name == "LSTM" ? CellType::LSTM : name == "GRU" ? CellType::GRU : CellType::RNN_TANH;
    s.input_size = r.integer("input_size", 1);
    s.hidden_size = r.integer("hidden_size", 1);
    s.num_layers = r.integer("num_layers", 1, 1);
    s.bias = r.boolean("bias", true);
    s.bidirectional = r.boolean("bidirectional", false);
    L.batch_first = r.boolean("batch_first", false);
    r.number("dropout", 0);           // inference: no dropout
    r.dtype();
    if (name == "RNN") {
      const std::string act = r.string("nonlinearity", "tanh");
      if (act != "tanh" && act != "relu") r.fail("nonlinearity must be \"tanh\" or \"relu\", got \"" + act + "\"");
      if (act == "relu") s.cell = CellType::RNN_RELU;
    }
    if (name == "LSTM") s.proj_size = r.integer("proj_size", 0, 0);
    if (name == "LSTM") s.peepholes = r.boolean("peepholes", false);
    if (name == "GRU") s.reset_after = r.boolean("reset_after", true);
    r.finish();
    try {
      s.validate();
    } catch (const std::invalid_argument& e) {
      r.fail(e.what());
    }
    if (features >= 0 && features != s.input_size)
      r.fail("input_size is " + std::to_string(s.input_size) + " but the layer before gives " +
             std::to_string(features) + " features");
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
    sum << name << "(" << s.input_size << ", " << s.hidden_size;
    if (s.num_layers > 1) sum << ", num_layers=" << s.num_layers;
    if (!s.bias) sum << ", bias=False";
    if (s.bidirectional) sum << ", bidirectional=True";
    if (s.proj_size) sum << ", proj_size=" << s.proj_size;
    if (s.peepholes) sum << ", peepholes=True";
    if (s.cell == CellType::RNN_RELU) sum << ", nonlinearity='relu'";
    if (s.cell == CellType::GRU && !s.reset_after) sum << ", reset_after=False";
    sum << ")";
  } else if (name == "Embedding") {
    L.kind = Kind::Embedding;
    L.in = r.integer("num_embeddings", 1);
    L.out = r.integer("embedding_dim", 1);
    const Value* pad = r.get("padding_idx");
    if (pad && !pad->is(Value::Type::Null) && !pad->is(Value::Type::Number))
      r.fail("option 'padding_idx' must be a number or null");
    r.dtype();
    r.finish();
    if (index != 0) r.fail("an Embedding must be the first layer");
    L.params.resize(std::size_t(L.in * L.out));
    tensors.take(prefix + "weight", {L.in, L.out}, L.params.data());
    sum << "Embedding(" << L.in << ", " << L.out << ")";
  } else if (name == "Linear") {
    L.kind = Kind::Linear;
    L.in = r.integer("in_features", 1);
    L.out = r.integer("out_features", 1);
    L.bias = r.boolean("bias", true);
    r.dtype();
    r.finish();
    if (features >= 0 && features != L.in)
      r.fail("in_features is " + std::to_string(L.in) + " but the layer before gives " + std::to_string(features) +
             " features");
    L.params.resize(std::size_t(L.out * L.in + (L.bias ? L.out : 0)));
    tensors.take(prefix + "weight", {L.out, L.in}, L.params.data());
    if (L.bias) tensors.take(prefix + "bias", {L.out}, L.params.data() + L.out * L.in);
    L.linear_w = packed_transpose(L.params.data(), L.out, L.in);
    sum << "Linear(" << L.in << ", " << L.out << (L.bias ? "" : ", bias=False") << ")";
  } else if (name == "LastStep" || name == "MeanPool") {
    L.kind = name == "LastStep" ? Kind::LastStep : Kind::MeanPool;
    r.boolean("batch_first", false);
    L.directions = r.boolean("bidirectional", false) ? 2 : 1;
    r.finish();
    if (features < 0) r.fail("a pooling layer needs a sequence before it");
    L.in = L.out = features;
    sum << name << "()";
  } else if (name == "Dropout") {
    L.kind = Kind::Dropout;
    const double p = r.number("p", 0.5);
    if (!(p >= 0 && p < 1)) r.fail("p must be in [0, 1)");
    r.finish();
    L.in = L.out = features;
    sum << "Dropout(p=" << p << ")";
  } else {
    throw ModelFileError(what + ": " + at + " is an unknown layer \"" + name +
                         "\"; this runtime knows Embedding, RNN, LSTM, GRU, Linear, LastStep, MeanPool, Dropout");
  }
  L.summary = sum.str();
  return L;
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
  const Value* cls = arch.is(Value::Type::Object) ? arch.find("class") : nullptr;
  const Value* cfg = arch.is(Value::Type::Object) ? arch.find("config") : nullptr;
  if (!cls || !cls->is(Value::Type::String) || !cfg || !cfg->is(Value::Type::Object))
    throw ModelFileError(what + ": the architecture must be {\"class\": ..., \"config\": {...}}");

  std::vector<const Value*> entries;
  bool sequential = cls->string == "Sequential";
  if (sequential) {
    const Value* layers = cfg->find("layers");
    if (!layers || !layers->is(Value::Type::Array) || layers->array.empty())
      throw ModelFileError(what + ": a Sequential architecture needs a non-empty \"layers\" list");
    for (const Value& v : layers->array) entries.push_back(&v);
  } else {
    entries.push_back(&arch);
  }

  auto m = std::make_shared<ModelLayers<S>>();
  TensorTable tensors{refs, what, {}};
  Index features = -1;  // features per row so far; -1 before the first sized layer
  bool pooled = false;
  int batch_first = -1;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string prefix = sequential ? std::to_string(i) + "." : "";
    Layer<S> L = read_layer<S>(*entries[i], Index(i), prefix, features, tensors, what);
    const std::string at = what + ": layer " + std::to_string(i) + " (" + L.summary + "): ";
    if (L.kind == Kind::Recurrent) {
      if (pooled) throw ModelFileError(at + "a recurrent layer cannot follow LastStep or MeanPool");
      if (batch_first >= 0 && int(L.batch_first) != batch_first)
        throw ModelFileError(at + "the recurrent layers disagree on batch_first, so the Python model feeds one "
                                  "layer's time axis to the next as its batch axis; refusing to guess");
      batch_first = L.batch_first;
      m->bidirectional = m->bidirectional || L.spec.bidirectional;
    }
    if (L.kind == Kind::LastStep || L.kind == Kind::MeanPool) {
      if (pooled) throw ModelFileError(at + "the sequence is already pooled");
      // Python's pooling layer takes its layout from the recurrent layer before it
      for (auto it = m->layers.rbegin(); it != m->layers.rend(); ++it)
        if (it->kind == Kind::Recurrent) {
          L.directions = it->spec.directions();
          break;
        }
      pooled = true;
    }
    if (L.kind == Kind::Embedding) m->ids = true;
    if (features < 0 && L.kind != Kind::Dropout) m->input = m->ids ? 1 : L.in;
    if (L.kind != Kind::Dropout) features = L.out;
    m->num_params += Index(L.params.size());
    m->layers.push_back(std::move(L));
  }
  tensors.finish();
  if (features < 0) throw ModelFileError(what + ": the model has no layer with a size (only Dropout)");
  m->output = features;
  m->per_step = !pooled;
  return m;
}

template std::shared_ptr<ModelLayers<float>> build<float>(const std::string&, const std::vector<TensorRef>&,
                                                          const std::string&);
template std::shared_ptr<ModelLayers<double>> build<double>(const std::string&, const std::vector<TensorRef>&,
                                                            const std::string&);

}  // namespace detail

}  // namespace rnnkit
