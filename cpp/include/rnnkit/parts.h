#pragma once
// A layer-direction's recurrence in independent parts of the batch, one per
// thread (the recurrent driver's other scheduling, beside team.h): no barrier
// and no exchange of h_t at any step. Each part runs the plain driver
// (driver.h) on its own rows as a batch of its own.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "driver.h"

namespace rnnkit {

// The recurrence runs in parts of the batch where there are at least kPartRows
// rows for each of two parts or more, the layer-direction's weights (W_ih, W_hh,
// W_hr) are at most kPartWeightBytes, so every core keeps its own copy in its
// L2 (1 MiB per core is common), and there are at least kPartWork
// multiply-adds in all. Then one part per thread, down to kPartRowsMin rows a
// part where there are more threads than parts of kPartRows (a small batch on
// many cores: each part still fills the register tiles). On 2 threads that
// happens at no batch size. Set by benchmarks/bench.py's B=64 cases.
constexpr Index kPartRows = 16, kPartRowsMin = 8;
constexpr double kPartWeightBytes = 1 << 19, kPartWork = 1 << 22;

namespace detail {

// The parts a layer-direction runs in (1: none).
template <class Cell, class S>
Index part_count(const StackSpec& s, const DirParams& dp, const Packing& pk) {
  const Index GH = Cell::decl(s).gates * s.hidden_size, P = s.out_size(), I = dp.input_size, B = pk.B;
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
// steps: taking every other row of lengths sorted in decreasing order would
// give part 0 the longer one of every pair.
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

namespace detail {

// Runs part(k) for k in [0, parts), each on a thread of one team. On a thread
// of this team every product and loop inside runs on that thread (get_num_threads).
template <class F>
void run_parts(Index parts, F&& part) {
  on_threads(int(parts), [&](Index id, Index k) {
    for (Index p = id; p < parts; p += k) part(p);
  });
}

// A layer-direction forward as `parts` independent recurrences, one per thread, on
// the parts of the batch (PartRows). A row's arithmetic is the same whichever
// rows share its products, so the output is bit for bit that of one part. In
// training mode each part keeps its own cache, in cache->parts, and, unless the
// parts are even (backward then reads them in place), a copy of its rows of X,
// made before its recurrence reads them there.
template <class Cell, class S>
void forward_in_parts(Index parts, const StackSpec& s, const S* params, const DirParams& dp, bool reverse,
                      const Packing& pk, const S* X, const Index* x_rows, S* Y, const Index* y_rows, Index ldy,
                      S* h, S* c, DirCache<S>* cache, const LowpStack* lowp = nullptr, Index lowp_k = 0) {
  const CellDecl d = Cell::decl(s);
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size;
  if (cache) {  // the whole batch's buffers stay empty (a cache reused from a run without parts frees them)
    cache->hprev.resize(0, P);
    cache->cache.resize(0, d.cache * H);
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
    Mat<S> hk(b, P), ck(d.has_c ? b : 0, H);
    part.gather_state(h, P, hk.data());
    if (d.has_c) part.gather_state(c, H, ck.data());
    forward_batch<Cell>(s, params, dp, reverse, part.pack, xk, xrk, Y, yr.data(), ldy, hk.data(), ck.data(),
                        cache ? &cache->parts[std::size_t(k)] : nullptr, lowp, lowp_k);
    part.scatter_state(hk.data(), P, h);
    if (d.has_c) part.scatter_state(ck.data(), H, c);
  });
}

// A layer-direction backward in the parts its forward ran in (cache.parts), one per
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
  const CellDecl d = Cell::decl(s);
  const Index H = s.hidden_size, P = s.out_size(), I = dp.input_size, parts = Index(cache.parts.size());
  // The parts' own gradients: this layer-direction's tensors back to back, where
  // they are in dp's layout (w_ih, w_hh, then those the layer has of b_ih, b_hh, w_hr, peep).
  const Index GH = d.gates * H;
  DirParams gp;
  Index size = 0;
  const auto place = [&](Index at, Index n) { return at < 0 ? Index(-1) : (size += n) - n; };
  gp.w_ih = place(dp.w_ih, GH * I);
  gp.w_hh = place(dp.w_hh, GH * P);
  gp.b_ih = place(dp.b_ih, GH);
  gp.b_hh = place(dp.b_hh, GH);
  gp.w_hr = place(dp.w_hr, P * H);
  gp.peep = place(dp.peep, d.peepholes * H);
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
    Mat<S> dhk(b, P), dck(d.has_c ? b : 0, H);
    part.gather_state(dh, P, dhk.data());
    if (d.has_c) part.gather_state(dc, H, dck.data());
    if (k > 0) own.grads.setZero(size);
    backward_batch<Cell>(s, params, dp, k > 0 ? own.grads.data() : grads, k > 0 ? gp : dp, reverse, part.pack,
                         part.even ? X + k * I : own.x.data(), part.even ? parts * I : I, own, mine, dhk.data(),
                         dck.data());
    part.scatter_state(dhk.data(), P, dh);
    if (d.has_c) part.scatter_state(dck.data(), H, dc);
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
  add(dp.peep, gp.peep, d.peepholes * H);
}

}  // namespace detail

}  // namespace rnnkit
