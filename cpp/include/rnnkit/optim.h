#pragma once
// Optimizers over one flat parameter buffer, each one pass, with PyTorch's
// exact update rules (torch.optim, single-tensor path, dampening = 0, amsgrad off).
//
//   SGD     g += wd·p;  buf = g (first step) or μ·buf + g;  d = g + μ·buf (nesterov) or buf;  p -= lr·d
//   Adam    g += wd·p;  m = lerp(m, g, 1-β1);  v = β2·v + (1-β2)·g²;
//           p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + ε)
//   AdamW   p *= 1 - lr·wd, then Adam without the L2 term

#include <cmath>

#include "tensor.h"

namespace rnnkit {

struct SgdOptions {
  double lr = 0.01, momentum = 0, weight_decay = 0;
  bool nesterov = false;
};

// buf: momentum buffer (n), read only after the first step
template <class S>
void sgd_step(S* p, const S* g, S* buf, Index n, const SgdOptions& o, bool first_step) {
  const S lr = S(o.lr), mu = S(o.momentum), wd = S(o.weight_decay);
  parallel_for(n, n / kMemoryBound, [&](Index i) {
    S d = g[i];
    if (wd != 0) d += wd * p[i];
    if (mu != 0) {
      buf[i] = first_step ? d : mu * buf[i] + d;
      d = o.nesterov ? d + mu * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  });
}

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled = false;  // AdamW
};

// m, v: first and second moments (n); step: 1 on the first call
template <class S>
void adam_step(S* p, const S* g, S* m, S* v, Index n, const AdamOptions& o, long step) {
  const S b1 = S(o.beta1), b2 = S(o.beta2), eps = S(o.eps), wd = S(o.weight_decay);
  const double bc1 = 1 - std::pow(o.beta1, double(step)), bc2 = 1 - std::pow(o.beta2, double(step));
  const S step_size = S(o.lr / bc1), bc2_sqrt = S(std::sqrt(bc2)), decay = S(1 - o.lr * o.weight_decay);
  parallel_for(n, n / kMemoryBound, [&](Index i) {
    S gi = g[i];
    if (o.decoupled)
      p[i] *= decay;
    else if (wd != 0)
      gi += wd * p[i];
    m[i] += (1 - b1) * (gi - m[i]);
    v[i] = b2 * v[i] + (1 - b2) * gi * gi;
    p[i] -= step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
  });
}

// Global L2 norm of g; if above max_norm, scale g by max_norm / (norm + 1e-6)
// (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
template <class S>
double clip_grad_norm(S* g, Index n, double max_norm) {
  double sq = 0;
  for (Index i = 0; i < n; ++i) sq += double(g[i]) * double(g[i]);
  const double norm = std::sqrt(sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1)
    for (Index i = 0; i < n; ++i) g[i] = S(g[i] * coef);
  return norm;
}

}  // namespace rnnkit
