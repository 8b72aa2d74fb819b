#pragma once
// Every matrix product in rnnkit is here. Three kinds:
//
// - Products by a weight matrix that stays fixed over many calls (the recurrent
//   driver's per-step h_{t-1}·W_hh^T, its input projections and projection,
//   backward's dX = dXG·W_ih, the streaming step's products): the weights are
//   packed once into panels (PackedMat) and multiplied by our own register-tiled
//   kernels, packed_gemm for a matrix and vec_mat for one row. A general GEMM repacks the weights on
//   every call, which on a recurrent step of a small batch costs about as much as
//   the tile arithmetic it feeds (benchmarks/bench.py's inference cases show the
//   difference against the libraries that do).
// - The weight gradients over all steps, dW = dG^T·X with K = every step's rows:
//   gemm_tn, the same register tile reading dG's and X's rows where they lie (a
//   general GEMM first copies both into packed panels, a pass over each); wide
//   ones go to gemm().
// - Everything else (the heads) goes through gemm(): C = A·B or C += A·B on
//   Eigen's kernel, or on a BLAS plugged in at run time (blas.h) when one is.
//
// Threads are ours, not Eigen's: a product big enough to pay for a thread team
// is split into one block per thread (along C's larger dimension: for
// packed_gemm, by panels of W's columns or by rows), and each thread runs a
// single-threaded kernel on its block. (Eigen's own threading starts a team for
// products of a few hundred thousand multiply-adds, which costs more than it
// saves on a recurrent step and is ruinous when the cores are shared.) Splitting
// by columns also gives each thread its own slice of W_hh, so the weights are
// streamed once, not once per thread.

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "blas.h"

#include "tensor.h"

#if defined(__GNUC__) || defined(__clang__)
#define RNNKIT_NOINLINE __attribute__((noinline))
#else
#define RNNKIT_NOINLINE
#endif

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

// Weights packed once for many products with them: a product x·W with W (K, N)
// fixed (the recurrent step's h·W_hh^T, the streaming step's x·W_ih^T, ...) reads W
// in the order its kernel wants, instead of repacking it on every call as a
// general GEMM must:
//
//   panel j = columns [j·w, j·w + w) of W, its K rows back to back, zero-padded
//   past column N                               w = the panel width, a multiple
//                                                   of the SIMD width L
//
// W's columns may be `gates` blocks of N/gates (a recurrent layer's gates, each
// H columns wide): then no panel straddles two blocks, and the panels go chunk
// by chunk, chunk c = columns [c·w, c·w + w) of every block (panel j: block
// j % gates, chunk j / gates). A range of chunks is then a range of hidden units
// with all their gates, which one thread of the recurrent driver's team owns.
//
// Two kernels read it: vec_mat, one row x (the streaming step; w = 4L: four
// accumulators keep the FMA unit busy on one row) and packed_gemm, a matrix
// (the recurrent driver; w = 2L, with a tile of up to 6 rows of A in 12 registers).
//
// The panels start at the SIMD register's alignment (Eigen's aligned_allocator:
// 64 bytes with AVX-512, 32 with AVX) and every panel row is a whole number of
// registers, so no load of a panel straddles two cache lines. From the 16-byte
// alignment of a plain std::vector, every other AVX-512 load of an L1-resident
// matrix splits across two lines, which costs vec_mat a third of its speed.
//
// The weights' element type W is the packing's own, apart from the activations'
// type S that the kernels read and write: float32 and float64 weights are read
// as they are (W = S); a reduced-precision W (int8 with a scale per column,
// bfloat16) is a packing of its own and an inner kernel that widens a panel's
// row into S's registers (load_weights below), under the same drivers.
template <class W>
struct PackedMat {
  using Weight = W;
  std::vector<W, Eigen::aligned_allocator<W>> data;
  std::vector<float> scale;         // per output column, for integer weights (quant.h); empty: none (W = S)
  std::vector<std::int32_t> sums;   // per output column, the sum of its integer weights (quant.h)
  Index K = 0, N = 0, width = 0, gates = 1;
  Index block() const { return N / gates; }                          // columns per gate
  Index chunks() const { return (block() + width - 1) / width; }     // panels per gate
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

// A packet of weights from a panel row (P's lanes of them), as the kernels'
// activations type S: the weights as they are where their type is S. A
// reduced-precision weight type brings its own overload, which widens them.
template <class P, class S>
inline P load_weights(const S* p) {
  return Eigen::internal::ploadu<P>(p);
}

// One panel's first NP registers' width: y[0, NP·L) (only `valid` of them are
// real columns), L = P's lanes (S's widest SIMD packet, or a narrower one); the
// panel's rows are `ps` scalars apart.
//
// Head >= 0: the panel's first k_head rows leave out register Head; Tail >= 0:
// its rows from k_tail on leave out register Tail (such rows are ps - L wide,
// the other registers in order). The streaming step's GRU groups (stream.cpp)
// hold no zero blocks that way: the candidate's input part takes no h rows, its
// recurrent part no x rows.
template <int NP, int Head, int Tail, class P, class S, class W>
inline void panel_times(S* y, Index valid, const S* x, const W* p, Index ps, Index K, bool accumulate,
                        Index k_head = 0, Index k_tail = 0) {
  namespace ei = Eigen::internal;
  static_assert(std::is_same_v<typename ei::unpacket_traits<P>::type, S>, "P must be a packet of S");
  constexpr Index L = ei::unpacket_traits<P>::size;
  const bool full = valid == NP * L;
  alignas(64) S buf[NP * L];
  const S* y0 = y;  // where the sums start: y, or y's valid columns zero-padded in buf
  if (accumulate && !full) {
    for (Index j = 0; j < NP * L; ++j) buf[j] = j < valid ? y[j] : S(0);
    y0 = buf;
  }
  // Named accumulators, not an array: GCC keeps an array of packets on the stack.
  // Two sets, for even and odd k, so 2·NP multiply-adds are in flight at once
  // (a short K is latency-bound otherwise).
  const P zero = ei::pset1<P>(S(0));
  P a0 = accumulate ? ei::ploadu<P>(y0) : zero, a1 = zero, a2 = zero, a3 = zero;
  if constexpr (NP > 1) a1 = accumulate ? ei::ploadu<P>(y0 + L) : zero;
  if constexpr (NP > 2) a2 = accumulate ? ei::ploadu<P>(y0 + 2 * L) : zero;
  if constexpr (NP > 3) a3 = accumulate ? ei::ploadu<P>(y0 + 3 * L) : zero;
  P e0 = zero, e1 = zero, e2 = zero, e3 = zero;
  // rows [k, k1) without register `skip` (-1: with all), `stride` apart
  auto rows = [&](Index k, Index k1, auto skip) {
    constexpr int Skip = decltype(skip)::value;
    const Index stride = Skip < 0 ? ps : ps - L;
    constexpr auto in = [](int q) { return q != Skip; };  // register q takes these rows
    constexpr auto at = [](int q) {  // its offset in a row
      return (Skip >= 0 && q > Skip ? q - 1 : q) * Index(Eigen::internal::unpacket_traits<P>::size);
    };
    for (; k + 1 < k1; k += 2, p += 2 * stride) {
      const P xk = ei::pset1<P>(x[k]), xn = ei::pset1<P>(x[k + 1]);
      if constexpr (in(0))
        a0 = ei::pmadd(xk, load_weights<P>(p + at(0)), a0), e0 = ei::pmadd(xn, load_weights<P>(p + stride + at(0)), e0);
      if constexpr (NP > 1 && in(1))
        a1 = ei::pmadd(xk, load_weights<P>(p + at(1)), a1), e1 = ei::pmadd(xn, load_weights<P>(p + stride + at(1)), e1);
      if constexpr (NP > 2 && in(2))
        a2 = ei::pmadd(xk, load_weights<P>(p + at(2)), a2), e2 = ei::pmadd(xn, load_weights<P>(p + stride + at(2)), e2);
      if constexpr (NP > 3 && in(3))
        a3 = ei::pmadd(xk, load_weights<P>(p + at(3)), a3), e3 = ei::pmadd(xn, load_weights<P>(p + stride + at(3)), e3);
    }
    if (k < k1) {
      const P xk = ei::pset1<P>(x[k]);
      if constexpr (in(0)) a0 = ei::pmadd(xk, load_weights<P>(p + at(0)), a0);
      if constexpr (NP > 1 && in(1)) a1 = ei::pmadd(xk, load_weights<P>(p + at(1)), a1);
      if constexpr (NP > 2 && in(2)) a2 = ei::pmadd(xk, load_weights<P>(p + at(2)), a2);
      if constexpr (NP > 3 && in(3)) a3 = ei::pmadd(xk, load_weights<P>(p + at(3)), a3);
      p += stride;
    }
  };
  const Index k0 = Head < 0 ? 0 : k_head, k1 = Tail < 0 ? K : k_tail;
  if constexpr (Head >= 0) rows(0, k0, std::integral_constant<int, Head>{});
  rows(k0, k1, std::integral_constant<int, -1>{});
  if constexpr (Tail >= 0) rows(k1, K, std::integral_constant<int, Tail>{});
  a0 = ei::padd(a0, e0), a1 = ei::padd(a1, e1), a2 = ei::padd(a2, e2), a3 = ei::padd(a3, e3);
  S* out = full ? y : buf;
  ei::pstoreu(out, a0);
  if constexpr (NP > 1) ei::pstoreu(out + L, a1);
  if constexpr (NP > 2) ei::pstoreu(out + 2 * L, a2);
  if constexpr (NP > 3) ei::pstoreu(out + 3 * L, a3);
  if (out == buf) std::copy_n(buf, valid, y);
}

// How a register tile reads element (r, k) of its slice of A: packed_gemm's
// rows (row r at its own pointer, k contiguous) or gemm_tn's columns (A^T's
// row r is column r of a row-major array, k one of its rows, lda apart: the
// tile's M rows of A^T side by side in each row of the array).
template <class S>
struct TileRows {
  const S* const* a;
  S operator()(int r, Index k) const { return a[r][k]; }
};
template <class S>
struct TileCols {
  const S* a;
  Index lda;
  S operator()(int r, Index k) const { return a[k * lda + r]; }
};

// The register tile of packed_gemm and gemm_tn: C[0:M, 0:2L) (only `valid`
// columns real) += or = A[0:M, 0:kc) · B, row r of C's tile at c[r], A read
// through `a` (TileRows, TileCols), B's kc rows of 2L scalars at p, ps apart
// (2L in a packed panel). Never inlined: inlined into a caller with more live
// values, GCC 12 keeps the 2M sums on the stack and the tile runs 2.5x slower.
template <int M, class S, class A, class W>
RNNKIT_NOINLINE void tile_times(S* const* c, Index valid, A a, const W* p, Index ps, Index kc, bool load_c) {
  namespace ei = Eigen::internal;
  using P = typename ei::packet_traits<S>::type;
  constexpr Index L = simd_width<S>();
  P c0[M], c1[M];  // fully unrolled: GCC and Clang keep all 2M in registers
  alignas(64) S buf[M * 2 * L];
  const bool full = valid == 2 * L;
  for (int r = 0; r < M; ++r) {
    if (!load_c) {
      c0[r] = c1[r] = ei::pset1<P>(S(0));
    } else if (full) {
      c0[r] = ei::ploadu<P>(c[r]), c1[r] = ei::ploadu<P>(c[r] + L);
    } else {
      for (Index j = 0; j < 2 * L; ++j) buf[r * 2 * L + j] = j < valid ? c[r][j] : S(0);
      c0[r] = ei::pload<P>(buf + r * 2 * L), c1[r] = ei::pload<P>(buf + r * 2 * L + L);
    }
  }
  for (Index k = 0; k < kc; ++k, p += ps) {
    const P b0 = load_weights<P>(p), b1 = load_weights<P>(p + L);
    for (int r = 0; r < M; ++r) {
      const P ar = ei::pset1<P>(a(r, k));
      c0[r] = ei::pmadd(ar, b0, c0[r]);
      c1[r] = ei::pmadd(ar, b1, c1[r]);
    }
  }
  for (int r = 0; r < M; ++r) {
    if (full) {
      ei::pstoreu(c[r], c0[r]), ei::pstoreu(c[r] + L, c1[r]);
    } else {
      ei::pstore(buf + r * 2 * L, c0[r]), ei::pstore(buf + r * 2 * L + L, c1[r]);
      std::copy_n(buf + r * 2 * L, valid, c[r]);
    }
  }
}

// A tile of 1 to 6 rows (tile_times).
template <class S, class A, class W>
inline void tile(Index rows, S* const* c, Index valid, A a, const W* p, Index ps, Index kc, bool load_c) {
  switch (rows) {
    case 6: tile_times<6>(c, valid, a, p, ps, kc, load_c); break;
    case 5: tile_times<5>(c, valid, a, p, ps, kc, load_c); break;
    case 4: tile_times<4>(c, valid, a, p, ps, kc, load_c); break;
    case 3: tile_times<3>(c, valid, a, p, ps, kc, load_c); break;
    case 2: tile_times<2>(c, valid, a, p, ps, kc, load_c); break;
    default: tile_times<1>(c, valid, a, p, ps, kc, load_c); break;
  }
}

// Panels [p0, p1) of C (m, ·) = A (m, K) · W, or += with accumulate. Row i of A
// is at a + i·lda, or at a + a_rows[i]·lda where a_rows is given (A gathered
// from a larger array as the tiles read it, never copied); row i of C likewise
// (c_rows: C scattered into a larger array as the tiles write it).
template <class S, class W>
void packed_gemm_panels(S* c, Index ldc, const Index* c_rows, const S* a, Index lda, const Index* a_rows, Index m,
                        const PackedMat<W>& w, Index p0, Index p1, bool accumulate) {
  constexpr Index L = simd_width<S>(), NR = 2 * L, MR = 6;
  // K in blocks of equal size, at most KC: a panel's slice (kc·NR scalars, up
  // to 64 KiB) is read from L1-L2 by every row tile; rows in blocks whose slice
  // of A (mc·kc, 256 KiB) stays in L2 while every panel reads it. Every block of
  // K past the first loads and stores C once more, so the slices are as large
  // as L2 allows: at K = 512 (hidden 512, and backward's G·H-deep products)
  // smaller ones were measurably slower (benchmarks/bench.py, hidden 512).
  constexpr Index KC = std::max<Index>(64, 65536 / Index(NR * sizeof(S)));
  const Index kblocks = (w.K + KC - 1) / KC;
  for (Index kb = 0; kb < kblocks; ++kb) {
    const Index k0 = w.K * kb / kblocks, kc = w.K * (kb + 1) / kblocks - k0;
    const bool load_c = accumulate || k0 > 0;
    const Index MC = std::max<Index>(MR, 262144 / Index(kc * sizeof(S)));
    for (Index i0 = 0; i0 < m; i0 += MC) {
      const Index mc = std::min(MC, m - i0);
      // rows in tiles of 5 or 6 where there are enough (a tile of fewer keeps too few sums in flight)
      const Index tiles = (mc + MR - 1) / MR;
      for (Index j = p0; j < p1; ++j) {
        const W* panel = w.data.data() + j * NR * w.K + k0 * NR;
        const Index chunk = j / w.gates, col = j % w.gates * w.block() + chunk * NR;
        const Index valid = std::min(NR, w.block() - chunk * NR);
        for (Index t = 0; t < tiles; ++t) {
          const Index i = i0 + mc * t / tiles, rows = i0 + mc * (t + 1) / tiles - i;
          S* ct[MR];
          const S* at[MR];
          for (Index r = 0; r < rows; ++r) {
            ct[r] = c + (c_rows ? c_rows[i + r] : i + r) * ldc + col;
            at[r] = a + (a_rows ? a_rows[i + r] : i + r) * lda + k0;
          }
          tile(rows, ct, valid, TileRows<S>{at}, panel, NR, kc, load_c);
        }
      }
    }
  }
}

// Rows [0, m) of C (m, n) = A^T · B (or +=), A (K, m) and B (K, n) row-major,
// on the calling thread (gemm_tn). K in blocks of KC rows; in each, a tile of
// C's rows reads its KC x 6 slice of A (a few cache lines per row of A) once
// from memory and then from L1 for every panel of B's columns, and B's slice
// (KC x n, 64 KiB at n = 128) stays in L2 for every tile. Both are read where
// they lie: a general GEMM's copies of A and B into packed panels are a pass
// over each, as much memory traffic as the product's own reading of them.
template <class S>
void gemm_tn_rows(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index n, Index K,
                  bool accumulate) {
  constexpr Index L = simd_width<S>(), NR = 2 * L, MR = 6, KC = 128;
  alignas(64) S edge[KC * NR];  // the last panel, zero-padded, where n is not a multiple of NR
  const Index tiles = (m + MR - 1) / MR, full = n / NR * NR;
  for (Index k0 = 0; k0 < K; k0 += KC) {
    const Index kc = std::min(KC, K - k0);
    const S* ak = a + k0 * lda;
    const S* bk = b + k0 * ldb;
    if (full < n)
      for (Index k = 0; k < kc; ++k)
        for (Index j = 0; j < NR; ++j) edge[k * NR + j] = full + j < n ? bk[k * ldb + full + j] : S(0);
    for (Index t = 0; t < tiles; ++t) {
      const Index i = m * t / tiles, rows = m * (t + 1) / tiles - i;  // 5 or 6 where there are enough
      for (Index j = 0; j < n; j += NR) {
        S* ct[MR];
        for (Index r = 0; r < rows; ++r) ct[r] = c + (i + r) * ldc + j;
        const bool in_b = j < full;
        tile(rows, ct, std::min(NR, n - j), TileCols<S>{ak + i, lda}, in_b ? bk + j : edge, in_b ? ldb : NR, kc,
             accumulate || k0 > 0);
      }
    }
  }
}

}  // namespace detail

/// Pack w (K, N) (any Eigen expression: a map, a transposed map) into panels of
/// `width` columns (a multiple of the SIMD width), in `gates` blocks of columns
/// (see PackedMat; N a multiple of gates). Each block's last panel is zero-padded
/// to a multiple of `last_unit` columns (width: every panel the same size, as
/// packed_gemm indexes them; the SIMD width: no full panel of padding behind a
/// narrow matrix such as a one-output head, as vec_mat reads them).
template <class W, class D>
PackedMat<W> pack_panels(const Eigen::MatrixBase<D>& w, Index width, Index last_unit, Index gates = 1) {
  PackedMat<W> m;
  m.K = w.rows(), m.N = w.cols(), m.width = width, m.gates = gates;
  const Index block = m.block(), chunks = m.chunks();
  if (chunks == 0) return m;
  const Index last = (block - (chunks - 1) * width + last_unit - 1) / last_unit * last_unit;  // last chunk's width
  m.data.assign(std::size_t(((chunks - 1) * width + last) * gates * m.K), W(0));
  W* out = m.data.data();
  for (Index ch = 0; ch < chunks; ++ch)
    for (Index g = 0; g < gates; ++g) {
      const Index n0 = g * block + ch * width, valid = std::min(width, block - ch * width);
      const Index stride = ch + 1 < chunks ? width : last;
      for (Index k = 0; k < m.K; ++k, out += stride)
        for (Index j = 0; j < valid; ++j) out[j] = w(k, n0 + j);
    }
  return m;
}

/// Pack w (K, N) for vec_mat.
template <class W, class D>
PackedMat<W> pack_for_vec_mat(const Eigen::MatrixBase<D>& w) {
  return pack_panels<W>(w, 4 * detail::simd_width<W>(), detail::simd_width<W>());
}

/// Pack w (K, N) for packed_gemm, its columns in `gates` blocks (PackedMat).
template <class W, class D>
PackedMat<W> pack_for_gemm(const Eigen::MatrixBase<D>& w, Index gates = 1) {
  return pack_panels<W>(w, 2 * detail::simd_width<W>(), 2 * detail::simd_width<W>(), gates);
}

/// y (N) = x (K) · W, or y += x · W, with W packed by pack_for_vec_mat (one block).
///
/// backwards: the panels in reverse order. A caller that multiplies by the same
/// W over and over, with W larger than L1 (the streaming step at hidden 64 and
/// up), alternates the direction: each call then starts on the panels the call
/// before ended on, which are still in L1, instead of on the ones longest gone.
template <class S, class W>
void vec_mat(S* y, const S* x, const PackedMat<W>& w, bool accumulate = false, bool backwards = false) {
  using P = typename Eigen::internal::packet_traits<S>::type;
  constexpr Index L = detail::simd_width<S>(), NW = 4 * L;
  const Index panels = (w.N + NW - 1) / NW;
  for (Index i = 0; i < panels; ++i) {
    const Index j = backwards ? panels - 1 - i : i, n0 = j * NW;  // every panel but the last is NW wide
    const Index valid = std::min(NW, w.N - n0), np = (valid + L - 1) / L;
    const W* p = w.data.data() + n0 * w.K;
    switch (np) {
      case 4: detail::panel_times<4, -1, -1, P>(y + n0, valid, x, p, np * L, w.K, accumulate); break;
      case 3: detail::panel_times<3, -1, -1, P>(y + n0, valid, x, p, np * L, w.K, accumulate); break;
      case 2: detail::panel_times<2, -1, -1, P>(y + n0, valid, x, p, np * L, w.K, accumulate); break;
      default: detail::panel_times<1, -1, -1, P>(y + n0, valid, x, p, np * L, w.K, accumulate); break;
    }
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The reduced-precision products (quant.h, lowp_gemm.cpp): packed_gemm and its
// relatives reach them through these overloads of packed_gemm_panels.
struct Bf16;
namespace detail {
void packed_gemm_panels(float* c, Index ldc, const Index* c_rows, const float* a, Index lda, const Index* a_rows,
                        Index m, const PackedMat<std::int8_t>& w, Index p0, Index p1, bool accumulate);
void packed_gemm_panels(float* c, Index ldc, const Index* c_rows, const float* a, Index lda, const Index* a_rows,
                        Index m, const PackedMat<Bf16>& w, Index p0, Index p1, bool accumulate);
}  // namespace detail

// Multiply-adds below which a product runs on one thread.
constexpr double kParallelGemmWork = 1 << 20;

// Multiply-adds from which a product goes to the plugged-in BLAS (blas.h), if any.
constexpr double kBlasWork = 1 << 15;

/// C (m, N) = A (m, K) · W, or C += A · W, with W packed by pack_for_gemm; A's
/// rows lda apart (row i at a + a_rows[i]·lda where a_rows is given), C's ldc
/// (row i at c + c_rows[i]·ldc where c_rows is given).
/// A product worth a thread team is split along C's longer side: by W's panels
/// where C is wide (a recurrent step, an input projection: each thread streams
/// its own share of the weights and reads the few rows of A), by rows where it
/// is tall (backward's dX over all steps: each thread reads its own share of the
/// large A, instead of all of it); where C has fewer panels than there are
/// threads, its rows are split too, in groups of at least kSplitRows. Every
/// thread of the team is asked for, with work or not: a team of another size
/// than the one before makes libgomp move its threads, and a time loop that
/// alternates teams of two sizes (a backward product of few panels, the cell's
/// rows) then spends more time forming teams than computing. Allocates nothing.
constexpr Index kSplitRows = 12;
template <class S, class W>
void packed_gemm(S* c, Index ldc, const S* a, Index lda, Index m, const PackedMat<W>& w, bool accumulate = false,
                 const Index* a_rows = nullptr, const Index* c_rows = nullptr) {
  const Index panels = w.chunks() * w.gates;
  if (panels == 0) return;
  const bool by_rows = m > w.N;
  const double work = double(m) * double(w.N) * double(w.K);
  const int nt = work >= kParallelGemmWork && m > 0 ? get_num_threads() : 1;
  on_threads(nt, [&](Index id, Index k) {
    // a grid of pg panel groups by rg row groups (by_rows: one panel group)
    const Index pg = by_rows ? 1 : std::min(k, panels);
    const Index rg = std::max<Index>(1, std::min(k / pg, by_rows ? m : m / kSplitRows));
    if (id >= pg * rg) return;
    const Index p = id % pg, r = id / pg, r0 = split_begin(m, r, rg), r1 = split_begin(m, r + 1, rg);
    detail::packed_gemm_panels(c_rows ? c : c + r0 * ldc, ldc, c_rows ? c_rows + r0 : nullptr,
                               a_rows ? a : a + r0 * lda, lda, a_rows ? a_rows + r0 : nullptr, r1 - r0, w,
                               split_begin(panels, p, pg), split_begin(panels, p + 1, pg), accumulate);
  });
}

/// The columns of chunks [c0, c1) of every gate block of C = A · W (or +=), on
/// the calling thread: one team thread's share of a product (sequence.h).
template <class S, class W>
void packed_gemm_chunks(S* c, Index ldc, const S* a, Index lda, Index m, const PackedMat<W>& w, Index c0, Index c1,
                        bool accumulate = false, const Index* a_rows = nullptr) {
  if (m > 0) detail::packed_gemm_panels(c, ldc, nullptr, a, lda, a_rows, m, w, c0 * w.gates, c1 * w.gates, accumulate);
}

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
  const int nt = work >= kParallelGemmWork && m * n > 0 ? get_num_threads() : 1;
  if (nt <= 1) {
    run(c, a, b);
    return;
  }
  on_threads(nt, [&](Index id, Index k) {
    const bool by_rows = m >= n;
    const Index len = by_rows ? m : n;
    // blocks of a multiple of 16, so every thread's slice stays SIMD-aligned
    const Index chunk = ((len + k - 1) / k + 15) / 16 * 16;
    const Index lo = std::min(len, id * chunk), hi = std::min(len, lo + chunk);
    if (hi <= lo) return;
    if (by_rows)
      run(c.middleRows(lo, hi - lo), a.middleRows(lo, hi - lo), b);
    else
      run(c.middleCols(lo, hi - lo), a, b.middleCols(lo, hi - lo));
  });
}

/// C (m, n) = A^T · B, or C += A^T · B, with A (K, m) and B (K, n) row-major,
/// their rows lda and ldb apart: a weight gradient over all steps (dW = dG^T·X,
/// K = every step's rows). Our kernel (detail::gemm_tn_rows) where B is up to
/// kTnBlasCols wide; a wider product goes to gemm(), on the plugged-in BLAS if
/// there is one: up to 256 columns our kernel is as fast as OpenBLAS or
/// faster and faster than Eigen's GEMM, past it B's slice no longer stays in
/// L2 beside A's and OpenBLAS's blocking wins. Split across
/// threads like gemm(): by C's rows where it is taller than wide, else by
/// panels of its columns. Allocates nothing.
constexpr Index kTnBlasCols = 256;
template <class S>
void gemm_tn(S* c, Index ldc, const S* a, Index lda, const S* b, Index ldb, Index m, Index n, Index K,
             bool accumulate = false) {
  if (m == 0 || n == 0) return;
  if (K == 0) {
    if (!accumulate) mat(c, m, n, ldc).setZero();
    return;
  }
  if (n > kTnBlasCols && blas().sgemm) {
    gemm(mat(c, m, n, ldc), cmat(a, K, m, lda).transpose(), cmat(b, K, n, ldb), accumulate);
    return;
  }
  const double work = double(m) * double(n) * double(K);
  const int nt = work >= kParallelGemmWork ? get_num_threads() : 1;
  on_threads(nt, [&](Index id, Index k) {
    if (m >= n) {
      const Index lo = split_begin(m, id, k), hi = split_begin(m, id + 1, k);
      detail::gemm_tn_rows(c + lo * ldc, ldc, a + lo, lda, b, ldb, hi - lo, n, K, accumulate);
    } else {  // whole panels of columns, so every thread's tiles stay full
      constexpr Index NR = 2 * detail::simd_width<S>();
      const Index panels = (n + NR - 1) / NR, lo = std::min(n, split_begin(panels, id, k) * NR),
                  hi = std::min(n, split_begin(panels, id + 1, k) * NR);
      if (hi > lo) detail::gemm_tn_rows(c + lo, ldc, a, lda, b + lo, ldb, m, hi - lo, K, accumulate);
    }
  });
}

}  // namespace rnnkit
