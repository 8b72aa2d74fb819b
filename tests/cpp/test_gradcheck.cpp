// The driver's BPTT against central finite differences, in double: every
// parameter, the input and the initial states, for every cell and option
// (layers, directions, lengths, batch_first, proj_size, reset_after, no bias).
// The options of a cell run one after another on one StackCache, as a training
// loop reuses it: each forward refills the buffers the last backward left, at
// another size (under the sanitizers, a buffer left too small shows).

#include <cmath>
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

rnnkit::StackCache<double> shared_cache;  // reused by every gradcheck, whatever its spec and sizes

void gradcheck(CellType cell, Index layers, bool bidir, bool lengths, bool batch_first = false, Index proj = 0,
               bool reset_after = true, bool bias = true) {
  Problem p;
  p.spec.cell = cell;
  p.spec.input_size = 3;
  p.spec.hidden_size = 4;
  p.spec.num_layers = layers;
  p.spec.bidirectional = bidir;
  p.spec.proj_size = proj;
  p.spec.reset_after = reset_after;
  p.spec.bias = bias;
  p.T = 4;
  p.B = 3;
  p.batch_first = batch_first;
  if (lengths) p.lengths = {2, 4, 1};
  std::mt19937 rng(1234);
  p.randomize(rng);

  rnnkit::StackCache<double>& cache = shared_cache;
  const Outputs o = forward(p, &cache);
  Weights w{random_vec(o.out.size(), rng), random_vec(o.h_n.size(), rng), random_vec(o.c_n.size(), rng)};

  V grads(p.params.size(), 0.0), gx(p.x.size()), gh0(p.h0.size()), gc0(p.c0.size());
  rnnkit::SeqGradArgs<double> g;
  g.grad_out = w.out.data();
  g.grad_h_n = w.h.data();
  g.grad_c_n = p.lstm() ? w.c.data() : nullptr;
  g.grad_x = gx.data();
  g.grad_h0 = gh0.data();
  g.grad_c0 = p.lstm() ? gc0.data() : nullptr;
  rnnkit::backward(p.spec, p.params.data(), grads.data(), cache, g);

  const double tol = 1e-7;
  const double ep = fd_error(p, p.params, grads, w), ex = fd_error(p, p.x, gx, w), eh = fd_error(p, p.h0, gh0, w);
  const double ec = p.lstm() ? fd_error(p, p.c0, gc0, w) : 0.0;
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
TEST(gru_gradients) { all_options(CellType::GRU); }
TEST(gru_reset_before_gradients) {
  gradcheck(CellType::GRU, 1, false, false, false, 0, false);
  gradcheck(CellType::GRU, 2, true, true, false, 0, false);
  gradcheck(CellType::GRU, 1, false, true, true, 0, false, false);
}

int main() { return check::run_all(); }
