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

  template <class S>
  static void forward(const StackSpec& s, const StepForward<S>& a) {
    const Index H = s.hidden_size, GH = 3 * H, R = rec_rows(s);
    // r, z (and q for reset_after) for every row
    parallel_for(a.b, a.realtime ? 0 : a.b * GH, [&](Index r) {
      S* cache = a.cache + r * 4 * H;
      auto rz = arr(cache, 2 * H);
      rz = carr(a.xg + r * GH, 2 * H) + carr(a.hg + r * R, 2 * H);
      if (a.b_hh) rz += carr(a.b_hh, 2 * H);
      rz = sigmoid(rz);
      auto q = arr(cache + 3 * H, H);
      if (s.reset_after) {
        q = carr(a.hg + r * R + 2 * H, H);  // W_hn h + b_hn
        if (a.b_hh) q += carr(a.b_hh + 2 * H, H);
      } else {
        q = carr(cache, H) * carr(a.hprev + r * H, H);  // r⊙h
      }
    });
    if (!s.reset_after) {
      // work = (r⊙h) W_hn^T : the one product that must wait for r
      auto q = cmat(a.cache + 3 * H, a.b, H, 4 * H);
      auto w_hn = cmat(a.w_hh + 2 * H * H, H, H).transpose();
      if (a.realtime)
        gemv_rows(mat(a.work, a.b, H), q, w_hn);
      else
        gemm(mat(a.work, a.b, H), q, w_hn);
    }
    parallel_for(a.b, a.realtime ? 0 : a.b * GH, [&](Index r) {
      S* cache = a.cache + r * 4 * H;
      auto rg = carr(cache, H), z = carr(cache + H, H);
      auto n = arr(cache + 2 * H, H);
      if (s.reset_after) {
        n = (carr(a.xg + r * GH + 2 * H, H) + rg * carr(cache + 3 * H, H)).tanh();
      } else {
        n = carr(a.xg + r * GH + 2 * H, H) + carr(a.work + r * H, H);
        if (a.b_hh) n += carr(a.b_hh + 2 * H, H);
        n = n.tanh();
      }
      arr(a.m + r * H, H) = (1 - z) * n + z * carr(a.hprev + r * H, H);
    });
  }

  template <class S>
  static void backward(const StackSpec& s, const StepBackward<S>& a) {
    const Index H = s.hidden_size, GH = 3 * H, R = rec_rows(s);
    parallel_for(a.b, a.b * GH, [&](Index r) {
      const S* cache = a.cache + r * 4 * H;
      auto rg = carr(cache, H), z = carr(cache + H, H), n = carr(cache + 2 * H, H),
           q = carr(cache + 3 * H, H);
      auto hp = carr(a.hprev + r * H, H);
      auto dm = carr(a.dm + r * H, H);
      S* dx = a.dxg + r * GH;
      S* dh = a.dhg + r * R;
      auto dn = arr(dx + 2 * H, H);
      arr(a.dhprev + r * H, H) = dm * z;                 // dL/dh_{t-1} (direct) = dm ⊙ z
      arr(dx + H, H) = dm * (hp - n) * dsigmoid(z);      // dL/da_z = dm ⊙ (h_{t-1} - n) ⊙ σ'
      dn = dm * (1 - z) * dtanh(n);                      // dL/da_n = dm ⊙ (1-z) ⊙ tanh'
      arr(dh + H, H) = carr(dx + H, H);
      if (s.reset_after) {
        arr(dx, H) = dn * q * dsigmoid(rg);              // dL/da_r = dL/da_n ⊙ q ⊙ σ'
        arr(dh, H) = carr(dx, H);
        arr(dh + 2 * H, H) = dn * rg;                    // dL/d(W_hn h + b_hn) = dL/da_n ⊙ r
      }
    });
    if (!s.reset_after) {
      // work = dL/d(r⊙h) = dL/da_n W_hn
      gemm(mat(a.work, a.b, H), cmat(a.dxg + 2 * H, a.b, H, GH), cmat(a.w_hh + 2 * H * H, H, H));
      parallel_for(a.b, a.b * GH, [&](Index r) {
        const S* cache = a.cache + r * 4 * H;
        auto rg = carr(cache, H);
        auto hp = carr(a.hprev + r * H, H);
        auto drh = carr(a.work + r * H, H);
        S* dx = a.dxg + r * GH;
        arr(dx, H) = drh * hp * dsigmoid(rg);            // dL/da_r = dL/d(r⊙h) ⊙ h ⊙ σ'
        arr(a.dhg + r * R, H) = carr(dx, H);
        arr(a.dhprev + r * H, H) += drh * rg;            // dL/dh_{t-1} += dL/d(r⊙h) ⊙ r
      });
    }
  }

  // reset_after=false: the W_hn rows saw r⊙h, not h, so the driver's
  // dW_hh = dhg^T h_{t-1} skips them; their gradient over all N rows is here.
  template <class S>
  static void backward_weights(const StackSpec& s, Index N, const S* dxg, const S* cache, S* dw_hh,
                               S* db_hh) {
    if (s.reset_after) return;
    const Index H = s.hidden_size, GH = 3 * H;
    auto dan = cmat(dxg + 2 * H, N, H, GH);                                 // (N, H) dL/da_n
    gemm(mat(dw_hh + 2 * H * H, H, H), dan.transpose(), cmat(cache + 3 * H, N, H, 4 * H), true);
    if (db_hh) add_column_sums(db_hh + 2 * H, dxg + 2 * H, N, H, GH);
  }
};

}  // namespace rnnkit
