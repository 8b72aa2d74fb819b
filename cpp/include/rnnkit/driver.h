#pragma once
// The recurrent driver: the only time loop in rnnkit, forward and BPTT,
// templated on the cell (rnn.h, lstm.h, gru.h; CellDecl says what it needs).
// It runs one layer in one direction over a packed sequence (packing.h):
//
//   forward                                        backward (t in reverse visiting order)
//   for t:                                         dh  = dY_t + dh_state        (dh_state: from step t+1)
//     XG_t = X_t W_ih^T           a GEMM per few   dm  = dh (W_hr with proj)
//                                 steps (packed W)
//     hg = h_{t-1} W_hh[0:R]^T    one GEMM/step    cell backward -> dXG_t, dHG_t, dc
//     m  = cell(XG_t, hg, c)      (+ b_ih, b_hh)   dh_state = dHG_t W_hh[0:R] (+ direct)
//     h_t = m  (m W_hr^T with proj)                then, over all steps at once:
//                                                  dW_ih += dXG^T X,  dW_hh += dHG^T Hprev,
//                                                  dW_hr += dH^T M,   dX += dXG W_ih
//
// Shapes: N packed rows, I input, H hidden, P = proj_size or H, G gates,
// R = CellDecl::rec_gates()·H, C = CellDecl::cache·H.
//
// Threads: team.h (one team over the whole time loop, by hidden units); the
// batch parts (parts.h) call this driver once per part.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "gates.h"
#include "gemm.h"
#include "packing.h"
#include "spec.h"
#include "team.h"
#include "tensor.h"
#include "weights.h"

namespace rnnkit {

/// What backward needs of one layer-direction. Empty in eval mode.
template <class S>
struct DirCache {
  Mat<S> hprev;  // (N, P)  h_{t-1} of every packed row
  Mat<S> cache;  // (N, C)  the cell's own
  Mat<S> m;      // (N, H)  cell output before the projection (proj_size only)
  Mat<S> dxg;    // (N, G·H) backward's dL/dXG, unless the cell writes it over the cache
  Mat<S> dhg;    // (N, R)  backward's dL/dHG, where it differs from dL/dXG
  // A forward run in parts of the batch (parts.h) keeps each part's own cache
  // here, its rows in the part's packing (detail::PartRows), and none of the
  // above; backward then runs in the same parts.
  std::vector<DirCache> parts;
  // A part's rows of the layer's input, where they are not a strided view of
  // the whole batch's (its forward copies them, then reads them here), and a
  // part's own parameter gradients (detail::backward_in_parts). Kept, as the
  // rest, for the next step: fresh arrays cost their pages' first touch.
  Mat<S> x;
  Vec<S> grads;
};

// Where backward reads dL/dY and writes dL/dX (the caller's arrays with
// lengths or batch_first, a packed buffer between layers, a part's rows).
template <class S>
struct BackwardIO {
  const S* dy = nullptr;           // dL/dh_t of packed row r: row dy_rows[r] (or r) of dy,
  const Index* dy_rows = nullptr;  //   this direction's columns, rows ldy apart
  Index ldy = 0;
  S* dx = nullptr;                 // dL/dX of packed row r: row dx_rows[r] (or r) of dx, rows ldx
  const Index* dx_rows = nullptr;  //   apart; nullptr: not wanted
  Index ldx = 0;
  bool dx_add = false;             // added to dx's rows, else written over them
};

// Rows of input projections the forward computes at a time: a block that
// stays in cache, where all N rows at once would be a fresh (N, G·H) array.
constexpr Index kProjectRows = 256;

namespace detail {

template <class S>
inline const S* ptr(const S* base, Index off) {
  return off < 0 ? nullptr : base + off;
}
template <class S>
inline S* ptr(S* base, Index off) {
  return off < 0 ? nullptr : base + off;
}

// A scratch matrix whose data start on a cache line. The threads of a team
// write neighbouring blocks of columns of its rows (blocks of whole SIMD panels,
// so whole lines when a row is); a line holding the edges of two threads'
// blocks would move between their cores on every write.
// Uninitialised, as Mat<S> is: every element is written before it is read.
template <class S>
struct LineAligned {
  static constexpr Index kLine = 64 / Index(sizeof(S));
  std::unique_ptr<S[]> v;
  S* p;
  LineAligned(Index rows, Index cols) : v(new S[std::size_t(rows * cols + kLine)]) {
    const auto misalign = Index(reinterpret_cast<std::uintptr_t>(v.get()) % 64) / Index(sizeof(S));
    p = v.get() + (kLine - misalign) % kLine;
  }
  S* data() { return p; }
};

// The units a share's cell steps compute, and on which threads.
inline StepRange share_range(const Share& my) {
  StepRange rg;
  rg.u0 = my.u0;
  rg.u1 = my.team ? my.u1 : -1;  // alone: all H units (the share's u1 = P is the output's width)
  rg.own_thread = my.team;
  return rg;
}

// The weights a cell reads itself, from one layer-direction's parameters.
template <class S, class W>
CellWeights<S, W> cell_weights(const StackSpec& s, const S* params, const DirParams& dp,
                               const PackedMat<W>* w_gated) {
  CellWeights<S, W> w;
  w.b_ih = ptr(params, dp.b_ih);
  w.b_hh = ptr(params, dp.b_hh);
  w.peep = ptr(params, dp.peep);
  w.ld_peep = s.hidden_size;
  w.w_gated = w_gated;
  w.w_hh = params + dp.w_hh;
  return w;
}

// One layer-direction forward on one batch, its products by the packed weights
// pw (float: packed from params for this call; int8 / bfloat16: a LowpStack's).
// Arguments as direction_forward's.
template <class Cell, class S, class W>
void forward_packed(const DirWeights<W>& pw, const StackSpec& s, const S* params, const DirParams& dp, bool reverse,
                    const Packing& pk, const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy, S* h,
                    S* c, DirCache<S>* cache) {
  const CellDecl d = Cell::decl(s);
  const Index H = s.hidden_size, P = s.out_size(), GH = d.gates * H, R = d.rec_gates() * H, C = d.cache * H,
              I = dp.input_size, N = pk.rows(), B = pk.B, T = pk.T;
  const bool w_hr = dp.w_hr >= 0;
  if (cache) cache->parts.clear();

  // The weights every step multiplies by, packed gate by gate (PackedMat), so a
  // range of chunks is a range of units; w_gated: the rows past R, which the cell
  // multiplies itself (a Gated block).
  const PackedMat<W>& w_in = pw.w_in;
  const PackedMat<W>& w_rec = pw.w_rec;
  const PackedMat<W>& w_proj = pw.w_proj;
  const CellWeights<S, W> w = cell_weights(s, params, dp, R < GH ? &pw.w_gated : nullptr);

  // Input projections x_t W_ih^T of the next few steps at a time, packed rows
  // [lo, hi) (the cell adds the biases), in a block of up to kProjectRows rows.
  const Index xg_rows = std::min(N, std::max(B, kProjectRows));
  LineAligned<S> xg(xg_rows, GH), hg(B, R), hbuf(2 * B, P);
  Mat<S> m(w_hr ? B : 0, H), work(B, H);
  Mat<S> scratch;  // (B, C) the cell's cache in eval mode, overwritten every step
  if (cache) {
    cache->hprev.resize(N, P);
    cache->cache.resize(N, C);
    if (w_hr) cache->m.resize(N, H);
  } else {
    scratch.resize(B, C);
  }
  // h_{t-1} is read from one half of hbuf and h_t written to the other. Rows a
  // step does not reach keep h0 in both (reverse direction: rows join as t falls).
  mat(hbuf.data(), B, P) = cmat(h, B, P);
  mat(hbuf.data() + B * P, B, P) = cmat(h, B, P);

  // The cell writes h_t straight into Y's rows (through y_rows where given)
  // where they are h's (no projection) and the step before's rows hold every
  // row this step reads (forward: rows leave as t grows; in reverse rows join,
  // with h0). Else to hbuf, copied to Y: one more pass over h_t per step.
  const bool into_y = !w_hr && !reverse;
  const double step_work = double(B) * double(GH) * double(I + P);
  run_time_loop(d.splits_by_unit() && !w_hr, step_work, w_rec.chunks(), w_rec.width, H, P, [&](const Share& my) {
    const Index u0 = my.u0, u1 = my.u1;
    StepRange rg = share_range(my);
    Index lo = 0, hi = 0;
    for (Index step = 0; step < T; ++step) {
      const Index t = reverse ? T - 1 - step : step, b = pk.batch[t], o = pk.offset[t];
      const Index tp = reverse ? t + 1 : t - 1, tn = reverse ? t - 1 : t + 1;  // the steps before and after
      if (o < lo || o + b > hi) {  // project the steps from this one on, as many as fit
        Index end = step, rows = 0;
        for (; end < T; ++end) {
          const Index bt = pk.batch[reverse ? T - 1 - end : end];
          if (rows > 0 && rows + bt > xg_rows) break;
          rows += bt;
        }
        lo = reverse ? pk.offset[T - end] : o;  // reverse: the block ends with this step's rows
        hi = lo + rows;
        share_gemm(my, xg.data(), GH, x_rows ? X : X + lo * I, I, rows, w_in, x_rows ? x_rows + lo : nullptr);
      }
      // h_{t-1}: Y's rows of the step before where the cell wrote them there
      // (into_y), else a half of hbuf; h_t likewise into Y, or the other half.
      Rows<const S> hp{hbuf.data() + (step % 2) * B * P, nullptr, P};
      if (into_y && step > 0) hp = {y_rows ? Y : Y + pk.offset[tp] * ldy, y_rows ? y_rows + pk.offset[tp] : nullptr, ldy};
      Rows<S> hn{hbuf.data() + (1 - step % 2) * B * P, nullptr, P};
      if (into_y) hn = {y_rows ? Y : Y + o * ldy, y_rows ? y_rows + o : nullptr, ldy};
      // Keep h_{t-1} for backward (this thread's columns): the rows the cell
      // of the step before kept there as it wrote them (StepOut::keep) are in place
      // (forward without projection: all, so h_{t-1} read through a row map never
      // needs a copy; else h0's rows at step 0, the rows that join at t in
      // reverse, and every row with a projection: copied here, from hbuf).
      const Index kept = cache && !w_hr && step > 0 ? std::min(b, pk.batch[tp]) : 0;
      if (cache && kept < b)
        mat(cache->hprev.data() + (o + kept) * P + u0, b - kept, u1 - u0, P) =
            cmat(hp.base + kept * hp.ld + u0, b - kept, u1 - u0, hp.ld);
      share_gemm(my, hg.data(), R, hp.base, hp.ld, b, w_rec, hp.map);

      rg.b = b;
      StepIn<S> in;
      in.xg = xg.data() + (o - lo) * GH;
      in.hg = hg.data();
      in.hprev = hp;
      StepOut<S> out;
      out.m = w_hr ? Rows<S>{cache ? cache->m.data() + o * H : m.data(), nullptr, H} : hn;
      if (cache && !w_hr && step + 1 < T) {
        out.keep = {cache->hprev.data() + pk.offset[tn] * P, nullptr, P};
        out.keep_rows = std::min(b, pk.batch[tn]);
      }
      out.c = c;
      out.cache = cache ? cache->cache.data() + o * C : scratch.data();
      out.training = cache != nullptr;
      out.work = work.data();
      Cell::forward(s, w, rg, in, out);

      if (w_hr) packed_gemm(hn.base, P, out.m.base, H, b, w_proj);
      if (!into_y && y_rows)  // h_t from hbuf to Y
        for (Index r = 0; r < b; ++r) std::copy_n(hn.base + r * P + u0, u1 - u0, Y + y_rows[o + r] * ldy + u0);
      else if (!into_y)
        mat(Y + o * ldy + u0, b, u1 - u0, ldy) = cmat(hn.base + u0, b, u1 - u0, P);
      end_step(my);
    }
  });
  // h_n: each row's h at its last step, in Y (rows leave as t grows; in
  // reverse every row's last step is t = 0)
  for (Index r = 0, t = reverse ? 0 : T - 1; T > 0 && r < B; ++r) {
    while (pk.batch[t] <= r) --t;
    const Index row = pk.offset[t] + r;
    std::copy_n(Y + (y_rows ? y_rows[row] : row) * ldy, P, h + r * P);
  }
}

// One layer-direction forward on one batch (the caller picks the threads and
// parts: sequence.h), in float from params, or in reduced precision where lowp
// (float32 only) holds the stack's packed weights (its layer-direction k).
// Arguments as direction_forward's.
template <class Cell, class S>
void forward_batch(const StackSpec& s, const S* params, const DirParams& dp, bool reverse, const Packing& pk,
                   const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy, S* h, S* c,
                   DirCache<S>* cache, const LowpStack* lowp = nullptr, Index k = 0) {
  if constexpr (std::is_same_v<S, float>) {
    if (lowp && lowp->precision == Precision::Int8)
      return forward_packed<Cell>(lowp->int8[std::size_t(k)], s, params, dp, reverse, pk, X, x_rows, Y, y_rows, ldy,
                                  h, c, cache);
    if (lowp && lowp->precision == Precision::Bf16)
      return forward_packed<Cell>(lowp->bf16[std::size_t(k)], s, params, dp, reverse, pk, X, x_rows, Y, y_rows, ldy,
                                  h, c, cache);
  }
  forward_packed<Cell>(pack_dir_weights(s, params, dp), s, params, dp, reverse, pk, X, x_rows, Y, y_rows, ldy, h, c,
                       cache);
}

// One layer-direction backward on one batch, the parameter gradients added
// into grads at gp's offsets (dp's, or a part's own buffer's), X's rows ldi
// apart. Arguments as direction_backward's.
template <class Cell, class S>
void backward_batch(const StackSpec& s, const S* params, const DirParams& dp, S* grads, const DirParams& gp,
                    bool reverse, const Packing& pk, const S* X, Index ldi, DirCache<S>& cache,
                    const BackwardIO<S>& io, S* dh, S* dc) {
  const CellDecl d = Cell::decl(s);
  const Index H = s.hidden_size, P = s.out_size(), GH = d.gates * H, R = d.rec_gates() * H, C = d.cache * H,
              I = dp.input_size, N = pk.rows(), B = pk.B, T = pk.T;
  const S* w_hh = params + dp.w_hh;
  const S* w_hr = ptr(params, dp.w_hr);
  const bool same_dhg = d.same_dhg();

  if (!d.grads_in_cache) cache.dxg.resize(N, GH);  // kept with the cache, for the next step to reuse
  S* dxg = d.grads_in_cache ? cache.cache.data() : cache.dxg.data();
  const Index ldx = d.grads_in_cache ? C : GH;
  if (!same_dhg) cache.dhg.resize(N, R);
  S* dhg = same_dhg ? dxg : cache.dhg.data();
  const Index ldh = same_dhg ? ldx : R;
  Mat<S> dH;                             // (N, P)   dL/dh_t, kept for dW_hr (proj only)
  if (w_hr) dH.resize(N, P);
  Mat<S> dh_t(B, P), dm(B, H), dhprev(B, P), work(B, H);
  // The bias gradients, Σ over all rows of dL/dxg (b_ih) and dL/dhg (b_hh),
  // summed step by step while each step's rows are still in cache, where after
  // the loop they would be one more pass over the whole (N, G·H) gradient.
  const bool bias = dp.b_ih >= 0;
  Vec<S> db_x = Vec<S>::Zero(bias ? GH : 0), db_h = Vec<S>::Zero(bias && !same_dhg ? R : 0);
  const PackedMat<S> w_rec = pack_for_gemm<S>(cmat(w_hh, R, P));
  PackedMat<S> w_gated;  // as in forward_batch, untransposed
  if (R < GH) w_gated = pack_for_gemm<S>(cmat(w_hh + R * P, GH - R, P));
  PackedMat<S> w_proj;
  if (w_hr) w_proj = pack_for_gemm<S>(cmat(w_hr, P, H));
  const CellWeights<S> w = cell_weights(s, params, dp, R < GH ? &w_gated : nullptr);

  // Threads as in forward_batch: a team over the whole time loop where the
  // units split, each thread owning a block of units. It runs the cell's
  // backward on them, then (after the one barrier of the step: dh_{t-1} needs
  // every unit's dL/dhg) computes their columns of dh_{t-1}, which only it reads
  // at the next step.
  const double step_work = double(B) * double(GH) * double(I + P);
  run_time_loop(d.splits_by_unit() && !w_hr, step_work, w_rec.chunks(), w_rec.width, H, P, [&](const Share& my) {
    const Index u0 = my.u0, u1 = my.u1;
    StepRange rg = share_range(my);
    for (Index step = 0; step < T; ++step) {
      const Index t = reverse ? step : T - 1 - step, b = pk.batch[t], o = pk.offset[t];
      S* dht = w_hr ? dH.data() + o * P : dh_t.data();
      if (io.dy_rows)
        for (Index r = 0; r < b; ++r)
          arr(dht + r * P + u0, u1 - u0) = carr(io.dy + io.dy_rows[o + r] * io.ldy + u0, u1 - u0) +
                                           carr(dh + r * P + u0, u1 - u0);
      else
        mat(dht + u0, b, u1 - u0, P) = cmat(io.dy + o * io.ldy + u0, b, u1 - u0, io.ldy) + cmat(dh + u0, b, u1 - u0, P);
      const S* dmt = dht;
      if (w_hr) {  // h_t = m_t W_hr^T  ->  dL/dm_t = dL/dh_t W_hr
        packed_gemm(dm.data(), H, dht, P, b, w_proj);
        dmt = dm.data();
      }

      rg.b = b;
      StepGradIn<S> in;
      in.cache = cache.cache.data() + o * C;
      in.hprev = cache.hprev.data() + o * P;
      in.dm = dmt;
      StepGradOut<S> out;
      out.dxg = dxg + o * ldx;
      out.ld_dxg = ldx;
      out.dhg = dhg + o * ldh;
      out.ld_dhg = ldh;
      out.dhprev = dhprev.data();
      out.dc = dc;
      out.work = work.data();
      Cell::backward(s, w, rg, in, out);
      if (bias) {  // this share's units of every gate block, rows in order (the same sums whatever the threads)
        const Index n = (my.team ? u1 : H) - u0;
        for (Index g = 0; g < d.gates; ++g)
          add_column_sums(db_x.data() + g * H + u0, out.dxg + g * H + u0, b, n, ldx);
        if (!same_dhg)
          for (Index g = 0; g < R / H; ++g) add_column_sums(db_h.data() + g * H + u0, out.dhg + g * H + u0, b, n, ldh);
      }

      // dL/dh_{t-1} = dHG_t W_hh[0:R] (+ the cell's direct part)
      end_step(my);
      share_gemm(my, dh, P, out.dhg, ldh, b, w_rec);
      if (d.direct_dh) mat(dh + u0, b, u1 - u0, P) += cmat(dhprev.data() + u0, b, u1 - u0, P);
    }
  });

  // Weight gradients, one GEMM each over all steps.
  gemm_tn(grads + gp.w_ih, I, dxg, ldx, X, ldi, GH, I, N, true);
  gemm_tn(grads + gp.w_hh, P, dhg, ldh, cache.hprev.data(), P, R, P, N, true);
  if (bias) {
    arr(grads + gp.b_ih, GH) += db_x.array();
    arr(grads + gp.b_hh, R) += carr(same_dhg ? db_x.data() : db_h.data(), R);
  }
  if constexpr (has_backward_weights<Cell, S>::value)
    Cell::backward_weights(s, N, dxg, ldx, cache.cache.data(), db_x.data(), grads, gp);
  if (w_hr) gemm_tn(grads + gp.w_hr, H, dH.data(), P, cache.m.data(), H, P, H, N, true);
  // dX = dXG W_ih: W_ih fixed and dXG tall, packed_gemm's case. Written over
  // dX or added to it, through the row indices where given.
  if (!io.dx) return;
  const PackedMat<S> w_x = pack_for_gemm<S>(cmat(params + dp.w_ih, GH, I));
  packed_gemm(io.dx, io.ldx, dxg, ldx, N, w_x, io.dx_add, nullptr, io.dx_rows);
}

}  // namespace detail
}  // namespace rnnkit
