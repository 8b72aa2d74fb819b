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

  template <class S>
  static void forward(const StackSpec& s, const StepForward<S>& a) {
    const Index H = s.hidden_size, GH = 4 * H;
    parallel_for(a.b, a.realtime ? 0 : a.b * GH, [&](Index r) {
      S* cache = a.cache + r * 5 * H;
      auto gates = arr(cache, GH);  // pre-activations, then gates in place
      gates = carr(a.xg + r * GH, GH) + carr(a.hg + r * GH, GH);
      if (a.b_hh) gates += carr(a.b_hh, GH);
      gates.head(2 * H) = sigmoid(gates.head(2 * H));        // i, f
      gates.segment(2 * H, H) = gates.segment(2 * H, H).tanh();  // g
      gates.tail(H) = sigmoid(gates.tail(H));                // o
      auto i = gates.segment(0, H), f = gates.segment(H, H), g = gates.segment(2 * H, H),
           o = gates.segment(3 * H, H);
      auto c = arr(a.c + r * H, H);
      arr(cache + GH, H) = c;  // c_{t-1}
      c = f * c + i * g;
      arr(a.m + r * H, H) = o * c.tanh();
    });
  }

  // Writes dL/da over the cache's gates, in an order that reads each gate
  // before its slot is overwritten (work holds one H-vector of the row).
  template <class S>
  static void backward(const StackSpec& s, const StepBackward<S>& a) {
    const Index H = s.hidden_size, GH = 4 * H;
    parallel_for(a.b, a.b * GH, [&](Index r) {
      const S* cache = a.cache + r * 5 * H;
      auto i = carr(cache, H), f = carr(cache + H, H), g = carr(cache + 2 * H, H),
           o = carr(cache + 3 * H, H), c_prev = carr(cache + GH, H);
      auto dm = carr(a.dm + r * H, H);
      auto dc = arr(a.dc + r * H, H);
      auto work = arr(a.work + r * H, H);
      S* dx = a.dxg + r * a.ld_dxg;
      work = (f * c_prev + i * g).tanh();                 // tanh(c_t), recomputed
      dc += dm * o * dtanh(work);                         // dL/dc_t += dm ⊙ o ⊙ tanh'(c_t)
      arr(dx + 3 * H, H) = dm * work * dsigmoid(o);       // dL/da_o = dm ⊙ tanh(c_t) ⊙ σ'
      work = dc * g * dsigmoid(i);                        // dL/da_i = dc ⊙ g ⊙ σ'  (i still needed)
      arr(dx + 2 * H, H) = dc * i * dtanh(g);             // dL/da_g = dc ⊙ i ⊙ tanh'
      arr(dx, H) = work;
      work = dc * f;                                      // dL/dc_{t-1} = dc ⊙ f  (f still needed)
      arr(dx + H, H) = dc * c_prev * dsigmoid(f);         // dL/da_f = dc ⊙ c_{t-1} ⊙ σ'
      dc = work;
    });
  }

  template <class S>
  static void backward_weights(const StackSpec&, Index, const S*, const S*, S*, S*) {}
};

}  // namespace rnnkit
