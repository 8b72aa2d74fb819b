#pragma once
// Variable-length batches, packed as PyTorch packs them.
//
// Sequences are ordered by decreasing length (stable), so the b_t rows still
// running at step t are always the first b_t of that order. The rows of all
// steps are stored back to back, step after step:
//
//   packed row  offset[t] + j   is sequence order[j] at step t,  j < batch[t]
//
// N = offset[T] = Σ lengths rows in all. Both directions visit, at step t,
// exactly the first batch[t] rows, so no work is spent on padding, and every
// per-step block and every all-steps block is contiguous. Without lengths the
// packed layout is the plain (T, B, ·) time-major layout.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"

namespace rnnkit {

/// Throws std::invalid_argument unless every lengths[b], b < B, is in 1..T. Every entry point
/// that takes lengths (the recurrent layers, pooling, Model::predict, Python's as_lengths)
/// checks through this, so each says the same.
inline void check_lengths(const std::int64_t* lengths, Index B, Index T) {
  for (Index b = 0; b < B; ++b)
    if (lengths[b] < 1 || lengths[b] > T)
      throw std::invalid_argument("lengths[" + std::to_string(b) + "] = " + std::to_string(lengths[b]) +
                                  " is out of range: each length must be in 1.." + std::to_string(T));
}

struct Packing {
  Index T = 0, B = 0;
  std::vector<Index> order;   // (B)   j-th packed row of a step -> the caller's batch index
  std::vector<Index> batch;   // (T)   rows active at step t, non-increasing
  std::vector<Index> offset;  // (T+1) first packed row of step t; offset[T] = N
  bool trivial = true;        // identity order and every length == T: packed == (T, B, ·)

  Index rows() const { return offset[T]; }

  Packing() = default;
  // lengths: (B) each in 1..T, or nullptr for all T.
  Packing(Index T_, Index B_, const std::int64_t* lengths) : T(T_), B(B_), order(B_), batch(T_), offset(T_ + 1) {
    if (T < 1) throw std::invalid_argument("sequence length T must be >= 1, got " + std::to_string(T));
    if (B < 1) throw std::invalid_argument("batch size must be >= 1, got " + std::to_string(B));
    std::iota(order.begin(), order.end(), Index(0));
    if (lengths) {
      check_lengths(lengths, B, T);
      std::stable_sort(order.begin(), order.end(),
                       [&](Index a, Index b) { return lengths[a] > lengths[b]; });
      for (Index b = 0; b < B; ++b) trivial = trivial && order[b] == b && lengths[b] == T;
    }
    Index j = B;  // rows with length > t
    for (Index t = 0; t < T; ++t) {
      if (lengths)
        while (j > 0 && lengths[order[j - 1]] <= t) --j;
      batch[t] = j;
    }
    offset[0] = 0;
    for (Index t = 0; t < T; ++t) offset[t + 1] = offset[t] + batch[t];
  }

  // Row of (t, b) in a caller's (T, B, ·) or (B, T, ·) array.
  Index user_row(Index t, Index b, bool batch_first) const { return batch_first ? b * T + t : t * B + b; }

  // Row of each packed row in a caller's (T, B, ·) or (B, T, ·) array (N of them):
  // the recurrent driver reads the first layer's input and writes the last
  // layer's output through these, and backward reads the output's gradient and
  // writes the input's, with no packed copy in between.
  std::vector<Index> user_rows(bool batch_first) const {
    std::vector<Index> rows(std::size_t(this->rows()));
    for (Index t = 0; t < T; ++t)
      for (Index j = 0; j < batch[t]; ++j) rows[std::size_t(offset[t] + j)] = user_row(t, order[j], batch_first);
    return rows;
  }

  // Zero the rows of dst (T, B, w) or (B, T, w) past each sequence's length.
  template <class S>
  void zero_padding(S* dst, bool batch_first, Index w) const {
    parallel_for(T, (T * B - rows()) * w / kMemoryBound, [&](Index t) {
      for (Index j = batch[t]; j < B; ++j) std::fill_n(dst + user_row(t, order[j], batch_first) * w, w, S(0));
    });
  }

  // dst (N, w) packed <- src (T, B, w) or (B, T, w)
  template <class S>
  void gather(const S* src, bool batch_first, Index w, S* dst) const {
    parallel_for(T, rows() * w / kMemoryBound, [&](Index t) {
      for (Index j = 0; j < batch[t]; ++j)
        std::memcpy(dst + (offset[t] + j) * w, src + user_row(t, order[j], batch_first) * w, w * sizeof(S));
    });
  }

  // States (B, w) in the caller's batch order <-> packed order.
  template <class S>
  void gather_state(const S* src, Index w, S* dst) const {
    for (Index j = 0; j < B; ++j) std::memcpy(dst + j * w, src + order[j] * w, w * sizeof(S));
  }
  template <class S>
  void scatter_state(const S* src, Index w, S* dst) const {
    for (Index j = 0; j < B; ++j) std::memcpy(dst + order[j] * w, src + j * w, w * sizeof(S));
  }
};

}  // namespace rnnkit
