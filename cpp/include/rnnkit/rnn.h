#pragma once
// Vanilla (Elman) RNN cell, one gate:
//   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu
// Shapes: B rows, H hidden. Cache per row: h_t (H), the activation's output,
// from which its derivative is computed.

#include "activations.h"
#include "gates.h"

namespace rnnkit {

struct RnnCell {
  static constexpr Index G = 1;
  static constexpr bool has_c = false;     // no cell state
  static constexpr bool same_dhg = true;   // dL/dhg == dL/dxg
  static constexpr bool direct_dh = false; // h_{t-1} enters only through hg
  static constexpr bool grads_in_cache = true;  // dL/dpre overwrites h_t, element by element
  static Index rec_rows(const StackSpec& s) { return s.hidden_size; }
  static Index cache_cols(const StackSpec& s) { return s.hidden_size; }
  static bool splits_by_unit(const StackSpec&) { return true; }  // every unit's step is its own

  template <class S>
  static void forward(const StackSpec& s, const StepForward<S>& a) {
    using namespace lane;
    const Index H = s.hidden_size;
    const bool relu_act = s.cell == CellType::RNN_RELU;
    parallel_for(a.b, a.row_work(a.b * H), [&](Index r) {
      const S* xg = a.xg + r * H;
      const S* hg = a.hg + r * H;
      S* m = a.m_row(r, H);
      S* keep = a.m_keep(r, H);
      S* cache = a.training ? a.cache + r * H : nullptr;
      for_units<S>(a, H, [&](auto v, Index j) {
        using V = decltype(v);
        V x = gate_sum<V>(a, xg, hg, j);
        x = relu_act ? relu(x) : tanh(x);
        store(m + j, x);
        if (keep) store(keep + j, x);
        if (cache) store(cache + j, x);
      });
    });
  }

  template <class S>
  static void backward(const StackSpec& s, const StepBackward<S>& a) {
    using namespace lane;
    const Index H = s.hidden_size;
    const bool relu_act = s.cell == CellType::RNN_RELU;
    parallel_for(a.b, a.row_work(a.b * H), [&](Index r) {
      const S* h = a.cache + r * H;
      const S* dm = a.dm + r * H;
      S* dx = a.dxg + r * a.ld_dxg;
      for_units<S>(a, H, [&](auto v, Index j) {  // dL/dpre = dL/dh ⊙ act'(pre)
        using V = decltype(v);
        const V hj = load<V>(h + j), dmj = load<V>(dm + j);
        store(dx + j, relu_act ? drelu_times(hj, dmj) : pmul(dmj, dtanh(hj)));
      });
    });
  }

  template <class S>
  static void backward_weights(const StackSpec&, Index, const S*, const S*, const S*, S*, S*) {}
};

}  // namespace rnnkit
