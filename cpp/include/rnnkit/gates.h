#pragma once
// What the recurrent driver (sequence.h) and the streaming step hand a cell
// for one time step, and what they get back. A cell implements only its gate
// arithmetic on these blocks; the time loop, the GEMMs, directions, lengths
// and stacking live in the driver, once for all cells.
//
// At step t the driver has already computed, for the b rows still active,
//
//        xg = x_t W_ih^T               (b, G·H)   one GEMM for all steps
//        hg = h_{t-1} W_hh[0:R]^T      (b, R)     one GEMM per step
//
// where R = CellDecl::rec_gates·H is G·H except for a gate whose recurrent
// product waits for another gate (GRU with reset_after=False multiplies
// r⊙h_{t-1}), which the cell computes itself. The cell adds b_ih and b_hh,
// applies its gates and writes m_t, its output before any projection (h_t =
// m_t, or m_t W_hr^T for an LSTM with proj_size), in one pass over each row
// (for_lanes, activations.h).
//
// In backward the cell turns dL/dm_t into dL/dxg (which is also dL/db_ih) and
// dL/dhg, and the driver does the matching GEMMs. A cell whose gradients fit
// in its cache row (CellDecl::grads_in_cache) writes dL/dxg over that row:
// backward consumes the cache, and the (N, G·H) gradient buffer is never allocated.

#include <type_traits>

#include "activations.h"
#include "decl.h"
#include "gemm.h"
#include "spec.h"
#include "tensor.h"

namespace rnnkit {

// ---- one step's arguments ----------------------------------------------------------------

/// Rows of a block that may lie in a larger array: row r at base + map[r]·ld
/// (map nullptr: r·ld). h_{t-1} and h_t can so be rows of the caller's output.
template <class T>
struct Rows {
  T* base = nullptr;
  const Index* map = nullptr;
  Index ld = 0;
  T* row(Index r) const { return base + (map ? map[r] : r) * ld; }
};

/// Which rows and units a call computes, and on which threads.
struct StepRange {
  Index b = 0;             // active rows
  Index u0 = 0, u1 = -1;   // the hidden units [u0, u1) of each row (u1 < 0: all)
  bool own_thread = false; // the calling thread only: one thread of the driver's team (which owns
                           // units [u0, u1)) or the streaming step (which never waits on others)
  // The work estimate for a cell's parallel_for over rows: none where it stays on the calling thread
  Index row_work(Index n) const { return own_thread ? 0 : n; }
};

/// The weights a cell reads itself, beside the driver's products (W: the packed
/// weights' element type, quant.h's int8 or bfloat16 in reduced precision).
template <class S, class W = S>
struct CellWeights {
  const S* b_ih = nullptr;                 // (G·H) or nullptr without bias
  const S* b_hh = nullptr;                 // (G·H) or nullptr without bias
  const S* peep = nullptr;                 // (peepholes, ld_peep) per-unit weights, or nullptr
  Index ld_peep = 0;
  const PackedMat<W>* w_gated = nullptr;   // a Gated block's W_hh rows^T, packed (the driver): the cell's own product
  const S* w_hh = nullptr;                 // (G·H, P) unpacked, for that product row by row where w_gated is null
                                           //   (the streaming step, which allocates nothing)
};

/// One forward step's inputs.
template <class S>
struct StepIn {
  const S* xg = nullptr;     // (b, G·H)  x_t W_ih^T
  const S* hg = nullptr;     // (b, R)    h_{t-1} W_hh[0:R]^T
  Rows<const S> hprev;       // (b, P)    h_{t-1}
  bool summed = false;       // xg holds every Plain block's whole pre-activation, biases included (the
                             //   streaming step's one product): hg and the biases are not added to it
};

/// One forward step's state and outputs.
template <class S>
struct StepOut {
  Rows<S> m;                 // (b, H)    the cell's output m_t
  Rows<S> keep;              // (keep_rows, H) the rows of m_t written once more (the driver's copy of
  Index keep_rows = 0;       //           h_t kept for backward as the next step's h_{t-1}); keep.base null: none
  S* c = nullptr;            // (b, H)    the cell state where CellDecl::has_c: in c_{t-1}, out c_t
  S* cache = nullptr;        // (b, C)    what backward needs; without `training` scratch the cell may use
  bool training = false;     //           fill the cache for backward
  S* work = nullptr;         // (b, H)    scratch
  // Where row r of m goes again, or nullptr
  S* keep_row(Index r) const { return keep.base && r < keep_rows ? keep.row(r) : nullptr; }
};

/// One backward step's inputs (the forward's cache and h_{t-1}, and dL/dm_t).
template <class S>
struct StepGradIn {
  const S* cache = nullptr;  // (b, C)
  const S* hprev = nullptr;  // (b, P)
  const S* dm = nullptr;     // (b, H)    dL/dm_t
};

/// One backward step's outputs.
template <class S>
struct StepGradOut {
  S* dxg = nullptr;          // (b, G·H)  dL/dxg, rows ld_dxg apart (C where CellDecl::grads_in_cache:
  Index ld_dxg = 0;          //           over the cache, else G·H)
  S* dhg = nullptr;          // (b, R)    dL/dhg, rows ld_dhg apart (dxg itself where CellDecl::same_dhg)
  Index ld_dhg = 0;
  S* dhprev = nullptr;       // (b, P)    the part of dL/dh_{t-1} not through hg (CellDecl::direct_dh)
  S* dc = nullptr;           // (b, H)    CellDecl::has_c: in dL/dc_t, out dL/dc_{t-1}
  S* work = nullptr;         // (b, H)    scratch
};

// f(V(), j) over the units [r.u0, r.u1) of one row, a SIMD packet at a time (for_lanes).
template <class S, class F>
inline void for_units(const StepRange& r, Index H, F&& f) {
  const Index u0 = r.u0, u1 = r.u1 < 0 ? H : r.u1;
  for_lanes<S>(u1 - u0, [&](auto v, Index j) { f(v, u0 + j); });
}

// xg + hg + b_ih + b_hh at element k of one row (xg, hg: the row's start), or
// xg alone where in.summed: the pre-activation of a Plain block.
template <class V, class S, class W>
inline V gate_sum(const StepIn<S>& in, const CellWeights<S, W>& w, const S* xg, const S* hg, Index k) {
  using namespace lane;
  if (in.summed) return load<V>(xg + k);
  V x = padd(load<V>(xg + k), load<V>(hg + k));
  if (w.b_ih) x = padd(x, load<V>(w.b_ih + k));
  if (w.b_hh) x = padd(x, load<V>(w.b_hh + k));
  return x;
}

// A cell with a pass over all steps' gradients after the time loop (weights the
// driver's products do not cover) declares backward_weights; the others need none.
template <class Cell, class S, class = void>
struct has_backward_weights : std::false_type {};
template <class Cell, class S>
struct has_backward_weights<Cell, S, std::void_t<decltype(&Cell::template backward_weights<S>)>> : std::true_type {};

}  // namespace rnnkit
