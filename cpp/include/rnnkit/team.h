#pragma once
// One thread team over a layer-direction's whole time loop, each thread
// owning a block of hidden units (the recurrent driver's scheduling, driver.h).
//
// Where a cell's units are independent within a step (CellDecl::splits_by_unit,
// no projection) and a step's work is in the range below, every thread computes
// its units' gates' input projections and recurrent products (chunks of the
// packed weights' panels, PackedMat), runs the cell on them and writes their
// h_t; the threads meet once per step (every thread's next product reads all
// of h_t). Otherwise the time loop runs on the calling thread, and its
// products and cells split their own work among the threads.

#include <algorithm>

#include "config.h"
#include "gemm.h"

namespace rnnkit {

// Multiply-adds per step (B·G·H·(I + P)) for which the time loop runs on one
// team: from kTeamStepWork (below, a barrier per step costs more than the
// split saves) to kTeamStepWorkMax (above, the step is long enough that the
// products' and the cell's own thread teams cost little). Set by
// benchmarks/bench.py's inference and training cases on 2 threads, hidden 64-512.
constexpr double kTeamStepWork = 1 << 18, kTeamStepWorkMax = 1 << 24;

namespace detail {

// One thread's share of a layer-direction's time loop: chunks [c0, c1) of the
// packed weights' panels, which are hidden units [u0, u1); with team = false,
// the whole layer (its products and cell may use threads of their own).
struct Share {
  bool team;
  Index c0, c1, u0, u1;
};

// Runs run(Share) on a thread team, one share of the units each, where the
// units split within a step (split) and a step's multiply-adds are in the
// range where a team is faster; else once, on the calling thread.
template <class F>
void run_time_loop(bool split, double step_work, Index chunks, Index width, Index H, Index P, F&& run) {
  const bool team = split && step_work >= kTeamStepWork && step_work < kTeamStepWorkMax;
  const int nt = team ? int(std::min<Index>(get_num_threads(), chunks)) : 1;
  if (nt <= 1) {
    run(Share{false, 0, chunks, 0, P});
    return;
  }
  on_threads(nt, [&](Index id, Index k) {
    const Index c0 = split_begin(chunks, id, k), c1 = split_begin(chunks, id + 1, k);
    run(Share{k > 1, c0, c1, std::min(H, c0 * width), std::min(H, c1 * width)});
  });
}

// The barrier that ends a team's step (every thread's next product reads all of h_t).
inline void end_step(const Share& my) {
#ifdef _OPENMP
  if (my.team) {
#pragma omp barrier
  }
#else
  (void)my;
#endif
}

// C = A · W for one share: its chunks on the calling thread in a team, else the
// whole product (split by packed_gemm's own threads when worth it). Row i of A
// at a + i·lda, or at a + a_rows[i]·lda where a_rows is given.
template <class S, class W>
void share_gemm(const Share& my, S* c, Index ldc, const S* a, Index lda, Index m, const PackedMat<W>& w,
                const Index* a_rows = nullptr) {
  if (my.team)
    packed_gemm_chunks(c, ldc, a, lda, m, w, my.c0, my.c1, false, a_rows);
  else
    packed_gemm(c, ldc, a, lda, m, w, false, a_rows);
}

}  // namespace detail
}  // namespace rnnkit
