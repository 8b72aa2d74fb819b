#pragma once
// Every matrix product in rnnkit goes through gemm(): C = A·B or C += A·B.
//
// Threads are ours, not Eigen's: a product big enough to pay for a thread team
// is split along C's larger dimension into one block per thread, and each
// thread runs Eigen's single-threaded kernel on its block. (Eigen's own
// threading starts a team for products of a few hundred thousand
// multiply-adds, which costs more than it saves on a recurrent step and is
// ruinous when the cores are shared.) Splitting a per-step product
// h_{t-1}·W_hh^T by columns also gives each thread its own slice of W_hh, so
// the weights are streamed once, not once per thread.

#include <algorithm>

#include "tensor.h"

namespace rnnkit {

// C = A·B or C += A·B as one matrix-vector product per row of C: no packing of
// B, so no buffer is allocated whatever the sizes (Eigen's GEMM allocates its
// packing buffers on the heap once they pass 128 KiB). For a handful of rows
// it costs no more than a GEMM; the streaming step uses it for that reason.
template <class DC, class DA, class DB>
void gemv_rows(DC&& c, const DA& a, const DB& b, bool accumulate = false) {
  for (Index r = 0; r < c.rows(); ++r) {
    if (accumulate)
      c.row(r).noalias() += a.row(r) * b;
    else
      c.row(r).noalias() = a.row(r) * b;
  }
}

// Multiply-adds below which a product runs on one thread.
constexpr double kParallelGemmWork = 1 << 20;

template <class DC, class DA, class DB>
void gemm(DC&& c, const DA& a, const DB& b, bool accumulate = false) {
  auto run = [&](auto&& cc, const auto& aa, const auto& bb) {
    if (accumulate)
      cc.noalias() += aa * bb;
    else
      cc.noalias() = aa * bb;
  };
  const Index m = c.rows(), n = c.cols();
  const double work = double(m) * double(n) * double(a.cols());
  const int nt = work >= kParallelGemmWork ? get_num_threads() : 1;
  if (nt <= 1 || m * n == 0) {
    run(c, a, b);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
  {
    const int id = omp_get_thread_num(), k = omp_get_num_threads();
    const bool by_rows = m >= n;
    const Index len = by_rows ? m : n;
    // blocks of a multiple of 16, so every thread's slice stays SIMD-aligned
    const Index chunk = ((len + k - 1) / k + 15) / 16 * 16;
    const Index lo = std::min(len, id * chunk), hi = std::min(len, lo + chunk);
    if (hi > lo) {
      if (by_rows)
        run(c.middleRows(lo, hi - lo), a.middleRows(lo, hi - lo), b);
      else
        run(c.middleCols(lo, hi - lo), a, b.middleCols(lo, hi - lo));
    }
  }
#else
  run(c, a, b);
#endif
}

}  // namespace rnnkit
