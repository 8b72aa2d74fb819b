#pragma once
// A stack of recurrent layers, each uni- or bidirectional, over a batch of
// variable-length sequences: the multi-layer wrapper over sequence.h.
//
//   X_0 = x (T,B,I) or (B,T,I), read through packed-row -> row indices
//         (training: gathered into a packed (N, I) copy, which backward reads,
//         or, where the first layer runs in uneven parts of the batch, each
//         part's rows into the part's own copy)
//   for l: Y_l = [fwd | rev] (N, D·P);   X_{l+1} = Y_l ⊙ dropout mask_l
//   Y_{L-1} = out (T,B,D·P) or (B,T,D·P), written through the same indices,
//         its rows past each length set to zero
//
// States h0/h_n are (D·L, B, P) and c0/c_n (D·L, B, H), PyTorch's order.

#include <memory>
#include <stdexcept>
#include <vector>

#include "sequence.h"

namespace rnnkit {

/// The caller's arrays for one forward call (all C-contiguous; optional ones may be nullptr).
template <class S>
struct SeqArgs {
  Index T = 0, B = 0;
  bool batch_first = false;
  const std::int64_t* lengths = nullptr;  // (B), each in 1..T
  const S* x = nullptr;                   // (T, B, I), or (B, T, I) with batch_first
  const S* h0 = nullptr;                  // (D·L, B, P)
  const S* c0 = nullptr;                  // (D·L, B, H), LSTM
  const S* const* dropout = nullptr;      // L-1 masks (T, B, D·P) as x's layout, already scaled by 1/(1-p)
  S* out = nullptr;                       // (T, B, D·P), or (B, T, D·P) with batch_first
  S* h_n = nullptr;                       // (D·L, B, P), or nullptr if not wanted
  S* c_n = nullptr;                       // (D·L, B, H), LSTM, or nullptr if not wanted
  const LowpStack* lowp = nullptr;        // float32 inference: the weights in int8 / bfloat16 (weights.h);
                                          //   params then give the biases and per-unit weights
};

/// The caller's arrays for one backward call. The outputs must not overlap the inputs
/// (grad_x is written while grad_out is still being read).
template <class S>
struct SeqGradArgs {
  const S* grad_out = nullptr;  // as out, or nullptr for zeros
  const S* grad_h_n = nullptr;  // (D·L, B, P), or nullptr
  const S* grad_c_n = nullptr;  // (D·L, B, H), LSTM, or nullptr
  S* grad_x = nullptr;          // as x, or nullptr if not wanted
  S* grad_h0 = nullptr;         // (D·L, B, P), or nullptr
  S* grad_c0 = nullptr;         // (D·L, B, H), LSTM, or nullptr
};

/// Everything a training forward keeps for backward. A cache whose backward is
/// done may be handed to the next training forward, which reuses its buffers
/// (same sizes: no allocation, so no fresh pages to fault in).
template <class S>
struct StackCache {
  StackSpec spec;
  Packing pack;
  bool batch_first = false;
  std::vector<Mat<S>> inputs;     // [l] (N, I_l) the input of layer l (after dropout); [0] empty where
                                  //   layer 0's parts keep their own rows of it (DirCache::x)
  std::vector<Mat<S>> masks;      // [l] (N, D·P) dropout scale on layer l's output, l < L-1
  std::vector<DirCache<S>> dirs;  // [l·D + d]
};

template <class Cell, class S>
void stack_forward(const StackSpec& s, const S* params, const SeqArgs<S>& a, StackCache<S>* cache) {
  const CellDecl cd = Cell::decl(s);
  const Index L = s.num_layers, D = s.directions(), P = s.out_size(), H = s.hidden_size, DP = D * P;
  Packing pk(a.T, a.B, a.lengths);
  const Index N = pk.rows(), B = pk.B;
  // The caller's x and out in packed order already (time-major, no lengths), or
  // their row of every packed row.
  const bool direct = pk.trivial && !a.batch_first;
  std::vector<Index> user_rows;
  if (!direct) user_rows = pk.user_rows(a.batch_first);
  const Index* rows = direct ? nullptr : user_rows.data();

  Mat<S> X0;  // (N, ·) eval mode: the input of a layer above the first
  const S* X = a.x;
  const Index* x_rows = rows;
  if (cache) {  // backward reads every layer's packed input (and x may change after this call)
    cache->spec = s;
    cache->batch_first = a.batch_first;
    cache->inputs.resize(L);
    cache->masks.resize(L - 1);
    cache->dirs.resize(L * D);
    // layer 0's parts copy their own rows of x, where they are uneven (no strided view of a packed copy)
    const Index parts = detail::part_count<Cell, S>(s, s.dir_params(0, 0), pk);
    if (parts > 1 && !detail::PartRows::divides(pk, parts)) {
      cache->inputs[0].resize(0, s.input_size);
    } else {
      cache->inputs[0].resize(N, s.input_size);
      pk.gather(a.x, a.batch_first, s.input_size, cache->inputs[0].data());
      X = cache->inputs[0].data();
      x_rows = nullptr;
    }
  }

  Mat<S> h(B, P), c(cd.has_c ? B : 0, H), Ybuf;
  if (!pk.trivial) pk.zero_padding(a.out, a.batch_first, DP);
  for (Index l = 0; l < L; ++l) {
    S* Y = a.out;
    const Index* y_rows = rows;
    Mat<S>& next = cache && l < L - 1 ? cache->inputs[l + 1] : Ybuf;  // the next layer's input
    if (l < L - 1) {
      next.resize(N, DP);
      Y = next.data();
      y_rows = nullptr;
    }
    for (Index d = 0; d < D; ++d) {
      const Index k = l * D + d;
      if (a.h0) pk.gather_state(a.h0 + k * B * P, P, h.data());
      else h.setZero();
      if (cd.has_c) {
        if (a.c0) pk.gather_state(a.c0 + k * B * H, H, c.data());
        else c.setZero();
      }
      direction_forward<Cell>(s, params, s.dir_params(l, d), d == 1, pk, X, x_rows, Y + d * P, y_rows, DP, h.data(),
                              c.data(), cache ? &cache->dirs[k] : nullptr, a.lowp, k);
      if (a.h_n) pk.scatter_state(h.data(), P, a.h_n + k * B * P);
      if (cd.has_c && a.c_n) pk.scatter_state(c.data(), H, a.c_n + k * B * H);
    }
    if (l < L - 1) {
      Mat<S> eval_mask;
      Mat<S>& mask = cache ? cache->masks[l] : eval_mask;  // empty: no dropout (backward reads this)
      mask.resize(a.dropout ? N : 0, DP);
      if (a.dropout) {
        pk.gather(a.dropout[l], a.batch_first, DP, mask.data());
        next.array() *= mask.array();
      }
      if (!cache) X0.swap(Ybuf);  // the next layer reads it while writing the other buffer
      X = cache ? next.data() : X0.data();
      x_rows = nullptr;
    }
  }
  if (cache) cache->pack = std::move(pk);
}

// Consumes the cache (some cells write their gradients over it): one backward per forward.
template <class Cell, class S>
void stack_backward(const StackSpec& s, const S* params, S* grads, StackCache<S>& cache,
                    const SeqGradArgs<S>& g) {
  const CellDecl cd = Cell::decl(s);
  const Index L = s.num_layers, D = s.directions(), P = s.out_size(), H = s.hidden_size, DP = D * P;
  const Packing& pk = cache.pack;
  const Index N = pk.rows(), B = pk.B;

  // The top layer reads grad_out and the bottom one writes grad_x in place,
  // through the caller's row of every packed row where they are not already
  // packed (time-major, no lengths): no (N, ·) copies of either.
  const bool direct = pk.trivial && !cache.batch_first;
  std::vector<Index> user_rows;
  if (!direct && (g.grad_out || g.grad_x)) user_rows = pk.user_rows(cache.batch_first);
  const Index* rows = direct ? nullptr : user_rows.data();
  Mat<S> dY;  // (N, D·P) dL/dY of the layer being visited, unless it is grad_out itself
  BackwardIO<S> io;
  io.dy = g.grad_out;
  io.dy_rows = rows;
  io.ldy = DP;
  if (!g.grad_out) {
    dY.setZero(N, DP);
    io.dy = dY.data();
    io.dy_rows = nullptr;
  }
  if (g.grad_x && !pk.trivial) pk.zero_padding(g.grad_x, cache.batch_first, s.input_size);
  Mat<S> dX, dh(B, P), dc(cd.has_c ? B : 0, H);
  for (Index l = L - 1; l >= 0; --l) {
    const Index I = s.layer_input_size(l);
    io.ldx = I;
    if (l > 0) {
      dX.resize(N, I);  // written by the first direction, added to by the second
      io.dx = dX.data();
      io.dx_rows = nullptr;
    } else {
      io.dx = g.grad_x;  // nullptr: not wanted, not computed
      io.dx_rows = rows;
    }
    for (Index d = 0; d < D; ++d) {
      const Index k = l * D + d;
      if (g.grad_h_n) pk.gather_state(g.grad_h_n + k * B * P, P, dh.data());
      else dh.setZero();
      if (cd.has_c) {
        if (g.grad_c_n) pk.gather_state(g.grad_c_n + k * B * H, H, dc.data());
        else dc.setZero();
      }
      BackwardIO<S> dir = io;  // this direction's columns of dL/dY
      dir.dy += d * P;
      dir.dx_add = d > 0;
      direction_backward<Cell>(s, params, grads, s.dir_params(l, d), d == 1, pk, cache.inputs[l].data(),
                               cache.dirs[k], dir, dh.data(), dc.data());
      if (g.grad_h0) pk.scatter_state(dh.data(), P, g.grad_h0 + k * B * P);
      if (cd.has_c && g.grad_c0) pk.scatter_state(dc.data(), H, g.grad_c0 + k * B * H);
    }
    if (l > 0) {
      if (!cache.masks[l - 1].size()) dY = std::move(dX);
      else dY = dX.cwiseProduct(cache.masks[l - 1]);  // dL/dY_{l-1} = dL/dX_l ⊙ mask
      io.dy = dY.data();
      io.dy_rows = nullptr;
    }
  }
}

// The driver's explicit instantiations for cell C, float and double: `RNNKIT_STACK_FOR_CELL(, C)` in
// the cell's translation unit (cpp/src), `RNNKIT_STACK_FOR_CELL(extern, C)` where it is called.
#define RNNKIT_STACK_FOR(KEYWORD, C, S)                                                                       \
  KEYWORD template void stack_forward<C, S>(const StackSpec&, const S*, const SeqArgs<S>&, StackCache<S>*); \
  KEYWORD template void stack_backward<C, S>(const StackSpec&, const S*, S*, StackCache<S>&, const SeqGradArgs<S>&);
#define RNNKIT_STACK_FOR_CELL(KEYWORD, C) RNNKIT_STACK_FOR(KEYWORD, C, float) RNNKIT_STACK_FOR(KEYWORD, C, double)

// Entry points for the Python bindings and C++ users: the cell the spec runs
// (cells.h). Defined in cpp/src (float and double), so callers do not compile the cells.
template <class S>
void forward(const StackSpec& s, const S* params, const SeqArgs<S>& a, StackCache<S>* cache);
template <class S>
void backward(const StackSpec& s, const S* params, S* grads, StackCache<S>& cache, const SeqGradArgs<S>& g);

}  // namespace rnnkit
