#pragma once
// Every matrix product in rnnkit goes through gemm(): C = A·B or C += A·B, on
// Eigen's kernel, or on a BLAS plugged in at run time (blas.h) when one is.
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
#include <type_traits>
#include <vector>

#include "blas.h"

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

// The streaming step's product, y (N) = x (K) · W (K, N) or y += x · W, over
// weights packed once at load into panels of up to four SIMD registers' width:
//
//   panel j = columns [j·4L, j·4L + w) of W, its K rows back to back (w = 4L,
//   or the rest rounded up to a multiple of L, zero-padded)       L = SIMD width
//
// The kernel holds a panel's slice of y in registers while the panel streams
// past in memory order: each weight is loaded once, contiguously, and used in
// one multiply-add. (Eigen's general gemv is about 3x slower on the small
// sizes of a real-time step, and reading the transposed matrix row by row
// strides through memory.)
template <class S>
struct PackedMat {
  std::vector<S> data;
  Index K = 0, N = 0;
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // Eigen's packet types as template arguments
#endif
namespace detail {

template <class S>
constexpr Index simd_width() {
  return Eigen::internal::packet_traits<S>::size;
}

// One panel of NP registers' width: y[0, NP·L) (only `valid` of them are real columns).
template <int NP, class S>
inline void panel_times(S* y, Index valid, const S* x, const S* p, Index K, bool accumulate) {
  namespace ei = Eigen::internal;
  using P = typename ei::packet_traits<S>::type;
  constexpr Index L = simd_width<S>();
  alignas(64) S buf[NP * L];
  for (Index j = 0; j < NP * L; ++j) buf[j] = (accumulate && j < valid) ? y[j] : S(0);
  // Named accumulators, not an array: GCC keeps an array of packets on the stack.
  P a0 = ei::pload<P>(buf), a1 = a0, a2 = a0, a3 = a0;
  if constexpr (NP > 1) a1 = ei::pload<P>(buf + L);
  if constexpr (NP > 2) a2 = ei::pload<P>(buf + 2 * L);
  if constexpr (NP > 3) a3 = ei::pload<P>(buf + 3 * L);
  for (Index k = 0; k < K; ++k, p += NP * L) {
    const P xk = ei::pset1<P>(x[k]);
    a0 = ei::pmadd(xk, ei::ploadu<P>(p), a0);
    if constexpr (NP > 1) a1 = ei::pmadd(xk, ei::ploadu<P>(p + L), a1);
    if constexpr (NP > 2) a2 = ei::pmadd(xk, ei::ploadu<P>(p + 2 * L), a2);
    if constexpr (NP > 3) a3 = ei::pmadd(xk, ei::ploadu<P>(p + 3 * L), a3);
  }
  S* out = valid == NP * L ? y : buf;
  ei::pstoreu(out, a0);
  if constexpr (NP > 1) ei::pstoreu(out + L, a1);
  if constexpr (NP > 2) ei::pstoreu(out + 2 * L, a2);
  if constexpr (NP > 3) ei::pstoreu(out + 3 * L, a3);
  if (out == buf) std::copy_n(buf, valid, y);
}

}  // namespace detail

/// Pack w (K, N), row-major with row stride ldw, for vec_mat.
template <class S>
PackedMat<S> pack_for_vec_mat(const S* w, Index K, Index N, Index ldw) {
  constexpr Index L = detail::simd_width<S>();
  PackedMat<S> m;
  m.K = K, m.N = N;
  m.data.assign(std::size_t(K * ((N + L - 1) / L * L)), S(0));
  S* out = m.data.data();
  for (Index n0 = 0; n0 < N; n0 += 4 * L) {
    const Index valid = std::min(4 * L, N - n0), width = (valid + L - 1) / L * L;
    for (Index k = 0; k < K; ++k, out += width) std::copy_n(w + k * ldw + n0, valid, out);
  }
  return m;
}

/// y (N) = x (K) · W, or y += x · W, with W packed by pack_for_vec_mat.
template <class S>
void vec_mat(S* y, const S* x, const PackedMat<S>& w, bool accumulate = false) {
  constexpr Index L = detail::simd_width<S>();
  const S* p = w.data.data();
  for (Index n0 = 0; n0 < w.N; n0 += 4 * L) {
    const Index valid = std::min(4 * L, w.N - n0), np = (valid + L - 1) / L;
    switch (np) {
      case 4: detail::panel_times<4>(y + n0, valid, x, p, w.K, accumulate); break;
      case 3: detail::panel_times<3>(y + n0, valid, x, p, w.K, accumulate); break;
      case 2: detail::panel_times<2>(y + n0, valid, x, p, w.K, accumulate); break;
      default: detail::panel_times<1>(y + n0, valid, x, p, w.K, accumulate); break;
    }
    p += w.K * np * L;
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// Multiply-adds below which a product runs on one thread.
constexpr double kParallelGemmWork = 1 << 20;

// Multiply-adds from which a product goes to the plugged-in BLAS (blas.h), if any.
constexpr double kBlasWork = 1 << 15;

namespace detail {

template <class X>
constexpr bool direct_access = (std::decay_t<X>::Flags & Eigen::DirectAccessBit) != 0;

// C = A·B (+C) through the plugged-in CBLAS, if there is one and the operands fit
// it: every operand gemm() receives is a map, its transpose or a block of one, so
// each is a pointer, a leading dimension and a transposition. False: not done.
template <class DC, class DA, class DB>
bool blas_gemm(DC& c, const DA& a, const DB& b, bool accumulate) {
  using C = std::decay_t<DC>;
  using S = typename C::Scalar;
  constexpr bool real = std::is_same_v<S, float> || std::is_same_v<S, double>;
  if constexpr (!(real && direct_access<DC> && direct_access<DA> && direct_access<DB> && C::IsRowMajor)) {
    return false;
  } else {
    const Blas& lib = blas();
    const Index m = c.rows(), n = c.cols(), k = a.cols();
    if (!lib.sgemm || double(m) * double(n) * double(k) < kBlasWork) return false;
    if (c.innerStride() != 1 || a.innerStride() != 1 || b.innerStride() != 1) return false;
    constexpr Index kMaxInt = 2147483647;
    if (m > kMaxInt || n > kMaxInt || k > kMaxInt || c.outerStride() > kMaxInt || a.outerStride() > kMaxInt ||
        b.outerStride() > kMaxInt)
      return false;
    constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
    const int ta = std::decay_t<DA>::IsRowMajor ? kNoTrans : kTrans;
    const int tb = std::decay_t<DB>::IsRowMajor ? kNoTrans : kTrans;
    const S beta = accumulate ? S(1) : S(0);
    if constexpr (std::is_same_v<S, float>)
      lib.sgemm(kRowMajor, ta, tb, int(m), int(n), int(k), 1.0f, a.data(), int(a.outerStride()), b.data(),
                int(b.outerStride()), beta, c.data(), int(c.outerStride()));
    else
      lib.dgemm(kRowMajor, ta, tb, int(m), int(n), int(k), 1.0, a.data(), int(a.outerStride()), b.data(),
                int(b.outerStride()), beta, c.data(), int(c.outerStride()));
    return true;
  }
}

}  // namespace detail

template <class DC, class DA, class DB>
void gemm(DC&& c, const DA& a, const DB& b, bool accumulate = false) {
  auto run = [&](auto&& cc, const auto& aa, const auto& bb) {
    if (detail::blas_gemm(cc, aa, bb, accumulate)) return;
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
