#pragma once
// GRU cell, gate rows in PyTorch's order r, z, n:
//   r = σ(W_ir x + b_ir + W_hr h + b_hr)
//   z = σ(W_iz x + b_iz + W_hz h + b_hz)
//   reset_after=true  (PyTorch, Keras v2, ONNX linear_before_reset=1):
//     n = tanh(W_in x + b_in + r⊙(W_hn h + b_hn))
//   reset_after=false (the textbook form, Keras v1):
//     n = tanh(W_in x + b_in + W_hn (r⊙h) + b_hn)
//   h_t = (1-z)⊙n + z⊙h_{t-1}
// Cache per row: | r z n | q |  (4H), where q = W_hn h + b_hn (reset_after)
// or q = r⊙h (reset_after=false: the input of the step's own W_hn product).

#include "activations.h"
#include "gates.h"
#include "gemm.h"

namespace rnnkit {

struct GruCell {
  static CellDecl decl(const StackSpec& s) {
    CellDecl d;
    d.gates = 3;
    d.sums[0] = d.sums[1] = GateSum::Plain;
    // reset_after=false: the candidate's product needs r⊙h_{t-1} of every unit, so the cell does it
    d.sums[2] = s.reset_after ? GateSum::Apart : GateSum::Gated;
    d.cache = 4;
    d.grads_in_cache = false;  // q is still needed after dL/da_n is written
    d.direct_dh = true;        // h_{t-1} also enters through z⊙h_{t-1}
    return d;
  }

  template <class S, class W>
  static void forward(const StackSpec& s, const CellWeights<S, W>& w, const StepRange& rg, const StepIn<S>& in,
                      const StepOut<S>& out) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 3 * H, R = decl(s).rec_gates() * H;
    const bool after = s.reset_after;
    auto x_n = [&](auto v, const S* xg, Index j) {  // W_in x + b_in, element j
      using V = decltype(v);
      const V x = load<V>(xg + 2 * H + j);
      return w.b_ih ? padd(x, load<V>(w.b_ih + 2 * H + j)) : x;
    };
    // r, z, and with reset_after the whole step; without, q = r⊙h_{t-1} for the product below
    parallel_for(rg.b, rg.row_work(rg.b * GH), [&](Index row) {
      const S* xg = in.xg + row * GH;
      const S* hg = in.hg + row * R;
      const S* hp = in.hprev.row(row);
      S* m = out.m.row(row);
      S* keep = out.keep_row(row);
      S* cache = out.cache + row * 4 * H;
      for_units<S>(rg, H, [&](auto v, Index j) {
        using V = decltype(v);
        const V r = sigmoid(gate_sum<V>(in, w, xg, hg, j)), z = sigmoid(gate_sum<V>(in, w, xg, hg, H + j));
        if (after) {
          V q = load<V>(hg + 2 * H + j);  // W_hn h + b_hn
          if (w.b_hh) q = padd(q, load<V>(w.b_hh + 2 * H + j));
          const V n = tanh(padd(x_n(v, xg, j), pmul(r, q)));
          const V h = load<V>(hp + j), ht = pmadd(z, psub(h, n), n);  // (1-z)⊙n + z⊙h
          store(m + j, ht);
          if (keep) store(keep + j, ht);
          if (out.training)
            store(cache + j, r), store(cache + H + j, z), store(cache + 2 * H + j, n), store(cache + 3 * H + j, q);
        } else {
          store(cache + j, r), store(cache + H + j, z);
          store(cache + 3 * H + j, pmul(r, load<V>(hp + j)));
        }
      });
    });
    if (after) return;
    // work = (r⊙h) W_hn^T : the one product that must wait for r
    if (w.w_gated)  // packed once per sequence by the driver; a row's sums do not depend on the other rows
      packed_gemm(out.work, H, out.cache + 3 * H, 4 * H, rg.b, *w.w_gated);
    else  // the streaming step: row by row, no packing buffers
      gemv_rows(mat(out.work, rg.b, H), cmat(out.cache + 3 * H, rg.b, H, 4 * H),
                cmat(w.w_hh + 2 * H * H, H, H).transpose());
    parallel_for(rg.b, rg.row_work(rg.b * H), [&](Index row) {
      const S* xg = in.xg + row * GH;
      const S* hp = in.hprev.row(row);
      S* m = out.m.row(row);
      S* keep = out.keep_row(row);
      S* cache = out.cache + row * 4 * H;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        V x = padd(x_n(v, xg, j), load<V>(out.work + row * H + j));
        if (w.b_hh) x = padd(x, load<V>(w.b_hh + 2 * H + j));
        const V n = tanh(x), z = load<V>(cache + H + j), h = load<V>(hp + j), ht = pmadd(z, psub(h, n), n);
        store(m + j, ht);
        if (keep) store(keep + j, ht);
        store(cache + 2 * H + j, n);
      });
    });
  }

  template <class S>
  static void backward(const StackSpec& s, const CellWeights<S>& w, const StepRange& rg, const StepGradIn<S>& in,
                       const StepGradOut<S>& out) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 3 * H, R = decl(s).rec_gates() * H;
    const bool after = s.reset_after;
    parallel_for(rg.b, rg.row_work(rg.b * GH), [&](Index row) {
      const S* cache = in.cache + row * 4 * H;
      const S* hp = in.hprev + row * H;
      const S* dm = in.dm + row * H;
      S* dx = out.dxg + row * GH;
      S* dh = out.dhg + row * R;
      S* dhp = out.dhprev + row * H;
      for_units<S>(rg, H, [&](auto v, Index j) {
        using V = decltype(v);
        const V r = load<V>(cache + j), z = load<V>(cache + H + j), n = load<V>(cache + 2 * H + j),
                dmj = load<V>(dm + j);
        store(dhp + j, pmul(dmj, z));                                         // dL/dh_{t-1} (direct) = dm ⊙ z
        const V dz = pmul(pmul(dmj, psub(load<V>(hp + j), n)), dsigmoid(z));  // dL/da_z = dm ⊙ (h_{t-1} - n) ⊙ σ'
        const V dn = pmul(psub(dmj, pmul(dmj, z)), dtanh(n));                 // dL/da_n = dm ⊙ (1-z) ⊙ tanh'
        store(dx + H + j, dz), store(dh + H + j, dz);
        store(dx + 2 * H + j, dn);
        if (after) {
          const V q = load<V>(cache + 3 * H + j);
          const V dr = pmul(pmul(dn, q), dsigmoid(r));                        // dL/da_r = dL/da_n ⊙ q ⊙ σ'
          store(dx + j, dr), store(dh + j, dr);
          store(dh + 2 * H + j, pmul(dn, r));                                 // dL/d(W_hn h + b_hn) = dL/da_n ⊙ r
        }
      });
    });
    if (after) return;
    // work = dL/d(r⊙h) = dL/da_n W_hn
    packed_gemm(out.work, H, out.dxg + 2 * H, GH, rg.b, *w.w_gated);
    parallel_for(rg.b, rg.b * GH, [&](Index row) {
      const S* r_ = in.cache + row * 4 * H;
      const S* hp = in.hprev + row * H;
      const S* drh = out.work + row * H;
      S* dx = out.dxg + row * GH;
      S* dh = out.dhg + row * R;
      S* dhp = out.dhprev + row * H;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        const V r = load<V>(r_ + j), d = load<V>(drh + j);
        const V dr = pmul(pmul(d, load<V>(hp + j)), dsigmoid(r));  // dL/da_r = dL/d(r⊙h) ⊙ h ⊙ σ'
        store(dx + j, dr), store(dh + j, dr);
        store(dhp + j, pmadd(d, r, load<V>(dhp + j)));              // dL/dh_{t-1} += dL/d(r⊙h) ⊙ r
      });
    });
  }

  // reset_after=false: the W_hn rows saw r⊙h, not h, so the driver's
  // dW_hh = dhg^T h_{t-1} skips them; their gradient over all N rows is here
  // (db_x: the driver's column sums of dxg, whose n block is also b_hn's).
  template <class S>
  static void backward_weights(const StackSpec& s, Index N, const S* dxg, Index ld_dxg, const S* cache, const S* db_x,
                               S* grads, const DirParams& gp) {
    if (s.reset_after) return;
    const Index H = s.hidden_size;
    // dW_hn += dL/da_n^T · (r ⊙ h_{t-1}), over all N rows
    gemm_tn(grads + gp.w_hh + 2 * H * H, H, dxg + 2 * H, ld_dxg, cache + 3 * H, 4 * H, H, H, N, true);
    if (gp.b_hh >= 0) arr(grads + gp.b_hh + 2 * H, H) += carr(db_x + 2 * H, H);
  }
};

}  // namespace rnnkit
