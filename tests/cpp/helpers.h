#pragma once
// Shared by the C++ tests: random buffers and one-call forward/backward
// wrappers around rnnkit::forward / rnnkit::backward.

#include <random>
#include <vector>

#include "rnnkit/rnnkit.h"

namespace testing {

using rnnkit::Index;
using V = std::vector<double>;

inline V random_vec(Index n, std::mt19937& rng, double scale = 1.0) {
  std::uniform_real_distribution<double> u(-scale, scale);
  V v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

struct Problem {
  rnnkit::StackSpec spec;
  Index T = 4, B = 3;
  bool batch_first = false;
  std::vector<std::int64_t> lengths;  // empty: none
  V params, x, h0, c0;

  Index L() const { return spec.num_layers; }
  Index D() const { return spec.directions(); }
  Index P() const { return spec.out_size(); }
  Index H() const { return spec.hidden_size; }
  bool lstm() const { return spec.cell == rnnkit::CellType::LSTM; }

  void randomize(std::mt19937& rng) {
    params = random_vec(spec.num_params(), rng, 0.6);
    x = random_vec(T * B * spec.input_size, rng);
    h0 = random_vec(D() * L() * B * P(), rng);
    c0 = lstm() ? random_vec(D() * L() * B * H(), rng) : V();
  }
};

struct Outputs {
  V out, h_n, c_n;
};

inline Outputs forward(const Problem& p, rnnkit::StackCache<double>* cache = nullptr) {
  Outputs o;
  o.out.assign(p.T * p.B * p.D() * p.P(), 0.0);
  o.h_n.assign(p.D() * p.L() * p.B * p.P(), 0.0);
  o.c_n.assign(p.lstm() ? p.D() * p.L() * p.B * p.H() : 0, 0.0);
  rnnkit::SeqArgs<double> a;
  a.T = p.T;
  a.B = p.B;
  a.batch_first = p.batch_first;
  a.lengths = p.lengths.empty() ? nullptr : p.lengths.data();
  a.x = p.x.data();
  a.h0 = p.h0.data();
  a.c0 = p.lstm() ? p.c0.data() : nullptr;
  a.out = o.out.data();
  a.h_n = o.h_n.data();
  a.c_n = p.lstm() ? o.c_n.data() : nullptr;
  rnnkit::forward(p.spec, p.params.data(), a, cache);
  return o;
}

}  // namespace testing
