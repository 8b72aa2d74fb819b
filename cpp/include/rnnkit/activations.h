#pragma once
// Activations and their derivatives, the derivatives written in terms of the
// activation's *output* a, which is what the caches keep:
//   σ(x) = 1/(1+e^-x)   σ' = a(1-a)
//   tanh               tanh' = 1-a²
//   relu               relu' = [a > 0]
// Eigen evaluates σ and tanh with its vectorised packet maths for float.

#include "tensor.h"

namespace rnnkit {

template <class Derived>
inline auto sigmoid(const Eigen::ArrayBase<Derived>& x) {
  return x.logistic();
}
template <class Derived>
inline auto dsigmoid(const Eigen::ArrayBase<Derived>& a) {
  return a * (1 - a);
}
template <class Derived>
inline auto dtanh(const Eigen::ArrayBase<Derived>& a) {
  return 1 - a.square();
}
template <class Derived>
inline auto relu(const Eigen::ArrayBase<Derived>& x) {
  return x.max(typename Derived::Scalar(0));
}
template <class Derived>
inline auto drelu(const Eigen::ArrayBase<Derived>& a) {
  using S = typename Derived::Scalar;
  return (a > S(0)).template cast<S>();
}

}  // namespace rnnkit
