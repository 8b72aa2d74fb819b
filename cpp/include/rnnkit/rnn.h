#pragma once
// Vanilla (Elman) RNN cell, one gate:
//   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),   act = tanh or relu
// Shapes: b rows, H hidden. Cache per row: h_t (H), the activation's output,
// from which its derivative is computed; backward writes dL/dpre over it.

#include "activations.h"
#include "gates.h"

namespace rnnkit {

struct RnnCell {
  static CellDecl decl(const StackSpec&) {
    CellDecl d;
    d.gates = 1;
    d.sums[0] = GateSum::Plain;
    d.cache = 1;
    d.grads_in_cache = true;
    return d;
  }

  template <class S, class W>
  static void forward(const StackSpec& s, const CellWeights<S, W>& w, const StepRange& rg, const StepIn<S>& in,
                      const StepOut<S>& out) {
    using namespace lane;
    const Index H = s.hidden_size;
    const bool relu_act = s.cell == CellType::RNN_RELU;
    parallel_for(rg.b, rg.row_work(rg.b * H), [&](Index r) {
      const S* xg = in.xg + r * H;
      const S* hg = in.hg + r * H;
      S* m = out.m.row(r);
      S* keep = out.keep_row(r);
      S* cache = out.training ? out.cache + r * H : nullptr;
      for_units<S>(rg, H, [&](auto v, Index j) {
        using V = decltype(v);
        V x = gate_sum<V>(in, w, xg, hg, j);
        x = relu_act ? relu(x) : tanh(x);
        store(m + j, x);
        if (keep) store(keep + j, x);
        if (cache) store(cache + j, x);
      });
    });
  }

  template <class S>
  static void backward(const StackSpec& s, const CellWeights<S>&, const StepRange& rg, const StepGradIn<S>& in,
                       const StepGradOut<S>& out) {
    using namespace lane;
    const Index H = s.hidden_size;
    const bool relu_act = s.cell == CellType::RNN_RELU;
    parallel_for(rg.b, rg.row_work(rg.b * H), [&](Index r) {
      const S* h = in.cache + r * H;
      const S* dm = in.dm + r * H;
      S* dx = out.dxg + r * out.ld_dxg;
      for_units<S>(rg, H, [&](auto v, Index j) {  // dL/dpre = dL/dh ⊙ act'(pre)
        using V = decltype(v);
        const V hj = load<V>(h + j), dmj = load<V>(dm + j);
        store(dx + j, relu_act ? drelu_times(hj, dmj) : pmul(dmj, dtanh(hj)));
      });
    });
  }
};

}  // namespace rnnkit
