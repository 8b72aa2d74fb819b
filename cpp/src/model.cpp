// rnnkit::Model: the architecture JSON and tensors of a model file turned into
// layers, batch predict over them, and the allocation-free streaming step.
// All the maths is the core's: stack forward (stack.h), the cells' step
// (rnn.h, lstm.h, gru.h) and the layers (layers.h); this file only wires them.

#include "rnnkit/model.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>

#include "json.h"
#include "rnnkit/cells.h"
#include "rnnkit/layers.h"
#include "rnnkit/stack.h"
#include "sha256.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wignored-attributes"  // Eigen's packet types as template arguments
#endif

namespace rnnkit {

constexpr const char* kFormat = "rnnkit";
constexpr const char* kFormatVersion = "1";

namespace detail {

enum class Kind { Embedding, Recurrent, Linear, LastStep, MeanPool, Dropout };

template <class S>
struct Layer {
  Kind kind;
  std::string summary;
  StackSpec spec;        // Recurrent
  Index in = 0, out = 0; // features per row in and out (Embedding: num_embeddings, dim)
  Index directions = 1;  // LastStep / MeanPool: halves of the features
  bool batch_first = false;  // Recurrent: the Python layer's layout (the runtime is batch-first always)
  bool bias = false;     // Linear
  std::vector<S> params; // Recurrent: spec.param_layout(); Embedding: weight; Linear: weight, bias
  // For the streaming step (unidirectional layers), each sub-layer's weights packed
  // for one row's products (gemm.h's panel_times), so a step's products vectorise
  // over the gates. A step reads one row per sequence,
  //   z = [h_{t-1}, 1, x_t]                         (P + 1 + I)
  // and the columns of [W_hh^T; b_ih + b_hh; W_ih^T] it multiplies hold the biases
  // in the row that meets the 1: one pass over z gives W_ih x + b_ih + W_hh h + b_hh
  // for every gate whose pre-activation is a plain sum (RNN, LSTM, GRU's r and z),
  // with no second product, no bias pass and no sum of two buffers. GRU's
  // candidate keeps its parts apart (it needs r first): n_x = W_in x + b_in from
  // z's [1, x_t] and, with reset_after, n_h = W_hn h + b_hn from z's [h_{t-1}, 1].
  //
  // The units go in groups, each group's columns one panel of four registers of
  // U lanes: LSTM i, f, g, o of U units; GRU r, z, n_x, n_h of U units (its h
  // rows leave n_x out, its x rows n_h: panel_times' Head and Tail); RNN 4U units. The step multiplies z
  // by a group's panel and runs the cell on that group at once (cell_step), so
  // the gate sums go from registers to the cell through L1, and one group's cell
  // overlaps the next group's multiply-adds. GRU with reset_after=False, whose
  // candidate's product waits for every unit's r, runs `products` into g instead.
  struct StepProduct {
    PackedMat<S> w;  // (K, N)
    Index k0 = 0;    // z[k0, k0 + K) · w
    Index out = 0;   // lands in g[out, out + N) (the layout cell_step gives the cell)
  };
  struct StepWeights {
    std::vector<S, Eigen::aligned_allocator<S>> groups;  // the groups' panels, one after another
    Index lanes = 0;       // U: the lanes of the panels' registers; 0: `products` instead
    bool apart = false;    // the groups' registers are r, z, n_x, n_h (GRU), else the gates' plain sums
    Index units = 0;       // units per group: U (RNN: 4U)
    StackSpec group_spec;  // the spec with hidden_size = units: one group as its cell sees it
    std::vector<StepProduct> products;  // GRU with reset_after=False
    PackedMat<S> w_hr;  // W_hr^T, empty without proj_size
  };
  std::vector<StepWeights> step;  // Recurrent: [sub-layer l]
  PackedMat<S> linear_w;          // Linear: W^T
};

template <class S>
struct ModelLayers {
  std::vector<Layer<S>> layers;
  bool ids = false;
  Index input = 0, output = 0, num_params = 0;
  bool per_step = true, bidirectional = false;
};

}  // namespace detail

namespace {

using detail::Kind;
using detail::Layer;
using detail::ModelLayers;
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

// w (rows, cols) row-major, transposed and packed for vec_mat: x (rows) · w^T... as x (cols) -> (rows)
template <class S>
PackedMat<S> packed_transpose(const S* w, Index rows, Index cols) {
  return pack_for_vec_mat<S>(cmat(w, rows, cols).transpose());
}

// The lanes of S's SIMD packets, widest first: Eigen's packet, its half, its
// quarter (the same where a packet is its own half).
template <class S>
using Packet0 = typename Eigen::internal::packet_traits<S>::type;
template <class S>
using Packet1 = typename Eigen::internal::unpacket_traits<Packet0<S>>::half;
template <class S>
using Packet2 = typename Eigen::internal::unpacket_traits<Packet1<S>>::half;
template <class P>
constexpr Index lanes_of = Eigen::internal::unpacket_traits<P>::size;

// The streaming step's weights of sub-layer l (Layer::StepWeights), from
//   Z = [W_hh^T; b^T; W_ih^T]  (P + 1 + I, G·H),  b the biases asked for.
template <class S>
typename Layer<S>::StepWeights step_weights(const StackSpec& s, const S* params, Index l) {
  const DirParams dp = s.dir_params(l, 0);
  const CellDecl d = s.decl();
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size, GH = d.gates * H, K = P + 1 + I;
  auto stacked = [&](Index r0, Index n, bool b_ih, bool b_hh) {  // Z's columns [r0, r0 + n)
    Mat<S> z(K, n);
    z.topRows(P) = cmat(params + dp.w_hh, GH, P).middleRows(r0, n).transpose();
    z.row(P).setZero();
    if (b_ih && dp.b_ih >= 0) z.row(P) += cmat(params + dp.b_ih + r0, 1, n);
    if (b_hh && dp.b_hh >= 0) z.row(P) += cmat(params + dp.b_hh + r0, 1, n);
    z.bottomRows(I) = cmat(params + dp.w_ih, GH, I).middleRows(r0, n).transpose();
    return z;
  };
  typename Layer<S>::StepWeights w;
  if (dp.w_hr >= 0) w.w_hr = packed_transpose(params + dp.w_hr, P, H);
  // The layouts packed here: Plain blocks only, one (RNN) or four (LSTM); or
  // three, the last one's sums Apart (GRU); or the products (a Gated block).
  const bool gru = d.gates == 3 && d.sums[2] == GateSum::Apart, rnn = d.gates == 1;
  if (d.rec_gates() < d.gates) {
    w.products.push_back({pack_for_vec_mat<S>(stacked(0, 2 * H, true, true)), 0, 0});
    // b_hn joins n_x (r does not scale it)
    w.products.push_back({pack_for_vec_mat<S>(stacked(2 * H, H, true, true).bottomRows(1 + I)), P, 2 * H});
    return w;
  }
  // the sums each group's registers take: LSTM (i, f, g, o), GRU (r, z, n_x, n_h)
  // of a unit at columns q·H + unit; RNN one register per U units
  Mat<S> cols;
  if (gru) {
    cols.resize(K, 4 * H);
    cols << stacked(0, 2 * H, true, true), stacked(2 * H, H, true, false), stacked(2 * H, H, false, true);
    cols.block(0, 2 * H, P, H).setZero();  // n_x: no h rows, n_h: no x rows (neither packed below)
    cols.block(P + 1, 3 * H, I, H).setZero();
  } else {
    cols = stacked(0, GH, true, true);
  }
  // registers of U lanes, the widest whose panel (4U columns) is no wider than the step's columns
  const Index widths[3] = {lanes_of<Packet0<S>>, lanes_of<Packet1<S>>, lanes_of<Packet2<S>>};
  Index U = widths[0];
  for (Index v : widths)
    if (4 * U > (rnn ? 1 : 4) * H) U = v;
  w.lanes = U;
  w.apart = gru;
  w.units = rnn ? 4 * U : U;
  w.group_spec = s;
  w.group_spec.hidden_size = w.units;
  const Index groups = (H + w.units - 1) / w.units;
  w.groups.reserve(std::size_t(groups * K * 4 * U));
  for (Index u = 0; u < groups; ++u)
    for (Index k = 0; k < K; ++k)
      for (Index q = 0; q < 4; ++q) {
        if (gru && ((q == 2 && k < P) || (q == 3 && k > P))) continue;
        for (Index j = 0; j < U; ++j) {
          const Index unit = u * w.units + (rnn ? q * U : 0) + j;
          w.groups.push_back(unit < H ? cols(k, rnn ? unit : q * H + unit) : S(0));
        }
      }
  return w;
}

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

std::string digest(const std::vector<TensorRef>& refs) {
  std::vector<const TensorRef*> sorted;
  for (const TensorRef& r : refs) sorted.push_back(&r);
  std::sort(sorted.begin(), sorted.end(), [](const TensorRef* a, const TensorRef* b) { return a->name < b->name; });
  Sha256 h;
  for (const TensorRef* r : sorted) {
    std::size_t n = dtype_size(r->dtype);
    for (Index d : r->shape) n *= std::size_t(d);
    h.update(r->name.data(), r->name.size());
    h.update(r->data, n);
  }
  return h.hex_digest();
}

// ---- running a batch --------------------------------------------------------------------

// Token ids for a model that starts with an Embedding, floats otherwise; no null pointers.
template <class S, class Id>
void check_input(const ModelLayers<S>& m, const S* x, const Id* ids, const S* y) {
  if ((ids != nullptr) != m.ids)
    throw std::invalid_argument(m.ids ? "this model starts with an Embedding: pass token ids, not floats"
                                      : "this model takes float features, not token ids");
  if (!x && !ids) throw std::invalid_argument("x is null");
  if (!y) throw std::invalid_argument("y is null");
}

template <class S, class Id>
void run_predict(const ModelLayers<S>& m, const S* x, const Id* ids, Index B, Index T, S* y,
                 const std::int64_t* lengths) {
  if (B < 1) throw std::invalid_argument("batch must be >= 1, got " + std::to_string(B));
  if (T < 1) throw std::invalid_argument("steps must be >= 1, got " + std::to_string(T));
  check_input(m, x, ids, y);
  if (lengths)
    for (Index b = 0; b < B; ++b)
      if (lengths[b] < 1 || lengths[b] > T)
        throw std::invalid_argument("lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                                    " is out of range: each length must be in 1.." + std::to_string(T));

  std::vector<S> cur, next;
  const S* in = x;
  Index F = m.input;
  bool pooled = false;
  for (const Layer<S>& L : m.layers) {
    const Index rows = pooled ? B : B * T;
    switch (L.kind) {
      case Kind::Embedding:
        next.resize(std::size_t(rows * L.out));
        embedding_forward(next.data(), ids, L.params.data(), rows, L.in, L.out);
        break;
      case Kind::Recurrent: {
        const StackSpec& s = L.spec;
        next.resize(std::size_t(rows * L.out));
        SeqArgs<S> a;  // no h_n / c_n: predict returns the output sequence only
        a.T = T, a.B = B, a.batch_first = true, a.lengths = lengths;
        a.x = in, a.out = next.data();
        forward<S>(s, L.params.data(), a, nullptr);
        break;
      }
      case Kind::Linear:
        next.resize(std::size_t(rows * L.out));
        linear_forward(next.data(), in, L.params.data(), L.bias ? L.params.data() + L.out * L.in : nullptr, rows,
                       L.in, L.out);
        break;
      case Kind::LastStep:
      case Kind::MeanPool:
        next.resize(std::size_t(B * F));
        if (L.kind == Kind::LastStep)
          last_step_forward(next.data(), in, lengths, SeqLayout{B, T, F, true}, L.directions);
        else
          mean_pool_forward(next.data(), in, lengths, SeqLayout{B, T, F, true});
        pooled = true;
        break;
      case Kind::Dropout: continue;
    }
    std::swap(cur, next);
    in = cur.data();
    F = L.out;
  }
  std::copy_n(in, (pooled ? B : B * T) * F, y);
}

}  // namespace

// ---- streaming ----------------------------------------------------------------------------

namespace detail {

// A streaming step's arguments to the cell (gates.h).
template <class S>
struct StepArgs {
  CellWeights<S> w;
  StepRange range;
  StepIn<S> in;
  StepOut<S> out;
};

// One layer-direction of a recurrent stack, stepping: its state (h, c) and the
// scratch of one row's step, all sized once.
template <class S>
struct StepBuffers {
  Mat<S> h, c;  // (B, P), (B, H) LSTM only
  Mat<S> z;     // (1, P + 1 + I)  [h_{t-1}, 1, x_t] of the row being stepped
  Mat<S> g;     // (1, G·H; GRU with reset_after 4H): the products' sums (Layer::StepWeights)
  Mat<S> cache, m, work;  // (1, 4H), (1, H), (1, H): the cell's scratch; m: its output before W_hr
  StepArgs<S> args;       // the cell's arguments, pointing into the above (stream() and cell_step)
};

template <class S>
struct StreamState {
  std::shared_ptr<const ModelLayers<S>> model;
  Index B = 0, steps = 0;
  std::vector<std::vector<StepBuffers<S>>> rec;  // [layer][sub-layer l] for recurrent layers
  std::vector<Mat<S>> sums;                      // [layer] running sums for MeanPool
  Mat<S> a, b;                                   // activations, ping-pong (B, widest layer)
};

}  // namespace detail

namespace {

// The groups of one row (Layer::StepWeights), U = Pk's lanes: for each, its
// panel's sums into g, then the cell on the group's units. Every other step goes
// over the groups backwards: a step then starts on the weights the step before
// ended on, still in L1. At hidden 64, whose weights are 50-66 KiB, this made
// the products 1.2-1.35x faster (the L2 streams a step's weights at ~105 bytes/ns).
template <class Cell, class Pk, class S>
void group_steps(const typename Layer<S>::StepWeights& w, Index H, Index P, Index K, const S* z, S* c, S* m, S* g,
                 detail::StepArgs<S>& a, bool backwards) {
  constexpr Index U = lanes_of<Pk>;
  const bool gru = w.apart;  // no n_x in z's P h rows, no n_h in its x rows (Layer::StepWeights)
  const Index units = w.units, groups = (H + units - 1) / units;
  const Index size = (4 * K - (gru ? K - 1 : 0)) * U;  // a group's panel
  a.in.xg = g;
  a.in.hg = gru ? g + units : g;
  const S* peep = a.w.peep;
  for (Index i = 0; i < groups; ++i) {
    const Index u = backwards ? groups - 1 - i : i, n0 = u * units;
    const S* panel = w.groups.data() + u * size;
    if (gru)
      detail::panel_times<4, 2, 3, Pk>(g, 4 * U, z, panel, 4 * U, K, false, P, P + 1);
    else
      detail::panel_times<4, -1, -1, Pk>(g, 4 * U, z, panel, 4 * U, K, false);
    a.in.hprev.base = z + n0;
    a.out.c = c ? c + n0 : nullptr;
    a.out.m.base = m + n0;
    a.w.peep = peep ? peep + n0 : nullptr;  // the group's units of each row, ld_peep = H apart
    a.range.u1 = std::min(units, H - n0);
    Cell::forward(w.group_spec, a.w, a.range, a.in, a.out);
  }
  a.w.peep = peep;
}

// One step of one sub-layer, row by row: z = [h_{t-1}, 1, x_t], then the groups
// (group_steps), or for a cell with a Gated block (GRU with reset_after=False)
// g = z · products and the cell's own step on g, which holds the Plain blocks'
// pre-activations whole (in.summed: the cell adds no hg and no bias) and n_x at g[2H, 3H).
template <class Cell, class S>
void cell_step(const StackSpec& s, const DirParams& dp, const typename Layer<S>::StepWeights& w, const S* x,
               detail::StepBuffers<S>& st, Index B, bool backwards) {
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size, K = P + 1 + I;
  const bool has_c = st.c.size() > 0;
  S* z = st.z.data();
  S* g = st.g.data();
  detail::StepArgs<S>& a = st.args;  // kept, not built: zeroing fresh ones is a visible cost of a small step
  a.out.cache = st.cache.data();
  a.out.work = st.work.data();
  for (Index r = 0; r < B; ++r) {
    S* h = st.h.data() + r * P;
    std::copy_n(h, P, z);
    std::copy_n(x + r * I, I, z + P + 1);
    S* c = has_c ? st.c.data() + r * H : nullptr;
    S* m = dp.w_hr >= 0 ? st.m.data() : h;  // h_{t-1} is in z: the cell may write h_t over it
    if (w.lanes == lanes_of<Packet0<S>>) {
      group_steps<Cell, Packet0<S>>(w, H, P, K, z, c, m, g, a, backwards);
    } else if (w.lanes == lanes_of<Packet1<S>>) {
      group_steps<Cell, Packet1<S>>(w, H, P, K, z, c, m, g, a, backwards);
    } else if (w.lanes == lanes_of<Packet2<S>>) {
      group_steps<Cell, Packet2<S>>(w, H, P, K, z, c, m, g, a, backwards);
    } else {
      a.in.xg = g, a.in.hg = g + H, a.in.hprev.base = z, a.out.c = c, a.out.m.base = m, a.range.u1 = -1;
      const Index np = Index(w.products.size());
      for (Index i = 0; i < np; ++i) {
        const auto& p = w.products[std::size_t(backwards ? np - 1 - i : i)];
        vec_mat(g + p.out, z + p.k0, p.w, false, backwards);
      }
      Cell::forward(s, a.w, a.range, a.in, a.out);
    }
    if (dp.w_hr >= 0) vec_mat(h, st.m.data(), w.w_hr, false, backwards);
  }
}

template <class S>
void stack_step(const Layer<S>& L, const S* x, std::vector<detail::StepBuffers<S>>& subs, Index B, bool backwards) {
  const StackSpec& s = L.spec;
  with_cell(s, [&](auto cell) {
    using Cell = decltype(cell);
    for (Index l = 0; l < s.num_layers; ++l) {
      cell_step<Cell>(s, s.dir_params(l, 0), L.step[std::size_t(l)], x, subs[std::size_t(l)], B, backwards);
      x = subs[std::size_t(l)].h.data();
    }
  });
}

template <class S, class Id>
void run_step(detail::StreamState<S>& st, const S* x, const Id* ids, S* y) {
  const ModelLayers<S>& m = *st.model;
  check_input(m, x, ids, y);
  const Index B = st.B;
  if (m.ids) check_ids(ids, B, m.layers[0].in);  // before anything changes: a bad id leaves the state as it was
  const S* in = x;
  S* out = st.a.data();
  S* spare = st.b.data();
  Index F = m.input;
  ++st.steps;
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const Layer<S>& L = m.layers[i];
    switch (L.kind) {
      case Kind::Embedding:
        for (Index r = 0; r < B; ++r) std::copy_n(L.params.data() + Index(ids[r]) * L.out, L.out, out + r * L.out);
        break;
      case Kind::Recurrent:  // its output is its last sub-layer's state: read there, not copied
        stack_step(L, in, st.rec[i], B, st.steps % 2 == 0);
        in = st.rec[i].back().h.data();
        F = L.out;
        continue;
      case Kind::Linear:  // linear_forward's maths, row by row (no heap)
        for (Index r = 0; r < B; ++r) {
          if (L.bias) std::copy_n(L.params.data() + L.out * L.in, L.out, out + r * L.out);
          vec_mat(out + r * L.out, in + r * L.in, L.linear_w, L.bias);
        }
        break;
      case Kind::LastStep: continue;  // the sequence so far ends at this step
      case Kind::MeanPool: {
        auto sum = mat(st.sums[i].data(), B, F);
        sum += cmat(in, B, F);
        mat(out, B, F) = sum / S(st.steps);
        break;
      }
      case Kind::Dropout: continue;
    }
    in = out;
    std::swap(out, spare);
    F = L.out;
  }
  std::copy_n(in, B * F, y);
}

}  // namespace

// ---- BasicModel ---------------------------------------------------------------------------

template <class S>
BasicModel<S> BasicModel<S>::load(const std::string& path) {
  TensorFile f = TensorFile::read(path);
  const auto& meta = f.metadata();
  auto get = [&](const char* key) -> const std::string* {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  const std::string* format = get("format");
  if (!format || *format != kFormat)
    throw ModelFileError(path + ": a safetensors file but not an rnnkit model (no format=rnnkit in its metadata)");
  const std::string* version = get("format_version");
  if (!version || *version != kFormatVersion)
    throw ModelFileError(path + ": rnnkit format version \"" + (version ? *version : std::string("none")) +
                         "\"; this runtime reads version " + kFormatVersion);
  std::vector<TensorRef> refs;
  for (const auto& [name, t] : f.tensors()) refs.push_back({name, t.dtype, t.shape, f.bytes(t)});
  const std::string* sha = get("sha256");
  if (!sha || *sha != digest(refs))
    throw ModelFileError(path + ": corrupt: the tensors do not match the sha256 checksum in the metadata");
  const std::string* arch = get("architecture");
  if (!arch) throw ModelFileError(path + ": no architecture in the metadata");
  return from_tensors(*arch, refs, path);
}

template <class S>
BasicModel<S> BasicModel<S>::from_tensors(const std::string& architecture, const std::vector<TensorRef>& tensors,
                                          const std::string& what) {
  BasicModel m;
  m.layers_ = build<S>(architecture, tensors, what);
  return m;
}

template <class S>
bool BasicModel<S>::takes_ids() const { return layers_->ids; }
template <class S>
Index BasicModel<S>::input_size() const { return layers_->input; }
template <class S>
Index BasicModel<S>::output_size() const { return layers_->output; }
template <class S>
bool BasicModel<S>::per_step() const { return layers_->per_step; }
template <class S>
bool BasicModel<S>::can_stream() const { return !layers_->bidirectional; }
template <class S>
Index BasicModel<S>::num_parameters() const { return layers_->num_params; }
template <class S>
Index BasicModel<S>::vocab_size() const { return layers_->ids ? layers_->layers[0].in : 0; }

template <class S>
std::string BasicModel<S>::summary() const {
  std::string out;
  for (const auto& L : layers_->layers) out += L.summary + "\n";
  return out;
}

template <class S>
void BasicModel<S>::predict(const S* x, Index batch, Index steps, S* y, const std::int64_t* lengths) const {
  run_predict<S, std::int64_t>(*layers_, x, nullptr, batch, steps, y, lengths);
}
template <class S>
void BasicModel<S>::predict(const std::int64_t* ids, Index batch, Index steps, S* y,
                            const std::int64_t* lengths) const {
  run_predict<S, std::int64_t>(*layers_, nullptr, ids, batch, steps, y, lengths);
}
template <class S>
void BasicModel<S>::predict(const std::int32_t* ids, Index batch, Index steps, S* y,
                            const std::int64_t* lengths) const {
  run_predict<S, std::int32_t>(*layers_, nullptr, ids, batch, steps, y, lengths);
}
template <class S>
std::vector<S> BasicModel<S>::predict(const std::vector<S>& x, Index batch, Index steps) const {
  if (Index(x.size()) != batch * steps * input_size())
    throw std::invalid_argument("x has " + std::to_string(x.size()) + " values, expected batch·steps·input_size = " +
                                std::to_string(batch * steps * input_size()));
  std::vector<S> y(std::size_t((per_step() ? batch * steps : batch) * output_size()));
  predict(x.data(), batch, steps, y.data());
  return y;
}

template <class S>
BasicStream<S> BasicModel<S>::stream(Index batch) const {
  if (batch < 1) throw std::invalid_argument("batch must be >= 1, got " + std::to_string(batch));
  if (layers_->bidirectional)
    throw std::invalid_argument("a bidirectional model cannot stream: its output at step t needs the steps after t; "
                                "use predict on whole sequences");
  auto st = std::make_unique<detail::StreamState<S>>();
  st->model = layers_;
  st->B = batch;
  Index widest = layers_->input;
  st->rec.resize(layers_->layers.size());
  st->sums.resize(layers_->layers.size());
  for (std::size_t i = 0; i < layers_->layers.size(); ++i) {
    const auto& L = layers_->layers[i];
    widest = std::max(widest, L.out);
    if (L.kind == detail::Kind::MeanPool) st->sums[i] = Mat<S>::Zero(batch, L.in);
    if (L.kind != detail::Kind::Recurrent) continue;
    const StackSpec& s = L.spec;
    const CellDecl d = s.decl();
    const Index H = s.hidden_size, P = s.out_size();
    for (Index l = 0; l < s.num_layers; ++l) {
      detail::StepBuffers<S> b;
      b.h = Mat<S>::Zero(batch, P);
      b.c = Mat<S>::Zero(d.has_c ? batch : 0, H);
      b.z = Mat<S>::Zero(1, P + 1 + s.layer_input_size(l));
      b.z(0, P) = S(1);                   // meets the biases' row
      const auto& w = L.step[std::size_t(l)];
      Index g_cols = 4 * w.lanes;  // as wide as a group's panel or the products write
      for (const auto& p : w.products) g_cols = std::max(g_cols, p.out + p.w.N);
      b.g = Mat<S>::Zero(1, g_cols);
      b.cache.resize(1, d.cache * H);
      b.m.resize(1, H);
      b.work.resize(1, H);
      const DirParams dp = s.dir_params(l, 0);
      detail::StepArgs<S>& a = b.args;  // what stays the same from step to step
      a.w = detail::cell_weights(s, L.params.data(), dp, static_cast<const PackedMat<S>*>(nullptr));
      a.w.b_ih = a.w.b_hh = nullptr;  // in the products already (Layer::StepWeights)
      a.range.b = 1;
      a.range.own_thread = true;
      a.in.summed = true;
      a.in.hprev.ld = P;
      a.out.m.ld = H;

      st->rec[i].push_back(std::move(b));
    }
  }
  st->a.resize(batch, widest);
  st->b.resize(batch, widest);
  return BasicStream<S>(std::move(st));
}

// ---- BasicStream --------------------------------------------------------------------------

template <class S>
BasicStream<S>::BasicStream(std::unique_ptr<detail::StreamState<S>> state) : state_(std::move(state)) {}
template <class S>
BasicStream<S>::BasicStream(BasicStream&&) noexcept = default;
template <class S>
BasicStream<S>& BasicStream<S>::operator=(BasicStream&&) noexcept = default;
template <class S>
BasicStream<S>::~BasicStream() = default;

template <class S>
void BasicStream<S>::step(const S* x_t, S* y_t) {
  run_step<S, std::int64_t>(*state_, x_t, nullptr, y_t);
}
template <class S>
void BasicStream<S>::step(const std::int64_t* ids_t, S* y_t) {
  run_step<S, std::int64_t>(*state_, nullptr, ids_t, y_t);
}
template <class S>
void BasicStream<S>::reset() {
  for (auto& subs : state_->rec)
    for (auto& b : subs) {
      b.h.setZero();
      b.c.setZero();
    }
  for (auto& s : state_->sums) s.setZero();
  state_->steps = 0;
}
template <class S>
Index BasicStream<S>::batch() const { return state_->B; }
template <class S>
Index BasicStream<S>::steps() const { return state_->steps; }
template <class S>
Index BasicStream<S>::input_size() const { return state_->model->input; }
template <class S>
Index BasicStream<S>::output_size() const { return state_->model->output; }
template <class S>
bool BasicStream<S>::takes_ids() const { return state_->model->ids; }

template class BasicModel<float>;
template class BasicModel<double>;
template class BasicStream<float>;
template class BasicStream<double>;

void save_model(const std::string& path, const std::string& architecture_json, const std::vector<TensorRef>& tensors) {
  // Check that the file will load before writing it.
  BasicModel<double>::from_tensors(architecture_json, tensors, path);
  std::map<std::string, std::string> meta{{"format", kFormat},
                                          {"format_version", kFormatVersion},
                                          {"architecture", architecture_json},
                                          {"sha256", digest(tensors)}};
  write_safetensors(path, tensors, meta);
}

}  // namespace rnnkit
