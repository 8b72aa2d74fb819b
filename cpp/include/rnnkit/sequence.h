#pragma once
// One layer in one direction over a packed sequence, forward and backward: the
// recurrent driver (driver.h) on the whole batch, or on parts of it, one per
// thread (parts.h), whichever the sizes favour.
//
// Threads: where the weights fit in every core's L2 and the batch has two parts
// of kPartRows rows or more, each thread runs the recurrence of its own part of
// the batch (in training each part keeps its own cache, and the backward runs
// in the same parts): no barrier and no exchange of h_t at any step. Otherwise
// the driver runs the whole batch, on one thread team over its time loop where
// the cell's units split (team.h), else with its products and cells splitting
// their own work among the threads.

#include "driver.h"
#include "parts.h"

namespace rnnkit {

// One layer-direction forward.
//   X  (N, I)          the layer's packed input; with x_rows, packed row r is row
//                      x_rows[r] of X (the caller's own array: no packed copy)
//   Y  (N, ·) ld ldy   out: h_t of every packed row (this direction's columns),
//                      at row y_rows[r] of Y with y_rows
//   h  (B, P)          in: h0 in packed order; out: h_n
//   c  (B, H)          the cell state (CellDecl::has_c): in c0; out c_n
//   cache              nullptr in eval mode
//   lowp, k            the stack's reduced-precision weights and this layer-direction's
//                      index in them (weights.h), or nullptr: float, from params
template <class Cell, class S>
void direction_forward(const StackSpec& s, const S* params, const DirParams& dp, bool reverse,
                       const Packing& pk, const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy,
                       S* h, S* c, DirCache<S>* cache, const LowpStack* lowp = nullptr, Index k = 0) {
  if (const Index parts = detail::part_count<Cell, S>(s, dp, pk); parts > 1)
    detail::forward_in_parts<Cell>(parts, s, params, dp, reverse, pk, X, x_rows, Y, y_rows, ldy, h, c, cache, lowp,
                                   k);
  else
    detail::forward_batch<Cell>(s, params, dp, reverse, pk, X, x_rows, Y, y_rows, ldy, h, c, cache, lowp, k);
}

// One layer-direction backward; accumulates into the parameter gradients `grads`
// (the same layout as `params`).
//   X  (N, I)          the layer's packed input, as the forward read it (unused
//                      where its parts kept their own rows of it)
//   io                 dL/dh_t of every packed row from above (this direction's
//                      columns), and where dL/dX goes (BackwardIO)
//   dh (B, P)          in: dL/dh_n in packed order; out: dL/dh0
//   dc (B, H)          the cell state's: in dL/dc_n; out dL/dc0
// The cache is consumed: cells with CellDecl::grads_in_cache write their gradients over it.
template <class Cell, class S>
void direction_backward(const StackSpec& s, const S* params, S* grads, const DirParams& dp, bool reverse,
                        const Packing& pk, const S* X, DirCache<S>& cache, const BackwardIO<S>& io, S* dh,
                        S* dc) {
  if (!cache.parts.empty())
    detail::backward_in_parts<Cell>(s, params, grads, dp, reverse, pk, X, cache, io, dh, dc);
  else
    detail::backward_batch<Cell>(s, params, dp, grads, dp, reverse, pk, X, dp.input_size, cache, io, dh, dc);
}

}  // namespace rnnkit
