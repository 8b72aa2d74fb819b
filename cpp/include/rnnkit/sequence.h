#pragma once
// The recurrent driver: the only time loop in rnnkit, forward and BPTT,
// templated on the cell (rnn.h, lstm.h, gru.h). It runs one layer in one
// direction over a packed sequence (packing.h):
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
// R = Cell::rec_rows, C = Cell::cache_cols.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "gates.h"
#include "gemm.h"
#include "packing.h"
#include "spec.h"
#include "tensor.h"

namespace rnnkit {

/// What backward needs of one layer-direction. Empty in eval mode.
template <class S>
struct DirCache {
  Mat<S> hprev;  // (N, P)  h_{t-1} of every packed row
  Mat<S> cache;  // (N, C)  the cell's own
  Mat<S> m;      // (N, H)  cell output before the projection (proj_size only)
  Mat<S> dxg;    // (N, G·H) backward's dL/dXG, unless the cell writes it over the cache
  Mat<S> dhg;    // (N, R)  backward's dL/dHG, where it differs from dL/dXG
  // A forward run in parts of the batch (direction_forward) keeps each part's
  // own cache here, its rows in the part's packing (detail::PartRows), and
  // none of the above; backward then runs in the same parts.
  std::vector<DirCache> parts;
  // A part's rows of the layer's input, where they are not a strided view of
  // the whole batch's (its forward copies them, then reads them here), and a
  // part's own parameter gradients (detail::backward_in_parts). Kept, as the
  // rest, for the next step: fresh arrays cost their pages' first touch.
  Mat<S> x;
  Vec<S> grads;
};

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

}  // namespace detail

// Rows of input projections direction_forward computes at a time.
constexpr Index kProjectRows = 256;

// Multiply-adds per step (B·G·H·(I + P)) for which the recurrent driver runs
// its time loop on one thread team: from kTeamStepWork (below, a barrier per
// step costs more than the split saves) to kTeamStepWorkMax (above, the step is
// long enough that the products' and the cell's own thread teams cost little).
// Measured with 2 threads on this project's 2-core machine (B=64, rnnkit alone
// in its process, medians of alternating rounds): a team made RNN/GRU/LSTM at
// hidden 64 and RNN at 128 10-20% faster, LSTM and GRU at 128 and RNN at 256
// 5-15% faster (inference and training), and was no faster at LSTM/GRU 256.
constexpr double kTeamStepWork = 1 << 18, kTeamStepWorkMax = 1 << 24;

namespace detail {

// One thread's share of a layer-direction's time loop: chunks [c0, c1) of the
// packed weights' panels (PackedMat), which are hidden units [u0, u1); with
// team = false, the whole layer (its products and cell may use threads of their own).
struct Share {
  bool team;
  Index c0, c1, u0, u1;
};

// Runs run(Share) on a thread team, one share of the units each, where the
// units split within a step (split) and a step's multiply-adds are in the
// range where a team measured faster; else once, on the calling thread.
template <class F>
void run_time_loop(bool split, double step_work, Index chunks, Index width, Index H, Index P, F&& run) {
  const bool team = split && step_work >= kTeamStepWork && step_work < kTeamStepWorkMax;
  const int nt = team ? int(std::min<Index>(get_num_threads(), chunks)) : 1;
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const Index id = omp_get_thread_num(), k = omp_get_num_threads();
      const Index c0 = chunks * id / k, c1 = chunks * (id + 1) / k;
      run(Share{k > 1, c0, c1, std::min(H, c0 * width), std::min(H, c1 * width)});
    }
    return;
  }
#endif
  run(Share{false, 0, chunks, 0, P});
}

// C = A · W for one share: its chunks on the calling thread in a team, else the
// whole product (split by packed_gemm's own threads when worth it). Row i of A
// at a + i·lda, or at a + a_rows[i]·lda where a_rows is given.
template <class S>
void share_gemm(const Share& my, S* c, Index ldc, const S* a, Index lda, Index m, const PackedMat<S>& w,
                const Index* a_rows = nullptr) {
  if (my.team)
    packed_gemm_chunks(c, ldc, a, lda, m, w, my.c0, my.c1, false, a_rows);
  else
    packed_gemm(c, ldc, a, lda, m, w, false, a_rows);
}

}  // namespace detail

// The recurrence in parts of the batch (direction_forward): where there are
// at least kPartRows rows for each of two parts or more, the layer-direction's
// weights (W_ih, W_hh, W_hr) are at most kPartWeightBytes, so every core keeps
// its own copy in its L2 (1 MiB per core on this project's Zen 4), and there
// are at least kPartWork multiply-adds in all. Then one part per thread, down
// to kPartRowsMin rows a part where there are more threads than parts of
// kPartRows (on a 16-core Xeon, B=64 at hidden 128 on 8-16 threads, parts of 8
// rows against 4 parts of 16: LSTM inference 3.7 ms against 5.3, training 11.4
// against 16.5; GRU and RNN within that machine's spread). On 2 threads that
// happens at no batch size.
constexpr Index kPartRows = 16, kPartRowsMin = 8;
constexpr double kPartWeightBytes = 1 << 19, kPartWork = 1 << 22;

namespace detail {

// The parts direction_forward runs a layer-direction in (1: none).
template <class Cell, class S>
Index part_count(const StackSpec& s, const DirParams& dp, const Packing& pk) {
  const Index GH = Cell::G * s.hidden_size, P = s.out_size(), I = dp.input_size, B = pk.B;
  const Index parts = B / kPartRows >= 2 ? std::min<Index>(get_num_threads(), B / kPartRowsMin) : 1;
  const double weights = double(GH * (I + P) + (dp.w_hr >= 0 ? P * s.hidden_size : 0)) * double(sizeof(S));
  const bool fit = weights <= kPartWeightBytes && double(pk.rows()) * double(GH) * double(I + P) >= kPartWork;
  return parts > 1 && fit ? parts : 1;
}

// Part k of `parts` of a packed batch, as a batch of its own: some of every
// step's packed rows j (in length order, so each part gets long and short
// sequences alike). Where every step's rows divide evenly among the parts (no
// lengths and B a multiple of the parts: `even`), rows j = k, k + parts, ...:
// the part's packed row r is the whole batch's r·parts + k, so its rows of an
// (N, ·) array are that array's at `parts` times its stride. Otherwise in
// blocks of `parts` rows, in order in even blocks and in reverse in odd ones
// (2 parts: part 0 takes rows 0, 3, 4, 7, 8, ...), which evens out their real
// steps (64 lengths uniform in 10..100, the benchmark's, 2 parts: within 0.5%
// of each other, against 2-2.6% taking every other row).
struct PartRows {
  bool even;                          // every step's rows divide evenly among the parts
  std::vector<Index> state;           // (pack.B) the row in pk's batch (its states) of each of the part's rows
  std::vector<std::int64_t> lengths;  // of the part's rows, decreasing as in pk
  Packing pack;                       // sorted already: its order is the identity
  std::vector<Index> rows;            // (pack.rows()) the row in pk of each packed row

  static bool divides(const Packing& pk, Index parts) {
    return std::all_of(pk.batch.begin(), pk.batch.end(), [&](Index b) { return b % parts == 0; });
  }

  PartRows(const Packing& pk, Index k, Index parts) : even(divides(pk, parts)) {
    for (Index q = 0, t = pk.T;; ++q) {
      const Index j = q * parts + (even || q % 2 == 0 ? k : parts - 1 - k);
      if (j >= pk.B) break;
      while (t > 0 && pk.batch[t - 1] <= j) --t;
      state.push_back(j);
      lengths.push_back(t);
    }
    pack = Packing(pk.T, Index(lengths.size()), lengths.data());
    rows.resize(std::size_t(pack.rows()));
    for (Index t = 0; t < pk.T; ++t)
      for (Index i = 0; i < pack.batch[t]; ++i)
        rows[std::size_t(pack.offset[t] + i)] = pk.offset[t] + state[std::size_t(i)];
  }

  // The row of each of the part's packed rows in an array whose row of pk's
  // packed row r is map[r] (r itself where there is no map).
  std::vector<Index> rows_in(const Index* map) const {
    std::vector<Index> out(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) out[i] = map ? map[rows[i]] : rows[i];
    return out;
  }

  // The part's rows (B_part, w) of the whole batch's states (B, w), and back.
  template <class S>
  void gather_state(const S* all, Index w, S* mine) const {
    for (std::size_t i = 0; i < state.size(); ++i) std::copy_n(all + state[i] * w, w, mine + Index(i) * w);
  }
  template <class S>
  void scatter_state(const S* mine, Index w, S* all) const {
    for (std::size_t i = 0; i < state.size(); ++i) std::copy_n(mine + Index(i) * w, w, all + state[i] * w);
  }
};

}  // namespace detail

template <class Cell, class S>
void direction_forward(const StackSpec& s, const S* params, const DirParams& dp, bool reverse,
                       const Packing& pk, const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy,
                       S* h, S* c, DirCache<S>* cache);

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

namespace detail {

// direction_backward on one batch (no parts), the parameter gradients added into
// grads at gp's offsets (dp's, or a part's own buffer's), X's rows ldi apart
template <class Cell, class S>
void direction_backward_into(const StackSpec& s, const S* params, const DirParams& dp, S* grads, const DirParams& gp,
                             bool reverse, const Packing& pk, const S* X, Index ldi, DirCache<S>& cache,
                             const BackwardIO<S>& io, S* dh, S* dc);

// Runs part(k) for k in [0, parts), each on a thread of one team. On a thread
// of this team every product and loop inside runs on that thread (get_num_threads).
template <class F>
void run_parts(Index parts, F&& part) {
#ifdef _OPENMP
#pragma omp parallel num_threads(int(parts))
  for (Index k = omp_get_thread_num(); k < parts; k += omp_get_num_threads()) part(k);
#else
  for (Index k = 0; k < parts; ++k) part(k);
#endif
}

// direction_forward as `parts` independent recurrences, one per thread, on
// the parts of the batch (PartRows). A row's arithmetic is the same whichever
// rows share its products, so the output is bit for bit that of one part. In
// training mode each part keeps its own cache, in cache->parts, and, unless the
// parts are even (backward then reads them in place), a copy of its rows of X,
// made before its recurrence reads them there.
template <class Cell, class S>
void forward_in_parts(Index parts, const StackSpec& s, const S* params, const DirParams& dp, bool reverse,
                      const Packing& pk, const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy,
                      S* h, S* c, DirCache<S>* cache) {
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size;
  if (cache) {  // the whole batch's buffers stay empty (a cache reused from a run without parts frees them)
    cache->hprev.resize(0, P);
    cache->cache.resize(0, Cell::cache_cols(s));
    cache->m.resize(0, H);
    cache->parts.resize(std::size_t(parts));
  }
  run_parts(parts, [&](Index k) {
    const PartRows part(pk, k, parts);
    const Index n = part.pack.rows(), b = part.pack.B;
    const std::vector<Index> xr = part.rows_in(x_rows), yr = part.rows_in(y_rows);
    const S* xk = X;
    const Index* xrk = xr.data();
    if (cache && !part.even) {
      Mat<S>& kept = cache->parts[std::size_t(k)].x;
      kept.resize(n, I);
      for (Index i = 0; i < n; ++i) std::copy_n(X + xr[std::size_t(i)] * I, I, kept.data() + i * I);
      xk = kept.data(), xrk = nullptr;
    }
    Mat<S> hk(b, P), ck(Cell::has_c ? b : 0, H);
    part.gather_state(h, P, hk.data());
    if (Cell::has_c) part.gather_state(c, H, ck.data());
    direction_forward<Cell>(s, params, dp, reverse, part.pack, xk, xrk, Y, yr.data(), ldy, hk.data(), ck.data(),
                            cache ? &cache->parts[std::size_t(k)] : nullptr);
    part.scatter_state(hk.data(), P, h);
    if (Cell::has_c) part.scatter_state(ck.data(), H, c);
  });
}

// direction_backward in the parts its forward ran in (cache.parts), one per
// thread, each the whole backward on its rows (its weight gradients are GEMMs
// over its own rows). Where the parts are even (PartRows: no lengths and B a
// multiple of the parts, as in most training) part k's packed row r is the
// whole batch's r·parts + k: its rows of X, and of dY and dX where they are
// packed, are theirs at `parts` times their stride. Otherwise it reads the copy
// of its X rows its forward kept, and dY and dX through row indices. Part 0 adds
// its parameter gradients into grads, the others into buffers of their own,
// added to grads after them in part order (the same sums in another order than
// on one thread: equal to rounding).
template <class Cell, class S>
void backward_in_parts(const StackSpec& s, const S* params, S* grads, const DirParams& dp, bool reverse,
                       const Packing& pk, const S* X, DirCache<S>& cache, const BackwardIO<S>& io, S* dh, S* dc) {
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size, parts = Index(cache.parts.size());
  // The parts' own gradients: this layer-direction's tensors back to back, where
  // they are in dp's layout (w_ih, w_hh, then those the layer has of b_ih, b_hh, w_hr).
  const Index GH = Cell::G * H;
  DirParams gp;
  Index size = 0;
  const auto place = [&](Index at, Index n) { return at < 0 ? Index(-1) : (size += n) - n; };
  gp.w_ih = place(dp.w_ih, GH * I);
  gp.w_hh = place(dp.w_hh, GH * P);
  gp.b_ih = place(dp.b_ih, GH);
  gp.b_hh = place(dp.b_hh, GH);
  gp.w_hr = place(dp.w_hr, P * H);
  gp.input_size = I;
  run_parts(parts, [&](Index k) {
    const PartRows part(pk, k, parts);
    DirCache<S>& own = cache.parts[std::size_t(k)];
    const Index b = part.pack.B;
    // the part's rows of dY and dX: at a stride where they can be (even parts,
    // packed arrays), else through row indices
    BackwardIO<S> mine = io;
    std::vector<Index> dyr, dxr;
    if (part.even && !io.dy_rows) {
      mine.dy += k * io.ldy, mine.ldy *= parts;
    } else {
      dyr = part.rows_in(io.dy_rows);
      mine.dy_rows = dyr.data();
    }
    if (io.dx && part.even && !io.dx_rows) {
      mine.dx += k * io.ldx, mine.ldx *= parts;
    } else if (io.dx) {
      dxr = part.rows_in(io.dx_rows);
      mine.dx_rows = dxr.data();
    }
    Mat<S> dhk(b, P), dck(Cell::has_c ? b : 0, H);
    part.gather_state(dh, P, dhk.data());
    if (Cell::has_c) part.gather_state(dc, H, dck.data());
    if (k > 0) own.grads.setZero(size);
    direction_backward_into<Cell>(s, params, dp, k > 0 ? own.grads.data() : grads, k > 0 ? gp : dp, reverse,
                                  part.pack, part.even ? X + k * I : own.x.data(), part.even ? parts * I : I, own,
                                  mine, dhk.data(), dck.data());
    part.scatter_state(dhk.data(), P, dh);
    if (Cell::has_c) part.scatter_state(dck.data(), H, dc);
  });
  const auto add = [&](Index at, Index own_at, Index n) {
    for (Index k = 1; k < parts && at >= 0; ++k)
      arr(grads + at, n) += carr(cache.parts[std::size_t(k)].grads.data() + own_at, n);
  };
  add(dp.w_ih, gp.w_ih, GH * I);
  add(dp.w_hh, gp.w_hh, GH * P);
  add(dp.b_ih, gp.b_ih, GH);
  add(dp.b_hh, gp.b_hh, GH);
  add(dp.w_hr, gp.w_hr, P * H);
}

}  // namespace detail

// One layer-direction forward.
//   X  (N, I)          the layer's packed input; with x_rows, packed row r is row
//                      x_rows[r] of X (the caller's own array: no packed copy)
//   Y  (N, ·) ld ldy   out: h_t of every packed row (this direction's columns),
//                      at row y_rows[r] of Y with y_rows
//   h  (B, P)          in: h0 in packed order; out: h_n
//   c  (B, H)          LSTM: in c0; out c_n
//   cache              nullptr in eval mode
//
// Threads: where the weights fit in every core's L2 and the batch has two parts
// of kPartRows rows or more, each thread runs the recurrence of its own part of
// the batch (detail::forward_in_parts; in training each part keeps its own
// cache, and direction_backward runs in the same parts): no barrier and no
// exchange of h_t at any step (2 threads, B=64, against the team below:
// inference at hidden 128 5-7% faster, 32 about 1.5x, 64 the same; training
// steps RNN-128 0.84x the time, RNN-256 0.92x, GRU-128 0.91x, LSTM-128 0.94x).
// Otherwise, where the cell's units are independent within a step
// (Cell::splits_by_unit, no projection) and a step's work is in run_time_loop's
// range, one thread team runs the whole time loop. Each thread owns a block of
// hidden units, chunks of the packed weights' panels: it computes their gates'
// input projections and recurrent products, runs the cell on them and writes
// their h_t, so the threads meet once per step
// (every thread's next product reads all of h_t). h_t goes to the other of two
// buffers from the one h_{t-1} is read from, so a thread that finishes a step
// early never overwrites what another still reads. Otherwise the products and
// the cell each split their own work among the threads.
template <class Cell, class S>
void direction_forward(const StackSpec& s, const S* params, const DirParams& dp, bool reverse,
                       const Packing& pk, const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy,
                       S* h, S* c, DirCache<S>* cache) {
  using detail::ptr;
  const Index H = s.hidden_size, P = s.out_size(), GH = Cell::G * H, R = Cell::rec_rows(s),
              C = Cell::cache_cols(s), I = dp.input_size, N = pk.rows(), B = pk.B, T = pk.T;
  const S* w_ih = params + dp.w_ih;
  const S* w_hh = params + dp.w_hh;
  const S* b_ih = ptr(params, dp.b_ih);
  const S* b_hh = ptr(params, dp.b_hh);
  const S* w_hr = ptr(params, dp.w_hr);
  if (const Index parts = detail::part_count<Cell, S>(s, dp, pk); parts > 1) {
    detail::forward_in_parts<Cell>(parts, s, params, dp, reverse, pk, X, x_rows, Y, y_rows, ldy, h, c, cache);
    return;
  }
  if (cache) cache->parts.clear();

  // The weights every step multiplies by, packed once for the whole sequence,
  // gate by gate (PackedMat), so a range of chunks is a range of units.
  const PackedMat<S> w_in = pack_for_gemm<S>(cmat(w_ih, GH, I).transpose(), Cell::G);
  const PackedMat<S> w_rec = pack_for_gemm<S>(cmat(w_hh, R, P).transpose(), R / H);
  PackedMat<S> w_rest;  // the rows past R, which the cell multiplies itself (GRU with reset_after=False)
  if (R < GH) w_rest = pack_for_gemm<S>(cmat(w_hh + R * P, GH - R, P).transpose());
  PackedMat<S> w_proj;
  if (w_hr) w_proj = pack_for_gemm<S>(cmat(w_hr, P, H).transpose());

  // Input projections x_t W_ih^T of the next few steps at a time, packed rows
  // [lo, hi) (the cell adds the biases): a block of up to kProjectRows rows,
  // reused, which stays in cache, where all N rows at once would be a fresh
  // (N, G·H) array, G times the size of the layer's output.
  const Index xg_rows = std::min(N, std::max(B, kProjectRows));
  detail::LineAligned<S> xg(xg_rows, GH), hg(B, R), hbuf(2 * B, P);
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
  const bool split = Cell::splits_by_unit(s) && !w_hr;
  const double step_work = double(B) * double(GH) * double(I + P);
  detail::run_time_loop(split, step_work, w_rec.chunks(), w_rec.width, H, P, [&](const detail::Share& my) {
    const Index u0 = my.u0, u1 = my.u1;
    Index lo = 0, hi = 0;
    for (Index step = 0; step < T; ++step) {
      const Index t = reverse ? T - 1 - step : step, b = pk.batch[t], o = pk.offset[t];
      if (o < lo || o + b > hi) {  // project the steps from this one on, as many as fit
        Index end = step, rows = 0;
        for (; end < T; ++end) {
          const Index bt = pk.batch[reverse ? T - 1 - end : end];
          if (rows > 0 && rows + bt > xg_rows) break;
          rows += bt;
        }
        lo = reverse ? pk.offset[T - end] : o;  // reverse: the block ends with this step's rows
        hi = lo + rows;
        if (x_rows)
          detail::share_gemm(my, xg.data(), GH, X, I, rows, w_in, x_rows + lo);
        else
          detail::share_gemm(my, xg.data(), GH, X + lo * I, I, rows, w_in);
      }
      // h_{t-1} and where h_t goes: Y's rows of the step before and of this one
      // where Y can hold the cell's output as it writes it (into_y), else the halves of hbuf;
      // row r of h_{t-1} at hp + hp_rows[r]·ldp (hp_rows nullptr: r·ldp), of h_t likewise
      const bool hp_in_y = into_y && step > 0;
      const Index ldp = hp_in_y ? ldy : P, ldn = into_y ? ldy : P;
      const Index* hp_rows = hp_in_y && y_rows ? y_rows + pk.offset[t - 1] : nullptr;
      const Index* hn_rows = into_y && y_rows ? y_rows + o : nullptr;
      const S* hp = hbuf.data() + (step % 2) * B * P;
      if (hp_in_y) hp = y_rows ? Y : Y + pk.offset[t - 1] * ldy;
      S* hn = hbuf.data() + (1 - step % 2) * B * P;
      if (into_y) hn = y_rows ? Y : Y + o * ldy;
      // Keep h_{t-1} for backward (this thread's columns): the rows the cell
      // of the step before kept there as it wrote them (m_next) are in place
      // (forward without projection: all, so h_{t-1} read through hp_rows never
      // needs a copy; else h0's rows at step 0, the rows that join at t in
      // reverse, and every row with a projection: copied here from hbuf).
      const Index tp = reverse ? t + 1 : t - 1, tn = reverse ? t - 1 : t + 1;
      const Index kept = cache && !w_hr && step > 0 ? std::min(b, pk.batch[tp]) : 0;
      if (cache && kept < b)
        mat(cache->hprev.data() + (o + kept) * P + u0, b - kept, u1 - u0, P) =
            cmat(hp + kept * ldp + u0, b - kept, u1 - u0, ldp);
      detail::share_gemm(my, hg.data(), R, hp, ldp, b, w_rec, hp_rows);

      StepForward<S> a;
      a.b = b;
      a.xg = xg.data() + (o - lo) * GH;
      a.hg = hg.data();
      a.b_ih = b_ih;
      a.b_hh = b_hh;
      a.w_hh = w_hh;
      a.w_rest = &w_rest;
      a.hprev = hp;
      a.hprev_rows = hp_rows;
      a.ld_hprev = ldp;
      a.c = c;
      a.cache = cache ? cache->cache.data() + o * C : scratch.data();
      a.training = cache != nullptr;
      a.m = !w_hr ? hn : cache ? cache->m.data() + o * H : m.data();
      if (!w_hr) a.m_rows = hn_rows, a.ld_m = ldn;
      if (cache && !w_hr && step + 1 < T) {
        a.m_next = cache->hprev.data() + pk.offset[tn] * P;
        a.b_next = std::min(b, pk.batch[tn]);
      }
      a.work = work.data();
      a.u0 = u0;
      a.u1 = my.team ? u1 : -1;  // alone: all H units (u1 = P is the output's width)
      a.team = my.team;
      Cell::forward(s, a);

      if (w_hr) packed_gemm(hn, P, a.m, H, b, w_proj);
      if (!into_y && y_rows)  // h_t from hbuf to Y
        for (Index r = 0; r < b; ++r) std::copy_n(hn + r * P + u0, u1 - u0, Y + y_rows[o + r] * ldy + u0);
      else if (!into_y)
        mat(Y + o * ldy + u0, b, u1 - u0, ldy) = cmat(hn + u0, b, u1 - u0, P);
#ifdef _OPENMP
      if (my.team) {
#pragma omp barrier
      }
#endif
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

// One layer-direction backward; accumulates into the parameter gradients `grads`
// (the same layout as `params`).
//   X  (N, I)          the layer's packed input, as the forward read it (unused
//                      where its parts kept their own rows of it)
//   io                 dL/dh_t of every packed row from above (this direction's
//                      columns), and where dL/dX goes (BackwardIO)
//   dh (B, P)          in: dL/dh_n in packed order; out: dL/dh0
//   dc (B, H)          LSTM: in dL/dc_n; out dL/dc0
// The cache is consumed: cells with Cell::grads_in_cache write their gradients over it.
template <class Cell, class S>
void direction_backward(const StackSpec& s, const S* params, S* grads, const DirParams& dp, bool reverse,
                        const Packing& pk, const S* X, DirCache<S>& cache, const BackwardIO<S>& io, S* dh,
                        S* dc) {
  if (!cache.parts.empty())
    detail::backward_in_parts<Cell>(s, params, grads, dp, reverse, pk, X, cache, io, dh, dc);
  else
    detail::direction_backward_into<Cell>(s, params, dp, grads, dp, reverse, pk, X, dp.input_size, cache, io, dh, dc);
}

template <class Cell, class S>
void detail::direction_backward_into(const StackSpec& s, const S* params, const DirParams& dp, S* grads,
                                     const DirParams& gp, bool reverse, const Packing& pk, const S* X, Index ldi,
                                     DirCache<S>& cache, const BackwardIO<S>& io, S* dh, S* dc) {
  using detail::ptr;
  const Index H = s.hidden_size, P = s.out_size(), GH = Cell::G * H, R = Cell::rec_rows(s),
              C = Cell::cache_cols(s), I = dp.input_size, N = pk.rows(), B = pk.B, T = pk.T;
  const S* w_ih = params + dp.w_ih;
  const S* w_hh = params + dp.w_hh;
  const S* w_hr = ptr(params, dp.w_hr);

  if (!Cell::grads_in_cache) cache.dxg.resize(N, GH);  // kept with the cache, for the next step to reuse
  S* dxg = Cell::grads_in_cache ? cache.cache.data() : cache.dxg.data();
  const Index ldx = Cell::grads_in_cache ? C : GH;
  if (!Cell::same_dhg) cache.dhg.resize(N, R);
  S* dhg = Cell::same_dhg ? dxg : cache.dhg.data();
  const Index ldh = Cell::same_dhg ? ldx : R;
  Mat<S> dH;                             // (N, P)   dL/dh_t, kept for dW_hr (proj only)
  if (w_hr) dH.resize(N, P);
  Mat<S> dh_t(B, P), dm(B, H), dhprev(B, P), work(B, H);
  // The bias gradients, Σ over all rows of dL/dxg (b_ih) and dL/dhg (b_hh),
  // summed step by step while each step's rows are still in cache: summed
  // after the loop, they were one more pass over the whole (N, G·H) gradient
  // from memory (3-5% of an LSTM's training step at hidden 128-256).
  const bool bias = dp.b_ih >= 0;
  Vec<S> db_x = Vec<S>::Zero(bias ? GH : 0), db_h = Vec<S>::Zero(bias && !Cell::same_dhg ? R : 0);
  const PackedMat<S> w_rec = pack_for_gemm<S>(cmat(w_hh, R, P));
  PackedMat<S> w_rest;  // as in direction_forward, untransposed
  if (R < GH) w_rest = pack_for_gemm<S>(cmat(w_hh + R * P, GH - R, P));
  PackedMat<S> w_proj;
  if (w_hr) w_proj = pack_for_gemm<S>(cmat(w_hr, P, H));

  // Threads as in direction_forward: a team over the whole time loop where the
  // units split, each thread owning a block of units. It runs the cell's
  // backward on them, then (after the one barrier of the step: dh_{t-1} needs
  // every unit's dL/dhg) computes their columns of dh_{t-1}, which only it reads
  // at the next step.
  const bool split = Cell::splits_by_unit(s) && !w_hr;
  const double step_work = double(B) * double(GH) * double(I + P);
  detail::run_time_loop(split, step_work, w_rec.chunks(), w_rec.width, H, P, [&](const detail::Share& my) {
    const Index u0 = my.u0, u1 = my.u1;
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

      StepBackward<S> a;
      a.b = b;
      a.cache = cache.cache.data() + o * C;
      a.hprev = cache.hprev.data() + o * P;
      a.w_hh = w_hh;
      a.w_rest = &w_rest;
      a.dm = dmt;
      a.dc = dc;
      a.dxg = dxg + o * ldx;
      a.ld_dxg = ldx;
      a.dhg = dhg + o * ldh;
      a.dhprev = dhprev.data();
      a.work = work.data();
      a.u0 = u0;
      a.u1 = my.team ? u1 : -1;  // alone: all H units (u1 = P is the output's width)
      a.team = my.team;
      Cell::backward(s, a);
      if (bias) {  // this share's units of every gate block, rows in order (the same sums whatever the threads)
        const Index n = (my.team ? u1 : H) - u0;
        for (Index g = 0; g < Cell::G; ++g)
          add_column_sums(db_x.data() + g * H + u0, a.dxg + g * H + u0, b, n, ldx);
        if (!Cell::same_dhg)
          for (Index g = 0; g < R / H; ++g) add_column_sums(db_h.data() + g * H + u0, a.dhg + g * H + u0, b, n, ldh);
      }

      // dL/dh_{t-1} = dHG_t W_hh[0:R] (+ the cell's direct part)
#ifdef _OPENMP
      if (my.team) {
#pragma omp barrier
      }
#endif
      detail::share_gemm(my, dh, P, a.dhg, ldh, b, w_rec);
      if (Cell::direct_dh) mat(dh + u0, b, u1 - u0, P) += cmat(dhprev.data() + u0, b, u1 - u0, P);
    }
  });

  // Weight gradients, one GEMM each over all steps.
  gemm_tn(grads + gp.w_ih, I, dxg, ldx, X, ldi, GH, I, N, true);
  gemm_tn(grads + gp.w_hh, P, dhg, ldh, cache.hprev.data(), P, R, P, N, true);
  if (bias) {
    arr(grads + gp.b_ih, GH) += db_x.array();
    arr(grads + gp.b_hh, R) += carr(Cell::same_dhg ? db_x.data() : db_h.data(), R);
  }
  Cell::backward_weights(s, N, dxg, cache.cache.data(), db_x.data(), grads + gp.w_hh, ptr(grads, gp.b_hh));
  if (w_hr) gemm_tn(grads + gp.w_hr, H, dH.data(), P, cache.m.data(), H, P, H, N, true);
  // dX = dXG W_ih: W_ih fixed and A = dXG tall, packed_gemm's case (1.05-1.1x
  // faster than OpenBLAS's sgemm at hidden 128, the same at 512; 1.1x Eigen's).
  // Written over dX or added to it, through the row indices where given.
  if (!io.dx) return;
  const PackedMat<S> w_x = pack_for_gemm<S>(cmat(w_ih, GH, I));
  packed_gemm(io.dx, io.ldx, dxg, ldx, N, w_x, io.dx_add, nullptr, io.dx_rows);
}

}  // namespace rnnkit
