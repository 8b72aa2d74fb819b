#pragma once
// What the recurrent driver (sequence.h) hands a cell for one time step, and
// what it gets back. A cell implements only its gate arithmetic on these
// blocks; the time loop, the GEMMs, directions, lengths and stacking live in
// the driver, once for all cells.
//
// At step t the driver has already computed, for the b rows still active,
//
//        xg = x_t W_ih^T               (b, G·H)   one GEMM for all steps
//        hg = h_{t-1} W_hh[0:R]^T      (b, R)     one GEMM per step
//
// where R = Cell::rec_rows(spec) is G·H except for GRU with reset_after=False,
// whose candidate gate multiplies r⊙h_{t-1} and so does its own product.
// The cell adds b_ih and b_hh, applies its gates and writes m_t, its output
// before any projection (h_t = m_t, or m_t W_hr^T for an LSTM with proj_size),
// in one pass over each row (for_lanes, activations.h).
//
// In backward the cell turns dL/dm_t into dL/dxg (which is also dL/db_ih) and
// dL/dhg, and the driver does the matching GEMMs. A cell whose gradients fit
// in its cache row (Cell::grads_in_cache) writes dL/dxg over that row: backward
// consumes the cache, and the (N, G·H) gradient buffer is never allocated.

#include "activations.h"
#include "gemm.h"
#include "spec.h"
#include "tensor.h"

namespace rnnkit {

template <class S>
struct StepForward {
  Index b = 0;               // active rows
  const S* xg = nullptr;     // (b, G·H)  x_t W_ih^T
  const S* hg = nullptr;     // (b, R)    h_{t-1} W_hh[0:R]^T
  const S* b_ih = nullptr;   // (G·H)     or nullptr without bias
  const S* b_hh = nullptr;   // (G·H)     or nullptr without bias
  const S* w_hh = nullptr;   // (G·H, P)  for cells that multiply inside the step (the streaming step)
  const PackedMat<S>* w_rest = nullptr;  // W_hh[R:G·H]^T packed (pack_for_gemm), the rows past
                             //           Cell::rec_rows that such a cell multiplies (the driver)
  const S* hprev = nullptr;  // (b, P)    h_{t-1}, rows hprev_row() apart
  S* c = nullptr;            // (b, H)    LSTM cell state: in c_{t-1}, out c_t
  S* cache = nullptr;        // (b, C)    what backward needs, C = Cell::cache_cols(spec); in eval
                             //           mode scratch the cell may use or leave alone
  bool training = false;     // fill the cache for backward
  S* m = nullptr;            // (b, H)    out: the cell's output, rows m_row() apart
  // Where hprev's and m's rows are (hprev_row, m_row): row r at hprev_rows[r]·ld_hprev
  // (nullptr: r·ld_hprev; ld 0: H), so h_{t-1} and h_t can be rows of the caller's output
  const Index* hprev_rows = nullptr;
  const Index* m_rows = nullptr;
  Index ld_hprev = 0, ld_m = 0;
  S* m_next = nullptr;       // (b_next, H) out, training: rows r < b_next of m again, the driver's copy of
  Index b_next = 0;          //           h_t kept for backward as the next step's h_{t-1} (m_keep)
  S* work = nullptr;         // (b, H)    scratch
  bool summed = false;       // xg already holds every plain-sum gate's whole pre-activation, biases
                             // included (the streaming step's products): hg and the biases are not
                             // added to it (GRU's candidate still reads its parts from xg and hg)
  bool realtime = false;     // the streaming step: the calling thread only (no thread team) and
                             // products row by row (gemv_rows: no GEMM packing buffers), so the
                             // step allocates nothing and never waits on other threads
  Index u0 = 0, u1 = -1;     // the hidden units [u0, u1) of each row to compute (u1 < 0: all)
  bool team = false;         // called by one thread of the driver's team, which owns units
                             // [u0, u1) (Cell::splits_by_unit): no thread team of its own

  // The work estimate for a cell's parallel_for over rows: none where it must
  // stay on the calling thread.
  Index row_work(Index n) const { return realtime || team ? 0 : n; }
  // Row r of hprev and of m, for a cell of hidden size H
  const S* hprev_row(Index r, Index H) const {
    return hprev + (hprev_rows ? hprev_rows[r] : r) * (ld_hprev ? ld_hprev : H);
  }
  S* m_row(Index r, Index H) const { return m + (m_rows ? m_rows[r] : r) * (ld_m ? ld_m : H); }
  // Where row r of m goes again (m_next), or nullptr
  S* m_keep(Index r, Index H) const { return m_next && r < b_next ? m_next + r * H : nullptr; }
};

// f(V(), j) over the units [a.u0, a.u1) of one row, a SIMD packet at a time
// (for_lanes); a: a StepForward or StepBackward.
template <class S, class A, class F>
inline void for_units(const A& a, Index H, F&& f) {
  const Index u0 = a.u0, u1 = a.u1 < 0 ? H : a.u1;
  for_lanes<S>(u1 - u0, [&](auto v, Index j) { f(v, u0 + j); });
}

// xg + hg + b_ih + b_hh at element k of one row (xg, hg: the row's start), or
// xg alone where a.summed: the pre-activation of every gate that is a plain sum
// (all but GRU's candidate).
template <class V, class S>
inline V gate_sum(const StepForward<S>& a, const S* xg, const S* hg, Index k) {
  using namespace lane;
  if (a.summed) return load<V>(xg + k);
  V x = padd(load<V>(xg + k), load<V>(hg + k));
  if (a.b_ih) x = padd(x, load<V>(a.b_ih + k));
  if (a.b_hh) x = padd(x, load<V>(a.b_hh + k));
  return x;
}

template <class S>
struct StepBackward {
  Index b = 0;
  const S* cache = nullptr;  // (b, C)
  const S* hprev = nullptr;  // (b, P)
  const S* w_hh = nullptr;   // (G·H, P)
  const PackedMat<S>* w_rest = nullptr;  // W_hh[R:G·H] packed (pack_for_gemm), as in StepForward
  const S* dm = nullptr;     // (b, H)    dL/dm_t
  S* dc = nullptr;           // (b, H)    LSTM: in dL/dc_t, out dL/dc_{t-1}
  S* dxg = nullptr;          // (b, G·H)  out: dL/dxg, rows ld_dxg apart
  Index ld_dxg = 0;          //           C when Cell::grads_in_cache (dxg overwrites the cache), else G·H
  S* dhg = nullptr;          // (b, R)    out: dL/dhg (the same buffer as dxg when Cell::same_dhg)
  S* dhprev = nullptr;       // (b, P)    out: the part of dL/dh_{t-1} not through hg (Cell::direct_dh)
  S* work = nullptr;         // (b, H)    scratch
  Index u0 = 0, u1 = -1;     // as in StepForward
  bool team = false;
  Index row_work(Index n) const { return team ? 0 : n; }
};

}  // namespace rnnkit
