#pragma once
// LSTM cell, gate rows in PyTorch's order i, f, g, o:
//   a = W_ih x + b_ih + W_hh h_{t-1} + b_hh
//   i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o)
//   c_t = f⊙c_{t-1} + i⊙g
//   m_t = o⊙tanh(c_t)          (h_t = m_t, or W_hr m_t with proj_size)
//
// With peepholes (ONNX's LSTM with input P), the gates also see the cell state,
// one weight per unit, rows p_i, p_f, p_o of weight_peephole (3, H):
//   i = σ(a_i + p_i⊙c_{t-1})   f = σ(a_f + p_f⊙c_{t-1})   o = σ(a_o + p_o⊙c_t)
//
// Cache per row: | i f g o | c_{t-1} |  (5H), with peepholes | i f g o | c_{t-1} | c_t |
// (6H). Without peepholes tanh(c_t) is recomputed in backward from i, f, g and
// c_{t-1}, which saves an (N, H) buffer; with them c_t is kept, since the
// peephole weights' gradient (after the time loop, when the gates have become
// their gradients) needs it.

#include "activations.h"
#include "gates.h"

namespace rnnkit {

template <bool Peepholes>
struct BasicLstmCell {
  static CellDecl decl(const StackSpec&) {
    CellDecl d;
    d.gates = 4;
    for (GateSum& g : d.sums) g = GateSum::Plain;
    d.has_c = true;
    d.cache = Peepholes ? 6 : 5;
    d.grads_in_cache = true;  // dL/da_{i,f,g,o} overwrite i, f, g, o
    d.peepholes = Peepholes ? 3 : 0;
    return d;
  }

  template <class S, class W>
  static void forward(const StackSpec& s, const CellWeights<S, W>& w, const StepRange& rg, const StepIn<S>& in,
                      const StepOut<S>& out) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 4 * H, C = decl(s).cache * H;
    const S* p_i = w.peep;  // Peepholes: rows p_i, p_f, p_o, ld_peep apart
    parallel_for(rg.b, rg.row_work(rg.b * GH), [&](Index r) {
      const S* xg = in.xg + r * GH;
      const S* hg = in.hg + r * GH;
      S* c = out.c + r * H;
      S* m = out.m.row(r);
      S* keep = out.keep_row(r);
      S* cache = out.training ? out.cache + r * C : nullptr;
      for_units<S>(rg, H, [&](auto v, Index j) {
        using V = decltype(v);
        V i, f, g, o, c_prev, c_t;
        if constexpr (Peepholes) {
          c_prev = load<V>(c + j);
          i = sigmoid(pmadd(load<V>(p_i + j), c_prev, gate_sum<V>(in, w, xg, hg, j)));
          f = sigmoid(pmadd(load<V>(p_i + w.ld_peep + j), c_prev, gate_sum<V>(in, w, xg, hg, H + j)));
          g = tanh(gate_sum<V>(in, w, xg, hg, 2 * H + j));
          c_t = pmadd(f, c_prev, pmul(i, g));
          o = sigmoid(pmadd(load<V>(p_i + 2 * w.ld_peep + j), c_t, gate_sum<V>(in, w, xg, hg, 3 * H + j)));
        } else {
          i = sigmoid(gate_sum<V>(in, w, xg, hg, j)), f = sigmoid(gate_sum<V>(in, w, xg, hg, H + j)),
          g = tanh(gate_sum<V>(in, w, xg, hg, 2 * H + j)), o = sigmoid(gate_sum<V>(in, w, xg, hg, 3 * H + j));
          c_prev = load<V>(c + j), c_t = pmadd(f, c_prev, pmul(i, g));
        }
        store(c + j, c_t);
        const V h = pmul(o, tanh(c_t));
        store(m + j, h);
        if (keep) store(keep + j, h);
        if (cache) {
          store(cache + j, i), store(cache + H + j, f), store(cache + 2 * H + j, g), store(cache + 3 * H + j, o);
          store(cache + GH + j, c_prev);
          if constexpr (Peepholes) store(cache + GH + H + j, c_t);
        }
      });
    });
  }

  // Writes dL/da over the cache's gates (each element's gates are read before
  // any is written).
  template <class S>
  static void backward(const StackSpec& s, const CellWeights<S>& w, const StepRange& rg, const StepGradIn<S>& in,
                       const StepGradOut<S>& out) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 4 * H, C = decl(s).cache * H;
    const S* p_i = w.peep;
    parallel_for(rg.b, rg.row_work(rg.b * GH), [&](Index r) {
      const S* cache = in.cache + r * C;
      const S* dm = in.dm + r * H;
      S* dc = out.dc + r * H;
      S* dx = out.dxg + r * out.ld_dxg;
      for_units<S>(rg, H, [&](auto v, Index j) {
        using V = decltype(v);
        const V i = load<V>(cache + j), f = load<V>(cache + H + j), g = load<V>(cache + 2 * H + j),
                o = load<V>(cache + 3 * H + j), c_prev = load<V>(cache + GH + j), dmj = load<V>(dm + j);
        if constexpr (Peepholes) {
          const V tc = tanh(load<V>(cache + GH + H + j));                    // tanh(c_t)
          const V da_o = pmul(pmul(dmj, tc), dsigmoid(o));                   // dL/da_o = dm ⊙ tanh(c_t) ⊙ σ'
          const V dct = pmadd(da_o, load<V>(p_i + 2 * w.ld_peep + j),        // dL/dc_t, o's peephole included
                              padd(load<V>(dc + j), pmul(pmul(dmj, o), dtanh(tc))));
          const V da_i = pmul(pmul(dct, g), dsigmoid(i));                    // dL/da_i = dc ⊙ g ⊙ σ'
          const V da_f = pmul(pmul(dct, c_prev), dsigmoid(f));               // dL/da_f = dc ⊙ c_{t-1} ⊙ σ'
          store(dx + j, da_i), store(dx + H + j, da_f);
          store(dx + 2 * H + j, pmul(pmul(dct, i), dtanh(g)));               // dL/da_g = dc ⊙ i ⊙ tanh'
          store(dx + 3 * H + j, da_o);
          // dL/dc_{t-1} = dc ⊙ f + dL/da_i ⊙ p_i + dL/da_f ⊙ p_f
          store(dc + j, pmadd(da_f, load<V>(p_i + w.ld_peep + j), pmadd(da_i, load<V>(p_i + j), pmul(dct, f))));
        } else {
          const V tc = tanh(padd(pmul(f, c_prev), pmul(i, g)));           // tanh(c_t), recomputed
          const V dct = padd(load<V>(dc + j), pmul(pmul(dmj, o), dtanh(tc)));  // dL/dc_t
          store(dx + j, pmul(pmul(dct, g), dsigmoid(i)));               // dL/da_i = dc ⊙ g ⊙ σ'
          store(dx + H + j, pmul(pmul(dct, c_prev), dsigmoid(f)));      // dL/da_f = dc ⊙ c_{t-1} ⊙ σ'
          store(dx + 2 * H + j, pmul(pmul(dct, i), dtanh(g)));          // dL/da_g = dc ⊙ i ⊙ tanh'
          store(dx + 3 * H + j, pmul(pmul(dmj, tc), dsigmoid(o)));      // dL/da_o = dm ⊙ tanh(c_t) ⊙ σ'
          store(dc + j, pmul(dct, f));                                  // dL/dc_{t-1} = dc ⊙ f
        }
      });
    });
  }
};

// The peephole weights' gradient over all N rows, after the time loop, from the
// cache (dL/da over the gates, c_{t-1} and c_t beside them):
//   dp_i += Σ dL/da_i ⊙ c_{t-1}   dp_f += Σ dL/da_f ⊙ c_{t-1}   dp_o += Σ dL/da_o ⊙ c_t
struct PeepholeLstmCell : BasicLstmCell<true> {
  template <class S>
  static void backward_weights(const StackSpec& s, Index N, const S* dxg, Index ld_dxg, const S* cache, const S*,
                               S* grads, const DirParams& gp) {
    const Index H = s.hidden_size, C = 6 * H;
    auto dp_i = arr(grads + gp.peep, H), dp_f = arr(grads + gp.peep + H, H), dp_o = arr(grads + gp.peep + 2 * H, H);
    for (Index r = 0; r < N; ++r) {
      const S* da = dxg + r * ld_dxg;
      const S* c_prev = cache + r * C + 4 * H;
      dp_i += carr(da, H) * carr(c_prev, H);
      dp_f += carr(da + H, H) * carr(c_prev, H);
      dp_o += carr(da + 3 * H, H) * carr(c_prev + H, H);
    }
  }
};

using LstmCell = BasicLstmCell<false>;

}  // namespace rnnkit
