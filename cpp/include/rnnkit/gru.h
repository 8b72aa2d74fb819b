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
  static constexpr Index G = 3;
  static constexpr bool has_c = false;
  static constexpr bool same_dhg = false;  // the n rows differ: r⊙(·), or no hg at all
  static constexpr bool direct_dh = true;  // h_{t-1} also enters through z⊙h_{t-1}
  static constexpr bool grads_in_cache = false;  // q is still needed after dL/da_n is written
  // reset_after=false: the driver's product covers the r and z rows only.
  static Index rec_rows(const StackSpec& s) { return (s.reset_after ? 3 : 2) * s.hidden_size; }
  static Index cache_cols(const StackSpec& s) { return 4 * s.hidden_size; }
  // reset_after=false: the candidate gate's product needs r⊙h_{t-1} of every unit
  static bool splits_by_unit(const StackSpec& s) { return s.reset_after; }

  template <class S>
  static void forward(const StackSpec& s, const StepForward<S>& a) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 3 * H, R = rec_rows(s);
    const bool after = s.reset_after;
    auto x_n = [&](auto v, const S* xg, Index j) {  // W_in x + b_in, element j
      using V = decltype(v);
      const V x = load<V>(xg + 2 * H + j);
      return a.b_ih ? padd(x, load<V>(a.b_ih + 2 * H + j)) : x;
    };
    // r, z, and with reset_after the whole step; without, q = r⊙h_{t-1} for the product below
    parallel_for(a.b, a.row_work(a.b * GH), [&](Index row) {
      const S* xg = a.xg + row * GH;
      const S* hg = a.hg + row * R;
      const S* hp = a.hprev_row(row, H);
      S* m = a.m_row(row, H);
      S* keep = a.m_keep(row, H);
      S* cache = a.cache + row * 4 * H;
      for_units<S>(a, H, [&](auto v, Index j) {
        using V = decltype(v);
        const V r = sigmoid(gate_sum<V>(a, xg, hg, j)), z = sigmoid(gate_sum<V>(a, xg, hg, H + j));
        if (after) {
          V q = load<V>(hg + 2 * H + j);  // W_hn h + b_hn
          if (a.b_hh) q = padd(q, load<V>(a.b_hh + 2 * H + j));
          const V n = tanh(padd(x_n(v, xg, j), pmul(r, q)));
          const V h = load<V>(hp + j), ht = pmadd(z, psub(h, n), n);  // (1-z)⊙n + z⊙h
          store(m + j, ht);
          if (keep) store(keep + j, ht);
          if (a.training)
            store(cache + j, r), store(cache + H + j, z), store(cache + 2 * H + j, n), store(cache + 3 * H + j, q);
        } else {
          store(cache + j, r), store(cache + H + j, z);
          store(cache + 3 * H + j, pmul(r, load<V>(hp + j)));
        }
      });
    });
    if (after) return;
    // work = (r⊙h) W_hn^T : the one product that must wait for r
    auto q = cmat(a.cache + 3 * H, a.b, H, 4 * H);
    auto w_hn = cmat(a.w_hh + 2 * H * H, H, H).transpose();
    if (a.realtime)
      gemv_rows(mat(a.work, a.b, H), q, w_hn);
    else  // packed once per sequence by the driver; a row's sums do not depend on the other rows
      packed_gemm(a.work, H, a.cache + 3 * H, 4 * H, a.b, *a.w_rest);
    parallel_for(a.b, a.row_work(a.b * H), [&](Index row) {
      const S* xg = a.xg + row * GH;
      const S* hp = a.hprev_row(row, H);
      S* m = a.m_row(row, H);
      S* keep = a.m_keep(row, H);
      S* cache = a.cache + row * 4 * H;
      for_lanes<S>(H, [&](auto v, Index j) {
        using V = decltype(v);
        V x = padd(x_n(v, xg, j), load<V>(a.work + row * H + j));
        if (a.b_hh) x = padd(x, load<V>(a.b_hh + 2 * H + j));
        const V n = tanh(x), z = load<V>(cache + H + j), h = load<V>(hp + j), ht = pmadd(z, psub(h, n), n);
        store(m + j, ht);
        if (keep) store(keep + j, ht);
        store(cache + 2 * H + j, n);
      });
    });
  }

  template <class S>
  static void backward(const StackSpec& s, const StepBackward<S>& a) {
    using namespace lane;
    const Index H = s.hidden_size, GH = 3 * H, R = rec_rows(s);
    const bool after = s.reset_after;
    parallel_for(a.b, a.row_work(a.b * GH), [&](Index row) {
      const S* cache = a.cache + row * 4 * H;
      const S* hp = a.hprev + row * H;
      const S* dm = a.dm + row * H;
      S* dx = a.dxg + row * GH;
      S* dh = a.dhg + row * R;
      S* dhp = a.dhprev + row * H;
      for_units<S>(a, H, [&](auto v, Index j) {
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
    packed_gemm(a.work, H, a.dxg + 2 * H, GH, a.b, *a.w_rest);
    parallel_for(a.b, a.b * GH, [&](Index row) {
      const S* r_ = a.cache + row * 4 * H;
      const S* hp = a.hprev + row * H;
      const S* drh = a.work + row * H;
      S* dx = a.dxg + row * GH;
      S* dh = a.dhg + row * R;
      S* dhp = a.dhprev + row * H;
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
  static void backward_weights(const StackSpec& s, Index N, const S* dxg, const S* cache, const S* db_x, S* dw_hh,
                               S* db_hh) {
    if (s.reset_after) return;
    const Index H = s.hidden_size, GH = 3 * H;
    // dW_hn += dL/da_n^T · (r ⊙ h_{t-1}), over all N rows
    gemm_tn(dw_hh + 2 * H * H, H, dxg + 2 * H, GH, cache + 3 * H, 4 * H, H, H, N, true);
    if (db_hh) arr(db_hh + 2 * H, H) += carr(db_x + 2 * H, H);
  }
};

}  // namespace rnnkit
