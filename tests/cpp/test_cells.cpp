// Each cell's forward against its equations written out element by element
// (one layer, one direction, a few steps), in double.

#include <cmath>

#include "check.h"
#include "helpers.h"

using namespace testing;
using rnnkit::CellType;

namespace {

double sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// a_k = W_ih[k] x + b_ih[k] + W_hh[k] h + b_hh[k] for gate row k (bias split kept,
// since GRU's candidate needs the recurrent half on its own).
struct Rows {
  const Problem& p;
  rnnkit::DirParams d;
  double xin(Index k, const double* x) const {
    double s = p.params[d.b_ih + k];
    for (Index i = 0; i < p.spec.input_size; ++i) s += p.params[d.w_ih + k * p.spec.input_size + i] * x[i];
    return s;
  }
  double hin(Index k, const std::vector<double>& h) const {
    double s = p.params[d.b_hh + k];
    for (Index j = 0; j < p.H(); ++j) s += p.params[d.w_hh + k * p.H() + j] * h[j];
    return s;
  }
};

// The reference: returns out (T, B, H) for one layer, one direction.
V reference(const Problem& p) {
  const Index H = p.H(), I = p.spec.input_size;
  Rows rows{p, p.spec.dir_params(0, 0)};
  V out(p.T * p.B * H);
  for (Index b = 0; b < p.B; ++b) {
    std::vector<double> h(p.h0.begin() + b * H, p.h0.begin() + (b + 1) * H), c;
    if (p.lstm()) c.assign(p.c0.begin() + b * H, p.c0.begin() + (b + 1) * H);
    for (Index t = 0; t < p.T; ++t) {
      const double* x = p.x.data() + (t * p.B + b) * I;
      std::vector<double> hn(H);
      for (Index j = 0; j < H; ++j) {
        switch (p.spec.cell) {
          case CellType::RNN_TANH: hn[j] = std::tanh(rows.xin(j, x) + rows.hin(j, h)); break;
          case CellType::RNN_RELU: hn[j] = std::max(0.0, rows.xin(j, x) + rows.hin(j, h)); break;
          case CellType::LSTM: {
            // peepholes (ONNX): p_i, p_f see c_{t-1}, p_o sees c_t; rows of weight_peephole (3, H)
            const double* pp = p.spec.peepholes ? p.params.data() + rows.d.peep : nullptr;
            const double pi = pp ? pp[j] : 0, pf = pp ? pp[H + j] : 0, po = pp ? pp[2 * H + j] : 0;
            const double i = sigm(rows.xin(j, x) + rows.hin(j, h) + pi * c[j]);
            const double f = sigm(rows.xin(H + j, x) + rows.hin(H + j, h) + pf * c[j]);
            const double g = std::tanh(rows.xin(2 * H + j, x) + rows.hin(2 * H + j, h));
            c[j] = f * c[j] + i * g;  // c[j] is only read for unit j
            const double o = sigm(rows.xin(3 * H + j, x) + rows.hin(3 * H + j, h) + po * c[j]);
            hn[j] = o * std::tanh(c[j]);
            break;
          }
          case CellType::GRU: {
            const double r = sigm(rows.xin(j, x) + rows.hin(j, h));
            const double z = sigm(rows.xin(H + j, x) + rows.hin(H + j, h));
            double n;
            if (p.spec.reset_after) {
              n = std::tanh(rows.xin(2 * H + j, x) + r * rows.hin(2 * H + j, h));
            } else {
              // W_hn (r ⊙ h): needs r of every unit
              std::vector<double> rh(H);
              for (Index k = 0; k < H; ++k) rh[k] = sigm(rows.xin(k, x) + rows.hin(k, h)) * h[k];
              n = std::tanh(rows.xin(2 * H + j, x) + rows.hin(2 * H + j, rh));
            }
            hn[j] = (1 - z) * n + z * h[j];
            break;
          }
        }
      }
      h = hn;
      for (Index j = 0; j < H; ++j) out[(t * p.B + b) * H + j] = h[j];
    }
  }
  return out;
}

void check_cell(CellType cell, bool reset_after = true, bool peepholes = false) {
  Problem p;
  p.spec.cell = cell;
  p.spec.peepholes = peepholes;
  p.spec.input_size = 3;
  p.spec.hidden_size = 5;
  p.spec.reset_after = reset_after;
  p.T = 4;
  p.B = 3;
  std::mt19937 rng(42);
  p.randomize(rng);
  const Outputs o = forward(p);
  const V ref = reference(p);
  double err = 0;
  for (size_t k = 0; k < ref.size(); ++k) err = std::max(err, std::abs(o.out[k] - ref[k]));
  CHECK(err < 1e-12);
  // h_n is the last step's output
  for (Index k = 0; k < p.B * p.H(); ++k) CHECK(o.h_n[k] == o.out[(p.T - 1) * p.B * p.H() + k]);
}

}  // namespace

TEST(rnn_tanh_matches_equations) { check_cell(CellType::RNN_TANH); }
TEST(rnn_relu_matches_equations) { check_cell(CellType::RNN_RELU); }
TEST(lstm_matches_equations) { check_cell(CellType::LSTM); }
TEST(lstm_peephole_matches_equations) { check_cell(CellType::LSTM, true, true); }
TEST(gru_matches_equations) { check_cell(CellType::GRU); }
TEST(gru_reset_before_matches_equations) { check_cell(CellType::GRU, false); }

TEST(float_agrees_with_double) {
  for (CellType cell : {CellType::RNN_TANH, CellType::LSTM, CellType::GRU}) {
    Problem p;
    p.spec.cell = cell;
    p.spec.input_size = 4;
    p.spec.hidden_size = 6;
    p.spec.num_layers = 2;
    p.spec.bidirectional = true;
    p.T = 5;
    p.B = 3;
    p.lengths = {5, 2, 4};
    std::mt19937 rng(7);
    p.randomize(rng);
    const Outputs o = forward(p);
    auto f = [](const V& v) { return std::vector<float>(v.begin(), v.end()); };
    const std::vector<float> params = f(p.params), x = f(p.x), h0 = f(p.h0), c0 = f(p.c0);
    std::vector<float> out(o.out.size()), h_n(o.h_n.size()), c_n(o.c_n.size());
    rnnkit::SeqArgs<float> a;
    a.T = p.T;
    a.B = p.B;
    a.lengths = p.lengths.data();
    a.x = x.data();
    a.h0 = h0.data();
    a.c0 = p.lstm() ? c0.data() : nullptr;
    a.out = out.data();
    a.h_n = h_n.data();
    a.c_n = p.lstm() ? c_n.data() : nullptr;
    rnnkit::forward(p.spec, params.data(), a, static_cast<rnnkit::StackCache<float>*>(nullptr));
    double err = 0;
    for (size_t k = 0; k < out.size(); ++k) err = std::max(err, std::abs(out[k] - o.out[k]));
    CHECK(err < 1e-5);
  }
}

TEST(bad_spec_throws) {
  rnnkit::StackSpec s;
  s.cell = CellType::GRU;
  s.input_size = 3;
  s.hidden_size = 4;
  s.proj_size = 2;  // LSTM only
  CHECK_THROWS(s.validate());
  s.cell = CellType::LSTM;
  s.proj_size = 4;  // must be < hidden_size
  CHECK_THROWS(s.validate());
  s.proj_size = 0;
  s.cell = CellType::GRU;
  s.peepholes = true;  // LSTM only
  CHECK_THROWS(s.validate());
  s.cell = CellType::LSTM;
  s.validate();
  s.hidden_size = 0;
  CHECK_THROWS(s.validate());
}

int main() { return check::run_all(); }
