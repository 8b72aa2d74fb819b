#pragma once
// The non-recurrent layers of a model, forward beside backward. Shapes: M rows
// (every leading axis flattened), B batch, T steps, F features.
//
//   Linear     y = x W^T + b                  W (out, in), b (out)
//   Embedding  y[i] = W[id_i]                  W (num, dim); the padding row gets no gradient
//   LastStep   y[b] = seq[b, len_b - 1]  (the reverse half of a bidirectional layer: seq[b, 0])
//   MeanPool   y[b] = mean_{t < len_b} seq[b, t]

#include <stdexcept>
#include <string>

#include "gemm.h"
#include "tensor.h"

namespace rnnkit {

// ---- Linear ------------------------------------------------------------------------
template <class S>
void linear_forward(S* y, const S* x, const S* w, const S* b, Index M, Index in, Index out) {
  gemm(mat(y, M, out), cmat(x, M, in), cmat(w, out, in).transpose());
  if (b) mat(y, M, out).rowwise() += crow(b, out);
}

// dx = dy W (if dx); dW += dy^T x; db += Σ_rows dy
template <class S>
void linear_backward(S* dx, S* dw, S* db, const S* dy, const S* x, const S* w, Index M, Index in, Index out) {
  gemm_tn(dw, in, dy, out, x, in, out, in, M, true);
  if (db) add_column_sums(db, dy, M, out, out);
  if (dx) gemm(mat(dx, M, in), cmat(dy, M, out), cmat(w, out, in));
}

// ---- Embedding ---------------------------------------------------------------------
template <class Id>  // std::int64_t or std::int32_t
inline void check_ids(const Id* ids, Index M, Index num) {
  for (Index i = 0; i < M; ++i)
    if (ids[i] < 0 || Index(ids[i]) >= num)
      throw std::invalid_argument("ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                                  " is out of range: token ids must be in 0.." + std::to_string(num - 1));
}

template <class S, class Id>
void embedding_forward(S* y, const Id* ids, const S* w, Index M, Index num, Index dim) {
  check_ids(ids, M, num);
  parallel_for(M, M * dim / kMemoryBound, [&](Index i) { arr(y + i * dim, dim) = carr(w + Index(ids[i]) * dim, dim); });
}

// dW[id_i] += dy[i], except the padding row (padding_idx < 0: none)
template <class S>
void embedding_backward(S* dw, const S* dy, const std::int64_t* ids, Index M, Index dim, Index padding_idx) {
  for (Index i = 0; i < M; ++i)
    if (ids[i] != padding_idx) arr(dw + ids[i] * dim, dim) += carr(dy + i * dim, dim);
}

// ---- Pooling over valid steps --------------------------------------------------------
// seq is (B, T, F) with batch_first, else (T, B, F); lengths (B) or nullptr (all T).
struct SeqLayout {
  Index B, T, F;
  bool batch_first;
  Index row(Index b, Index t) const { return batch_first ? b * T + t : t * B + b; }
};

inline Index length_of(const std::int64_t* lengths, Index b, Index T) { return lengths ? lengths[b] : T; }

// The last valid step of each sequence; with `directions` = 2 the second half of
// the features (the reverse direction) is taken at step 0, where it ends.
template <class S>
void last_step_forward(S* y, const S* seq, const std::int64_t* lengths, const SeqLayout& s, Index directions) {
  const Index half = s.F / directions;
  for (Index b = 0; b < s.B; ++b) {
    const Index last = length_of(lengths, b, s.T) - 1;
    arr(y + b * s.F, half) = carr(seq + s.row(b, last) * s.F, half);
    if (directions == 2) arr(y + b * s.F + half, half) = carr(seq + s.row(b, 0) * s.F + half, half);
  }
}

template <class S>
void last_step_backward(S* dseq, const S* dy, const std::int64_t* lengths, const SeqLayout& s, Index directions) {
  const Index half = s.F / directions;
  std::fill(dseq, dseq + s.B * s.T * s.F, S(0));
  for (Index b = 0; b < s.B; ++b) {
    const Index last = length_of(lengths, b, s.T) - 1;
    arr(dseq + s.row(b, last) * s.F, half) += carr(dy + b * s.F, half);
    if (directions == 2) arr(dseq + s.row(b, 0) * s.F + half, half) += carr(dy + b * s.F + half, half);
  }
}

template <class S>
void mean_pool_forward(S* y, const S* seq, const std::int64_t* lengths, const SeqLayout& s) {
  for (Index b = 0; b < s.B; ++b) {
    const Index n = length_of(lengths, b, s.T);
    auto out = arr(y + b * s.F, s.F);
    out.setZero();
    for (Index t = 0; t < n; ++t) out += carr(seq + s.row(b, t) * s.F, s.F);
    out /= S(n);
  }
}

// dL/dseq[b, t] = dL/dy[b] / len_b for t < len_b, else 0
template <class S>
void mean_pool_backward(S* dseq, const S* dy, const std::int64_t* lengths, const SeqLayout& s) {
  for (Index b = 0; b < s.B; ++b) {
    const Index n = length_of(lengths, b, s.T);
    for (Index t = 0; t < s.T; ++t) {
      auto d = arr(dseq + s.row(b, t) * s.F, s.F);
      if (t < n)
        d = carr(dy + b * s.F, s.F) / S(n);
      else
        d.setZero();
    }
  }
}

}  // namespace rnnkit
