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

  template <class S>
  static void forward(const StackSpec& s, const StepForward<S>& a) {
    const Index H = s.hidden_size;
    const bool relu_act = s.cell == CellType::RNN_RELU;
    parallel_for(a.b, a.realtime ? 0 : a.b * H, [&](Index r) {
      auto pre = arr(a.m + r * H, H);
      pre = carr(a.xg + r * H, H) + carr(a.hg + r * H, H);
      if (a.b_hh) pre += carr(a.b_hh, H);
      if (relu_act)
        pre = relu(pre);
      else
        pre = pre.tanh();
      arr(a.cache + r * H, H) = pre;
    });
  }

  template <class S>
  static void backward(const StackSpec& s, const StepBackward<S>& a) {
    const Index H = s.hidden_size;
    const bool relu_act = s.cell == CellType::RNN_RELU;
    parallel_for(a.b, a.b * H, [&](Index r) {
      auto h = carr(a.cache + r * H, H);
      auto dm = carr(a.dm + r * H, H);
      // dL/dpre = dL/dh ⊙ act'(pre)
      if (relu_act)
        arr(a.dxg + r * a.ld_dxg, H) = dm * drelu(h);
      else
        arr(a.dxg + r * a.ld_dxg, H) = dm * dtanh(h);
    });
  }

  template <class S>
  static void backward_weights(const StackSpec&, Index, const S*, const S*, S*, S*) {}
};

}  // namespace rnnkit
