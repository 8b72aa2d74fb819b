// The driver's BPTT against central finite differences, in double: every
// parameter, the input and the initial states, for every cell and option
// (layers, directions, lengths, batch_first, proj_size, reset_after, peepholes, no bias).
// The options of a cell run one after another on one StackCache, as a training
// loop reuses it: each forward refills the buffers the last backward left, at
// another size (under the sanitizers, a buffer left too small shows).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "check.h"
#include "helpers.h"

using namespace testing;
using rnnkit::CellType;

namespace {

struct Weights {
  V out, h, c;  // L = Σ out⊙Wo + Σ h_n⊙Wh + Σ c_n⊙Wc
};

double loss(const Problem& p, const Weights& w) {
  const Outputs o = forward(p);
  double s = 0;
  for (size_t k = 0; k < o.out.size(); ++k) s += o.out[k] * w.out[k];
  for (size_t k = 0; k < o.h_n.size(); ++k) s += o.h_n[k] * w.h[k];
  for (size_t k = 0; k < o.c_n.size(); ++k) s += o.c_n[k] * w.c[k];
  return s;
}

// Largest |analytic - numeric| / (1 + |numeric|) over every entry of v.
double fd_error(Problem& p, V& v, const V& analytic, const Weights& w) {
  const double eps = 1e-6;
  double err = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    const double old = v[k];
    v[k] = old + eps;
    const double up = loss(p, w);
    v[k] = old - eps;
    const double down = loss(p, w);
    v[k] = old;
    const double num = (up - down) / (2 * eps);
    err = std::max(err, std::abs(analytic[k] - num) / (1 + std::abs(num)));
  }
  return err;
}

// One training step (forward into the cache, then backward with dL/d(out, h_n, c_n) = w):
// its outputs and every gradient (dL/dx only where asked for).
struct Step {
  Outputs o;
  V grads, gx, gh0, gc0;
};

Step training_step(const Problem& p, rnnkit::StackCache<double>& cache, const Weights& w, bool want_gx = true) {
  Step r{forward(p, &cache), V(p.params.size(), 0.0), V(want_gx ? p.x.size() : 0), V(p.h0.size()), V(p.c0.size())};
  rnnkit::SeqGradArgs<double> g;
  g.grad_out = w.out.data();
  g.grad_h_n = w.h.data();
  g.grad_c_n = p.lstm() ? w.c.data() : nullptr;
  g.grad_x = want_gx ? r.gx.data() : nullptr;
  g.grad_h0 = r.gh0.data();
  g.grad_c0 = p.lstm() ? r.gc0.data() : nullptr;
  rnnkit::backward(p.spec, p.params.data(), r.grads.data(), cache, g);
  return r;
}

rnnkit::StackCache<double> shared_cache;  // reused by every gradcheck, whatever its spec and sizes

void gradcheck(CellType cell, Index layers, bool bidir, bool lengths, bool batch_first = false, Index proj = 0,
               bool reset_after = true, bool bias = true, bool peepholes = false) {
  Problem p;
  p.spec.cell = cell;
  p.spec.input_size = 3;
  p.spec.hidden_size = 4;
  p.spec.num_layers = layers;
  p.spec.bidirectional = bidir;
  p.spec.proj_size = proj;
  p.spec.reset_after = reset_after;
  p.spec.bias = bias;
  p.spec.peepholes = peepholes;
  p.T = 4;
  p.B = 3;
  p.batch_first = batch_first;
  if (lengths) p.lengths = {2, 4, 1};
  std::mt19937 rng(1234);
  p.randomize(rng);

  const Outputs o = forward(p);
  Weights w{random_vec(o.out.size(), rng), random_vec(o.h_n.size(), rng), random_vec(o.c_n.size(), rng)};
  const Step r = training_step(p, shared_cache, w);

  const double tol = 1e-7;
  const double ep = fd_error(p, p.params, r.grads, w), ex = fd_error(p, p.x, r.gx, w),
               eh = fd_error(p, p.h0, r.gh0, w);
  const double ec = p.lstm() ? fd_error(p, p.c0, r.gc0, w) : 0.0;
  if (!(ep < tol && ex < tol && eh < tol && ec < tol))
    std::printf("  cell %d layers %d bidir %d lengths %d bf %d proj %d reset_after %d bias %d: "
                "params %.3g x %.3g h0 %.3g c0 %.3g\n",
                int(cell), int(layers), bidir, lengths, batch_first, int(proj), reset_after, bias, ep, ex, eh, ec);
  CHECK(ep < tol);
  CHECK(ex < tol);
  CHECK(eh < tol);
  CHECK(ec < tol);
}

void all_options(CellType cell) {
  gradcheck(cell, 1, false, false);
  gradcheck(cell, 1, false, true, true);
  gradcheck(cell, 2, true, true);
  gradcheck(cell, 2, false, false, false, 0, true, false);
}

}  // namespace

TEST(rnn_tanh_gradients) { all_options(CellType::RNN_TANH); }
TEST(rnn_relu_gradients) { all_options(CellType::RNN_RELU); }
TEST(lstm_gradients) { all_options(CellType::LSTM); }
TEST(lstm_proj_gradients) {
  gradcheck(CellType::LSTM, 1, false, false, false, 2);
  gradcheck(CellType::LSTM, 2, true, true, true, 3);
}
TEST(lstm_peephole_gradients) {
  gradcheck(CellType::LSTM, 1, false, false, false, 0, true, true, true);
  gradcheck(CellType::LSTM, 1, false, true, true, 0, true, true, true);
  gradcheck(CellType::LSTM, 2, true, true, false, 2, true, true, true);
  gradcheck(CellType::LSTM, 2, false, false, false, 0, true, false, true);
}
TEST(gru_gradients) { all_options(CellType::GRU); }
TEST(gru_reset_before_gradients) {
  gradcheck(CellType::GRU, 1, false, false, false, 0, false);
  gradcheck(CellType::GRU, 2, true, true, false, 0, false);
  gradcheck(CellType::GRU, 1, false, true, true, 0, false, false);
}

// Training on several threads in parts of the batch (sequence.h: each thread the
// forward and backward of its own rows, its own cache, its weight gradients added
// after) against the same step on one thread, itself checked against finite
// differences above: shapes past the parts' thresholds (16 rows per thread and
// kPartWork multiply-adds), with lengths (each part keeps its own rows of X and
// reads dY and writes dX through row indices) and without (a batch 2 and 3
// divide: each part reads X, dY and dX in place, at a stride; with batch_first,
// X in place and dY, dX through row indices), on one cache that the next problem
// refills at another size, as a training loop does.
namespace {

double worst(const V& a, const V& b) {
  double e = 0;
  for (size_t k = 0; k < a.size(); ++k) e = std::max(e, std::abs(a[k] - b[k]) / (1 + std::abs(b[k])));
  return a.size() == b.size() ? e : 1.0;
}

void parts_match_one_thread(CellType cell, bool lengths, Index proj = 0, bool batch_first = false,
                            bool peepholes = false) {
  Problem p;
  p.batch_first = batch_first;
  p.spec.cell = cell;
  p.spec.peepholes = peepholes;
  p.spec.input_size = 16;
  p.spec.hidden_size = 32;
  p.spec.num_layers = 2;
  p.spec.bidirectional = true;
  p.spec.proj_size = proj;
  p.T = 40;
  p.B = 48;
  std::mt19937 rng(99);
  if (lengths) {
    std::uniform_int_distribution<int> len(1, int(p.T));
    for (Index b = 0; b < p.B; ++b) p.lengths.push_back(len(rng));
    p.lengths[5] = p.T;
  }
  p.randomize(rng);
  for (auto& v : p.params) v *= 0.5;
  const Outputs o = forward(p);
  const Weights w{random_vec(o.out.size(), rng), random_vec(o.h_n.size(), rng), random_vec(o.c_n.size(), rng)};
  const int before = rnnkit::get_num_threads();
  rnnkit::set_num_threads(1);
  const Step want = training_step(p, shared_cache, w);
  for (int threads : {2, 3}) {
    rnnkit::set_num_threads(threads);
    const Step got = training_step(p, shared_cache, w);
    const double e = std::max({worst(got.o.out, want.o.out), worst(got.o.h_n, want.o.h_n), worst(got.o.c_n, want.o.c_n),
                               worst(got.grads, want.grads), worst(got.gx, want.gx), worst(got.gh0, want.gh0),
                               worst(got.gc0, want.gc0)});
    if (!(e < 1e-12))
      std::printf("  cell %d lengths %d proj %d batch_first %d, %d threads: %.3g\n", int(cell), lengths, int(proj),
                  batch_first, threads, e);
    CHECK(e < 1e-12);
  }
  // without dL/dx (not computed), the same parameter gradients
  const Step no_gx = training_step(p, shared_cache, w, false);
  CHECK(worst(no_gx.grads, want.grads) < 1e-12);
  rnnkit::set_num_threads(before);
}

}  // namespace

TEST(training_in_parts_matches_one_thread) {
  for (bool lengths : {true, false}) {
    parts_match_one_thread(CellType::LSTM, lengths);
    parts_match_one_thread(CellType::GRU, lengths);
  }
  parts_match_one_thread(CellType::LSTM, false, 8);
  parts_match_one_thread(CellType::GRU, true, 0, true);
  parts_match_one_thread(CellType::RNN_TANH, false, 0, true);
  parts_match_one_thread(CellType::LSTM, true, 0, false, true);
  parts_match_one_thread(CellType::LSTM, false, 0, false, true);
}

int main() { return check::run_all(); }
