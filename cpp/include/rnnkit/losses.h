#pragma once
// Losses with their gradients, PyTorch's definitions with reduction='mean'.
// Each returns the loss and writes dL/dpred. Sums are accumulated in double.
//
//   mse              L = mean (p - y)²                              dL/dp = 2(p - y)/n
//   cross_entropy    L = mean_{counted rows} logsumexp(z) - z_y      dL/dz = (softmax(z) - onehot(y))/count
//   bce_with_logits  L = mean max(z,0) - z·y + log(1 + e^{-|z|})     dL/dz = (σ(z) - y)/n

#include <cmath>
#include <stdexcept>
#include <string>

#include "tensor.h"

namespace rnnkit {

template <class S>
double mse_loss(S* grad, const S* pred, const S* target, Index n) {
  double sum = 0;
  for (Index i = 0; i < n; ++i) {
    const double d = double(pred[i]) - double(target[i]);
    sum += d * d;
    grad[i] = S(2 * d / double(n));
  }
  return sum / double(n);
}

// logits (M, C); target (M); a row counts when target != ignore_index and
// (valid == nullptr or valid[row]). Rows that do not count get zero gradient.
template <class S>
double cross_entropy_loss(S* grad, const S* logits, const std::int64_t* target, const std::uint8_t* valid, Index M,
                          Index C, std::int64_t ignore_index) {
  Index count = 0;
  for (Index i = 0; i < M; ++i) {
    if ((valid && !valid[i]) || target[i] == ignore_index) continue;
    if (target[i] < 0 || target[i] >= C)
      throw std::invalid_argument("target[" + std::to_string(i) + "] = " + std::to_string(target[i]) +
                                  " is out of range: class ids must be in 0.." + std::to_string(C - 1));
    ++count;
  }
  std::fill(grad, grad + M * C, S(0));
  if (count == 0) return 0.0;
  double sum = 0;
  for (Index i = 0; i < M; ++i) {
    if ((valid && !valid[i]) || target[i] == ignore_index) continue;
    const S* z = logits + i * C;
    S* g = grad + i * C;
    double zmax = z[0];
    for (Index c = 1; c < C; ++c) zmax = std::max(zmax, double(z[c]));
    double se = 0;
    for (Index c = 0; c < C; ++c) se += std::exp(double(z[c]) - zmax);
    const double lse = zmax + std::log(se);
    sum += lse - double(z[target[i]]);
    for (Index c = 0; c < C; ++c) g[c] = S(std::exp(double(z[c]) - lse) / double(count));
    g[target[i]] -= S(1.0 / double(count));
  }
  return sum / double(count);
}

template <class S>
double bce_with_logits_loss(S* grad, const S* logits, const S* target, Index n) {
  double sum = 0;
  for (Index i = 0; i < n; ++i) {
    const double z = logits[i], y = target[i];
    sum += std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)));
    const double sig = z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z));
    grad[i] = S((sig - y) / double(n));
  }
  return sum / double(n);
}

}  // namespace rnnkit
