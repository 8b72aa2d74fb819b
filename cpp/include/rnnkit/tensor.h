#pragma once
// Eigen aliases and Map helpers. Everything inside rnnkit is row-major and
// time-major, so a NumPy C-order array maps with no copy and the rows of one
// time step form one contiguous block.

#include <Eigen/Core>

#include "config.h"

namespace rnnkit {

template <class S>
using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using Vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;
template <class S>
using ArrMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>>;
template <class S>
using CArrMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>;

// A row-major matrix view with an arbitrary row stride (ld >= cols).
template <class S>
using MatMap = Eigen::Map<Mat<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class S>
using CMatMap = Eigen::Map<const Mat<S>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class S>
inline MatMap<S> mat(S* p, Index rows, Index cols, Index ld) {
  return MatMap<S>(p, rows, cols, Eigen::OuterStride<>(ld));
}
template <class S>
inline MatMap<S> mat(S* p, Index rows, Index cols) {
  return MatMap<S>(p, rows, cols, Eigen::OuterStride<>(cols));
}
template <class S>
inline CMatMap<S> cmat(const S* p, Index rows, Index cols, Index ld) {
  return CMatMap<S>(p, rows, cols, Eigen::OuterStride<>(ld));
}
template <class S>
inline CMatMap<S> cmat(const S* p, Index rows, Index cols) {
  return CMatMap<S>(p, rows, cols, Eigen::OuterStride<>(cols));
}
// A row vector view, for broadcasting a bias over rows: m.rowwise() += crow(b, n).
template <class S>
inline Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>> crow(const S* p, Index n) {
  return Eigen::Map<const Eigen::Matrix<S, 1, Eigen::Dynamic>>(p, n);
}
template <class S>
inline ArrMap<S> arr(S* p, Index n) {
  return ArrMap<S>(p, n);
}
template <class S>
inline CArrMap<S> carr(const S* p, Index n) {
  return CArrMap<S>(p, n);
}

// dst (n) += Σ_r src[r] (rows × n, row stride ld), summed row after row: each
// column's sum then runs in the same order whatever the buffers' alignment
// (Eigen's colwise().sum() does not), so the same inputs give the same bits.
template <class S>
inline void add_column_sums(S* dst, const S* src, Index rows, Index n, Index ld) {
  auto d = arr(dst, n);
  for (Index r = 0; r < rows; ++r) d += carr(src + r * ld, n);
}

}  // namespace rnnkit
