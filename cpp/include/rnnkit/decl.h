#pragma once
// What a cell type is, as every part of rnnkit reads it: its gate blocks and
// how their products are summed, its state, its cache and its parameters
// beyond the weights every cell has. Each cell's header (rnn.h, lstm.h, gru.h)
// returns its own from Cell::decl(spec); cells.h lists the cell types.

#include "config.h"

namespace rnnkit {

/// How one gate block's pre-activation is formed from the products.
enum class GateSum {
  Plain,   // W_i x + b_i + W_h h + b_h: one sum (the streaming step folds it into one product)
  Apart,   // W_i x + b_i and W_h h + b_h kept apart, combined by the cell (GRU's candidate, reset_after)
  Gated,   // W_i x + b_i, and the cell's own product of a gated h_{t-1} (GRU's candidate, reset_after=False)
};

/// Everything the rest of rnnkit reads of a cell type: the driver (buffers,
/// threads, backward's products), the streaming packer (which columns a step's
/// product holds), the parameter layout and so the Python layer and the model
/// file. Each cell's header returns its own from `Cell::decl(spec)`.
struct CellDecl {
  Index gates = 1;              // G: gate blocks of H rows in W_ih, W_hh, b_ih and b_hh
  GateSum sums[4] = {};         // of each block, in row order
  bool has_c = false;           // the state is (h, c), not h alone
  Index cache = 1;              // cache columns per row, in units of H (C = cache·H)
  bool grads_in_cache = false;  // backward writes dL/dxg over the cache row
  bool direct_dh = false;       // h_{t-1} also enters outside the products (GRU's z⊙h_{t-1}):
                                //   backward returns that part of dL/dh_{t-1} as dhprev
  Index peepholes = 0;          // rows of the layer's (rows, H) per-unit weight (LSTM: p_i, p_f, p_o), 0: none

  // The blocks whose W_hh product the driver computes before the cell runs: those up to the first Gated one
  Index rec_gates() const {
    Index g = 0;
    while (g < gates && sums[g] != GateSum::Gated) ++g;
    return g;
  }
  // dL/dhg is dL/dxg: every block a Plain sum
  bool same_dhg() const {
    for (Index g = 0; g < gates; ++g)
      if (sums[g] != GateSum::Plain) return false;
    return true;
  }
  // A unit's step reads no other unit's values (no Gated block), so threads can own blocks of units
  bool splits_by_unit() const { return rec_gates() == gates; }
};

}  // namespace rnnkit
