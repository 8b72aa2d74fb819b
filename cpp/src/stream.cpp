// rnnkit::Stream: the allocation-free streaming step. Each unidirectional
// recurrent layer's weights are packed once for one row's products
// (step_weights, the layout Layer::StepWeights describes), and a step runs the
// cells' own step (rnn.h, lstm.h, gru.h) on them group by group.

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "model_layers.h"
#include "rnnkit/cells.h"
#include "rnnkit/driver.h"
#include "rnnkit/layers.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wignored-attributes"  // Eigen's packet types as template arguments
#endif

namespace rnnkit {

namespace detail {

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
  w.dp = dp;
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

template Layer<float>::StepWeights step_weights<float>(const StackSpec&, const float*, Index);
template Layer<double>::StepWeights step_weights<double>(const StackSpec&, const double*, Index);

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
  DirParams dp;           // where the sub-layer's parameters are (looked up once)
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

using detail::Kind;
using detail::Layer;
using detail::ModelLayers;
using detail::lanes_of;
using detail::Packet0;
using detail::Packet1;
using detail::Packet2;

// The groups of one row (Layer::StepWeights), U = Pk's lanes: for each, its
// panel's sums into g, then the cell on the group's units. Every other step goes
// over the groups backwards: a step then starts on the weights the step before
// ended on, still in L1. That matters where the weights are a little larger
// than L1 (hidden 64: 50-66 KiB), since the step is bound by how fast L2 streams them.
// Apart: the groups' registers are r, z, n_x, n_h (StepWeights::apart), a
// template argument so that each instantiation holds one panel product.
template <class Cell, class Pk, bool Apart, class S>
void group_steps(const typename Layer<S>::StepWeights& w, Index H, Index P, Index K, const S* z, S* c, S* m, S* g,
                 detail::StepArgs<S>& a, bool backwards) {
  constexpr Index U = lanes_of<Pk>;
  constexpr bool gru = Apart;  // no n_x in z's P h rows, no n_h in its x rows (Layer::StepWeights)
  const Index units = w.units, groups = (H + units - 1) / units;
  const Index size = (4 * K - (gru ? K - 1 : 0)) * U;  // a group's panel
  a.in.xg = g;
  a.in.hg = gru ? g + units : g;
  const S* peep = a.w.peep;
  for (Index i = 0; i < groups; ++i) {
    const Index u = backwards ? groups - 1 - i : i, n0 = u * units;
    const S* panel = w.groups.data() + u * size;
    if constexpr (gru)
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

template <class Cell, class Pk, class S>
void group_steps_of(const typename Layer<S>::StepWeights& w, Index H, Index P, Index K, const S* z, S* c, S* m, S* g,
                    detail::StepArgs<S>& a, bool backwards) {
  if (w.apart)
    group_steps<Cell, Pk, true>(w, H, P, K, z, c, m, g, a, backwards);
  else
    group_steps<Cell, Pk, false>(w, H, P, K, z, c, m, g, a, backwards);
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
      group_steps_of<Cell, Packet0<S>>(w, H, P, K, z, c, m, g, a, backwards);
    } else if (w.lanes == lanes_of<Packet1<S>>) {
      group_steps_of<Cell, Packet1<S>>(w, H, P, K, z, c, m, g, a, backwards);
    } else if (w.lanes == lanes_of<Packet2<S>>) {
      group_steps_of<Cell, Packet2<S>>(w, H, P, K, z, c, m, g, a, backwards);
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

// One step of sub-layer l of a stack whose weight matrices are int8 / bfloat16
// (LowpStack), row by row: the driver's forward on one row, with its products
// (x_t W_ih^T and h_{t-1} W_hh^T apart, each row of activations quantized on its
// own) and the cell's step as they are there, so a stream gives predict's outputs.
template <class Cell, class W>
void lowp_cell_step(const StackSpec& s, const float* params, const DirWeights<W>& pw, const float* x,
                    detail::StepBuffers<float>& st, Index B) {
  const CellDecl d = s.decl();
  const DirParams& dp = st.dp;
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size, GH = d.gates * H, R = d.rec_gates() * H;
  const CellWeights<float, W> w = detail::cell_weights(s, params, dp, R < GH ? &pw.w_gated : nullptr);
  float* xg = st.g.data();
  float* hg = xg + GH;
  float* hprev = st.z.data();
  StepRange rg;
  rg.b = 1, rg.own_thread = true;
  for (Index r = 0; r < B; ++r) {
    float* h = st.h.data() + r * P;
    std::copy_n(h, P, hprev);  // the cell may write h_t over h
    vec_mat(xg, x + r * I, pw.w_in);
    vec_mat(hg, hprev, pw.w_rec);
    StepIn<float> in;
    in.xg = xg, in.hg = hg, in.hprev = {hprev, nullptr, P};
    StepOut<float> out;
    out.m = {dp.w_hr >= 0 ? st.m.data() : h, nullptr, H};
    out.c = st.c.size() > 0 ? st.c.data() + r * H : nullptr;
    out.cache = st.cache.data(), out.work = st.work.data();
    Cell::forward(s, w, rg, in, out);
    if (dp.w_hr >= 0) vec_mat(h, st.m.data(), pw.w_proj);
  }
}

template <class S>
void stack_step(const Layer<S>& L, const S* x, std::vector<detail::StepBuffers<S>>& subs, Index B, bool backwards) {
  const StackSpec& s = L.spec;
  if constexpr (std::is_same_v<S, float>) {
    if (L.lowp) {
      for (Index l = 0; l < s.num_layers; ++l) {
        auto& st = subs[std::size_t(l)];
        with_cell(s, [&](auto cell) {
          using Cell = decltype(cell);
          if (L.lowp->precision == Precision::Int8)
            lowp_cell_step<Cell>(s, L.params.data(), L.lowp->int8[std::size_t(l)], x, st, B);
          else
            lowp_cell_step<Cell>(s, L.params.data(), L.lowp->bf16[std::size_t(l)], x, st, B);
        });
        x = st.h.data();
      }
      return;
    }
  }
  for (Index l = 0; l < s.num_layers; ++l) {
    const auto& w = L.step[std::size_t(l)];
    with_cell(s, [&](auto cell) { cell_step<decltype(cell)>(s, w.dp, w, x, subs[std::size_t(l)], B, backwards); });
    x = subs[std::size_t(l)].h.data();
  }
}

template <class S, class Id>
void run_step(detail::StreamState<S>& st, const S* x, const Id* ids, S* y) {
  const ModelLayers<S>& m = *st.model;
  check_input(m, x, ids, y);
  const Index B = st.B;
  // Before anything changes, so a refused step leaves the state as it was. NaN is refused
  // too: the recurrent state would carry it into every later step. (An infinity is not: it
  // saturates the gates, as in the forward.)
  if (m.ids) {
    const Index num = m.layers[0].in;
    for (Index b = 0; b < B; ++b)
      if (ids[b] < 0 || Index(ids[b]) >= num)
        throw std::invalid_argument("x_t[" + std::to_string(b) + "] = " + std::to_string(ids[b]) +
                                    " is out of range: token ids must be in 0.." + std::to_string(num - 1));
  } else {
    for (Index k = 0; k < B * m.input; ++k)
      if (std::isnan(x[k]))
        throw std::invalid_argument("x_t[" + std::to_string(k / m.input) + ", " + std::to_string(k % m.input) +
                                    "] is NaN: the stream's state would carry it into every later step");
  }
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
          if constexpr (std::is_same_v<S, float>) {
            if (L.lowp_linear) {
              if (!L.bias) std::fill_n(out + r * L.out, L.out, 0.0f);
              L.lowp_linear->apply(out + r * L.out, in + r * L.in, 1, true);
              continue;
            }
          }
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
      b.cache.resize(1, d.cache * H);
      b.m.resize(1, H);
      b.work.resize(1, H);
      if (L.lowp) {  // lowp_cell_step: x_t W_ih^T, then h_{t-1} W_hh^T
        b.g = Mat<S>::Zero(1, d.gates * H + d.rec_gates() * H);
        b.dp = s.dir_params(l, 0);
        st->rec[i].push_back(std::move(b));
        continue;
      }
      const auto& w = L.step[std::size_t(l)];
      Index g_cols = 4 * w.lanes;  // as wide as a group's panel or the products write
      for (const auto& p : w.products) g_cols = std::max(g_cols, p.out + p.w.N);
      b.g = Mat<S>::Zero(1, g_cols);
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

}  // namespace rnnkit
