#pragma once
// LSTM cell, gate rows in PyTorch's order i, f, g, o:
//   i = σ(a_i)  f = σ(a_f)  g = tanh(a_g)  o = σ(a_o),   a = W_ih x + b_ih + W_hh h + b_hh
//   c_t = f⊙c_{t-1} + i⊙g
//   m_t = o⊙tanh(c_t)          (h_t = m_t, or W_hr m_t with proj_size)
// Cache per row: | i f g o | c_{t-1} |  (5H). tanh(c_t) is recomputed in
// backward from these, which saves a (N, H) buffer.

#include "activations.h"
#include "gates.h"

namespace rnnkit {

struct LstmCell {
  static constexpr Index G = 4;
  static constexpr bool has_c = true;
  static constexpr bool same_dhg = true;
  static constexpr bool direct_dh = false;
  static constexpr bool grads_in_cache = true;  // dL/da_{i,f,g,o} overwrite i, f, g, o
  static Index rec_rows(const StackSpec& s) { return 4 * s.hidden_size; }
  static Index cache_cols(const StackSpec& s) { return 5 * s.hidden_size; }
  static bool splits_by_unit(const StackSpec&) { return true; }  // every unit's step is its own

  template <class S>
  static void forward(const StackSpec& s, const StepForward<S>& a) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 4 * H;
    parallel_for(a.b, a.row_work(a.b * GH), [&](Index r) {
      const S* xg = a.xg + r * GH;
      const S* hg = a.hg + r * GH;
      S* c = a.c + r * H;
      S* m = a.m_row(r, H);
      S* keep = a.m_keep(r, H);
      S* cache = a.training ? a.cache + r * 5 * H : nullptr;
      for_units<S>(a, H, [&](auto v, Index j) {
        using V = decltype(v);
        const V i = sigmoid(gate_sum<V>(a, xg, hg, j)), f = sigmoid(gate_sum<V>(a, xg, hg, H + j)),
                g = tanh(gate_sum<V>(a, xg, hg, 2 * H + j)), o = sigmoid(gate_sum<V>(a, xg, hg, 3 * H + j));
        const V c_prev = load<V>(c + j), c_t = pmadd(f, c_prev, pmul(i, g));
        store(c + j, c_t);
        const V h = pmul(o, tanh(c_t));
        store(m + j, h);
        if (keep) store(keep + j, h);
        if (cache) {
          store(cache + j, i), store(cache + H + j, f), store(cache + 2 * H + j, g), store(cache + 3 * H + j, o);
          store(cache + GH + j, c_prev);
        }
      });
    });
  }

  // Writes dL/da over the cache's gates (each element's gates are read before
  // any is written).
  template <class S>
  static void backward(const StackSpec& s, const StepBackward<S>& a) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 4 * H;
    parallel_for(a.b, a.row_work(a.b * GH), [&](Index r) {
      const S* cache = a.cache + r * 5 * H;
      const S* dm = a.dm + r * H;
      S* dc = a.dc + r * H;
      S* dx = a.dxg + r * a.ld_dxg;
      for_units<S>(a, H, [&](auto v, Index j) {
        using V = decltype(v);
        const V i = load<V>(cache + j), f = load<V>(cache + H + j), g = load<V>(cache + 2 * H + j),
                o = load<V>(cache + 3 * H + j), c_prev = load<V>(cache + GH + j), dmj = load<V>(dm + j);
        const V tc = tanh(padd(pmul(f, c_prev), pmul(i, g)));           // tanh(c_t), recomputed
        const V dct = padd(load<V>(dc + j), pmul(pmul(dmj, o), dtanh(tc)));  // dL/dc_t
        store(dx + j, pmul(pmul(dct, g), dsigmoid(i)));               // dL/da_i = dc ⊙ g ⊙ σ'
        store(dx + H + j, pmul(pmul(dct, c_prev), dsigmoid(f)));      // dL/da_f = dc ⊙ c_{t-1} ⊙ σ'
        store(dx + 2 * H + j, pmul(pmul(dct, i), dtanh(g)));          // dL/da_g = dc ⊙ i ⊙ tanh'
        store(dx + 3 * H + j, pmul(pmul(dmj, tc), dsigmoid(o)));      // dL/da_o = dm ⊙ tanh(c_t) ⊙ σ'
        store(dc + j, pmul(dct, f));                                  // dL/dc_{t-1} = dc ⊙ f
      });
    });
  }

  template <class S>
  static void backward_weights(const StackSpec&, Index, const S*, const S*, const S*, S*, S*) {}
};

}  // namespace rnnkit
