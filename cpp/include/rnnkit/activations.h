#pragma once
// Activations and their derivatives, the derivatives written in terms of the
// activation's *output* a, which is what the caches keep:
//   σ(x) = 1/(1+e^-x)   σ' = a(1-a)
//   tanh               tanh' = 1-a²
//   relu               relu' = [a > 0]
// σ and tanh are Eigen's own functors, vectorised with its packet maths for float.
//
// The cells go over a row once, every gate of an element at a
// time, through lanes: for_lanes<S>(n, f) calls f(V(), j) with V = Eigen's SIMD
// packet for j = 0, L, 2L, ... while a whole packet fits, then with its half and
// quarter packets where they fit, then with V = S for the elements left, so one
// generic lambda states the maths for the SIMD body and the scalar tail alike
// (lane:: below works on both). Where Eigen has no packet tanh for S (double,
// in Eigen 3.4), V is always S.

#include <type_traits>

#include "tensor.h"

namespace rnnkit {

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // Eigen's packet types as template arguments
#endif
namespace lane {
namespace ei = Eigen::internal;

template <class S>
constexpr bool vectorised = ei::packet_traits<S>::Vectorizable && ei::packet_traits<S>::HasTanh &&
                            ei::functor_traits<ei::scalar_logistic_op<S>>::PacketAccess;
template <class V>
constexpr bool scalar = std::is_arithmetic_v<V>;

template <class V, class S>
inline V load(const S* p) {
  if constexpr (scalar<V>) return *p;
  else return ei::ploadu<V>(p);
}
template <class S, class V>
inline void store(S* p, const V& v) {
  if constexpr (scalar<V>) *p = v;
  else ei::pstoreu(p, v);
}
template <class V, class S>
inline V set(S x) {
  if constexpr (scalar<V>) return x;
  else return ei::pset1<V>(x);
}
// σ and tanh: Eigen's own functors, the ones .logistic() and .tanh() use
template <class V>
inline V sigmoid(const V& x) {
  using S = typename ei::unpacket_traits<V>::type;
  if constexpr (scalar<V>) return ei::scalar_logistic_op<S>()(x);
  else return ei::scalar_logistic_op<S>().packetOp(x);
}
template <class V>
inline V tanh(const V& x) {
  using S = typename ei::unpacket_traits<V>::type;
  if constexpr (scalar<V>) return ei::scalar_tanh_op<S>()(x);
  else return ei::scalar_tanh_op<S>().packetOp(x);
}
template <class V>
inline V relu(const V& x) {
  if constexpr (scalar<V>) return x > V(0) ? x : V(0);
  else return ei::pmax(x, ei::pset1<V>(0));
}
// derivatives from the activation's output a: σ' = a(1-a), tanh' = 1-a², relu' = [a > 0]
template <class V>
inline V dsigmoid(const V& a) {
  using S = typename ei::unpacket_traits<V>::type;
  return ei::pmul(a, ei::psub(set<V>(S(1)), a));
}
template <class V>
inline V dtanh(const V& a) {
  using S = typename ei::unpacket_traits<V>::type;
  return ei::psub(set<V>(S(1)), ei::pmul(a, a));
}
template <class V>
inline V drelu_times(const V& a, const V& x) {  // x ⊙ relu'(a)
  using S = typename ei::unpacket_traits<V>::type;
  if constexpr (scalar<V>) return a > S(0) ? x : S(0);
  else return ei::pand(ei::pcmp_lt(ei::pset1<V>(S(0)), a), x);
}
using ei::padd;
using ei::pmadd;
using ei::pmul;
using ei::psub;

}  // namespace lane

namespace detail {
// The tail of for_lanes: one packet of P where one fits, then the same with
// P's half, down to the smallest packet (AVX-512: 8, then 4 floats; a packet
// type that is its own half ends it), so a hidden size of 8, or the last 8 of
// 24, still runs vectorised rather than through the scalar functions (9x the
// time of the LSTM cell at hidden 8).
template <class P, class F>
inline void tail_lanes(Index n, Index& j, F& f) {
  using Half = typename Eigen::internal::unpacket_traits<P>::half;
  constexpr Index L = Eigen::internal::unpacket_traits<P>::size;
  if (j + L <= n) f(P(), j), j += L;
  if constexpr (!std::is_same_v<Half, P>) tail_lanes<Half>(n, j, f);
}
}  // namespace detail

template <class S, class F>
inline void for_lanes(Index n, F&& f) {
  Index j = 0;
  if constexpr (lane::vectorised<S>) {
    using P = typename Eigen::internal::packet_traits<S>::type;
    using Half = typename Eigen::internal::unpacket_traits<P>::half;
    constexpr Index L = Eigen::internal::unpacket_traits<P>::size;
    for (; j + L <= n; j += L) f(P(), j);
    detail::tail_lanes<Half>(n, j, f);
  }
  for (; j < n; ++j) f(S(), j);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace rnnkit
