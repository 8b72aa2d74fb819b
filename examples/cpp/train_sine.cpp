// Train an LSTM in C++ alone, then hand it to Python: the C++ training API.
//
//   train_sine [OUT] [--epochs N] [--seed S]        OUT defaults to train_sine.safetensors
//   python -c "import rnnkit as rk; print(rk.load('train_sine.safetensors'))"
//
// Task: next-value prediction on sine waves. A window is T = 20 samples of
// sin(2π t / period + phase) with a random period (12 to 40 samples) and phase;
// the target is the sample after it. The model is what rk.Sequential calls
//
//   0: LSTM(1, H, batch_first=True)   x (B, T, 1) -> seq (B, T, H)
//   1: LastStep()                     seq -> last (B, H) = seq[:, T-1]
//   2: Linear(H, 1)                   last -> pred (B, 1)
//
// and every parameter lives in ONE flat buffer, with a twin gradient buffer of the
// same layout (llm.c's style), so the optimizer, clipping and zeroing are one call each:
//
//   params  | LSTM: weight_ih_l0 weight_hh_l0 bias_ih_l0 bias_hh_l0 (spec.param_layout()) | 2.weight (1, H) | 2.bias (1) |
//   grads   | the same layout                                                                                      |
//
// One training step: forward (rnnkit::forward with a StackCache, then LastStep and
// Linear), mse_loss, backward in reverse order (Linear, LastStep, rnnkit::backward,
// which consumes the cache), gradient clipping and Adam over the flat buffers.
//
// Prints the training loss every few epochs, then these lines for scripts:
//   final test mse: X
//   baseline (last value) mse: Y
//   check window sin(2*pi*t/25), t = 0..19: prediction P (reloaded file: Q), true next value R
//   saved: OUT
// where P is this program's forward pass and Q that of rnnkit::Model::load(OUT); Python's
// rk.load(OUT).predict gives the same. Deterministic for a given seed; a few seconds on 2 cores.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <rnnkit/layers.h>
#include <rnnkit/losses.h>
#include <rnnkit/model.h>
#include <rnnkit/optim.h>
#include <rnnkit/stack.h>

namespace {

using rnnkit::Index;

constexpr Index kSteps = 20;      // T: samples per window
constexpr Index kHidden = 24;     // H
constexpr Index kBatch = 32;      // B
constexpr Index kTrain = 1024;    // windows
constexpr Index kTest = 512;
constexpr double kPi = 3.14159265358979323846;

// Windows (N, T, 1) of random sine waves and their next values (N, 1).
struct Windows {
  std::vector<float> x, y;
  Index size() const { return Index(y.size()); }
};

Windows make_windows(Index n, std::mt19937& rng) {
  std::uniform_real_distribution<double> period(12, 40), phase(0, 2 * kPi);
  Windows w;
  w.x.resize(std::size_t(n * kSteps));
  w.y.resize(std::size_t(n));
  for (Index i = 0; i < n; ++i) {
    const double omega = 2 * kPi / period(rng), phi = phase(rng);
    for (Index t = 0; t < kSteps; ++t) w.x[std::size_t(i * kSteps + t)] = float(std::sin(omega * double(t) + phi));
    w.y[std::size_t(i)] = float(std::sin(omega * double(kSteps) + phi));
  }
  return w;
}

// The model: its stack spec and where the head's parameters sit in the flat buffer.
struct SineModel {
  rnnkit::StackSpec spec;  // the LSTM
  Index head_w = 0;        // offset of the Linear weight (1, H)
  Index head_b = 0;        // offset of its bias (1)
  Index size = 0;          // parameters in all

  SineModel() {
    spec.cell = rnnkit::CellType::LSTM;
    spec.input_size = 1;
    spec.hidden_size = kHidden;
    spec.validate();
    head_w = spec.num_params();
    head_b = head_w + kHidden;
    size = head_b + 1;
  }
};

// Activations of one batch, kept for backward. Every buffer is batch-first.
struct Activations {
  rnnkit::StackCache<float> cache;  // what rnnkit::backward needs of the LSTM
  std::vector<float> seq;           // (B, T, H) LSTM output
  std::vector<float> last;          // (B, H)
  std::vector<float> pred;          // (B, 1)
};

// pred = Linear(LastStep(LSTM(x))) for x (B, T, 1); with a cache when training.
void model_forward(const SineModel& m, const float* params, const float* x, Index B, Activations& a, bool train) {
  const Index H = kHidden, T = kSteps;
  a.seq.resize(std::size_t(B * T * H));
  a.last.resize(std::size_t(B * H));
  a.pred.resize(std::size_t(B));
  rnnkit::SeqArgs<float> args;
  args.T = T;
  args.B = B;
  args.batch_first = true;
  args.x = x;
  args.out = a.seq.data();  // h_n, c_n: not wanted (LastStep reads seq)
  rnnkit::forward<float>(m.spec, params, args, train ? &a.cache : nullptr);
  rnnkit::last_step_forward(a.last.data(), a.seq.data(), nullptr, rnnkit::SeqLayout{B, T, H, true}, 1);
  rnnkit::linear_forward(a.pred.data(), a.last.data(), params + m.head_w, params + m.head_b, B, H, 1);
}

// Gradient buffers of one batch: the upstream gradients of each activation.
struct Backprop {
  std::vector<float> dpred;     // (B, 1)
  std::vector<float> dlast;     // (B, H)
  std::vector<float> dseq;      // (B, T, H)
};

// grads += dL/dparams, given dL/dpred in bp.dpred; consumes a.cache.
void model_backward(const SineModel& m, const float* params, float* grads, Activations& a, Backprop& bp, Index B) {
  const Index H = kHidden, T = kSteps;
  bp.dlast.resize(std::size_t(B * H));
  bp.dseq.resize(std::size_t(B * T * H));
  rnnkit::linear_backward(bp.dlast.data(), grads + m.head_w, grads + m.head_b, bp.dpred.data(), a.last.data(),
                          params + m.head_w, B, H, 1);
  rnnkit::last_step_backward(bp.dseq.data(), bp.dlast.data(), nullptr, rnnkit::SeqLayout{B, T, H, true}, 1);
  rnnkit::SeqGradArgs<float> g;
  g.grad_out = bp.dseq.data();  // grad_x, grad_h0, grad_c0: not wanted
  rnnkit::backward<float>(m.spec, params, grads, a.cache, g);
}

// Predictions (N) for all of x (N, T, 1), in inference mode (no cache).
std::vector<float> predict(const SineModel& m, const float* params, const float* x, Index n) {
  Activations a;
  model_forward(m, params, x, n, a, false);
  return a.pred;
}

double mse(const std::vector<float>& pred, const std::vector<float>& target) {
  double sum = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) sum += (double(pred[i]) - target[i]) * (double(pred[i]) - target[i]);
  return sum / double(pred.size());
}

// The file rk.save would write for this Sequential: its architecture and PyTorch-named tensors.
void save(const SineModel& m, const float* params, const std::string& path) {
  const std::string H = std::to_string(kHidden);
  const std::string arch =
      "{\"class\": \"Sequential\", \"config\": {\"layers\": ["
      "{\"class\": \"LSTM\", \"config\": {\"input_size\": 1, \"hidden_size\": " + H + ", \"num_layers\": 1, "
      "\"bias\": true, \"batch_first\": true, \"dropout\": 0.0, \"bidirectional\": false, \"dtype\": \"float32\", "
      "\"proj_size\": 0}}, "
      "{\"class\": \"LastStep\", \"config\": {\"batch_first\": true, \"bidirectional\": false}}, "
      "{\"class\": \"Linear\", \"config\": {\"in_features\": " + H + ", \"out_features\": 1, \"bias\": true, "
      "\"dtype\": \"float32\"}}]}}";
  std::vector<rnnkit::TensorRef> tensors;
  for (const rnnkit::ParamInfo& p : m.spec.param_layout()) {
    std::vector<Index> shape = p.cols ? std::vector<Index>{p.rows, p.cols} : std::vector<Index>{p.rows};
    tensors.push_back({"0." + p.name, "F32", shape, params + p.offset});
  }
  tensors.push_back({"2.weight", "F32", {1, kHidden}, params + m.head_w});
  tensors.push_back({"2.bias", "F32", {1}, params + m.head_b});
  rnnkit::save_model(path, arch, tensors);
}

int usage(const std::string& error) {
  if (!error.empty()) std::cerr << "train_sine: " << error << "\n";
  std::cerr << "usage: train_sine [OUT] [--epochs N] [--seed S]   (OUT: train_sine.safetensors)\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "train_sine.safetensors";
  long epochs = 40, seed = 0;
  bool have_out = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return usage("");
    if (arg == "--epochs" || arg == "--seed") {
      char* end = nullptr;
      const long v = i + 1 < argc ? std::strtol(argv[++i], &end, 10) : -1;
      if (!end || *end != '\0' || v < (arg == "--epochs" ? 1 : 0)) return usage(arg + " needs a whole number");
      (arg == "--epochs" ? epochs : seed) = v;
    } else if (arg[0] == '-' || have_out) {
      return usage("unexpected argument " + arg);
    } else {
      out = arg;
      have_out = true;
    }
  }

  try {
    std::mt19937 rng{std::uint32_t(seed)};
    const Windows train = make_windows(kTrain, rng), test = make_windows(kTest, rng);
    const SineModel m;

    // PyTorch's initialisation: U(-1/sqrt(fan), 1/sqrt(fan)), fan = H for the LSTM and the Linear.
    std::vector<float> params(std::size_t(m.size)), grads(params.size());    // (P) each
    std::vector<float> adam_m(params.size()), adam_v(params.size());         // Adam's moments, (P) each
    std::uniform_real_distribution<float> init(-1 / std::sqrt(float(kHidden)), 1 / std::sqrt(float(kHidden)));
    for (float& p : params) p = init(rng);
    rnnkit::AdamOptions adam;
    adam.lr = 5e-3;

    std::vector<Index> order(kTrain);
    std::iota(order.begin(), order.end(), 0);
    std::vector<float> xb(kBatch * kSteps), yb(kBatch);  // (B, T, 1), (B, 1)
    Activations act;
    Backprop bp;
    long step = 0;
    std::printf("LSTM(1, %ld) + LastStep + Linear(%ld, 1): %ld parameters; %ld training and %ld test windows of %ld\n",
                long(kHidden), long(kHidden), long(m.size), long(kTrain), long(kTest), long(kSteps));
    for (long epoch = 1; epoch <= epochs; ++epoch) {
      std::shuffle(order.begin(), order.end(), rng);
      double loss_sum = 0;
      for (Index first = 0; first < kTrain; first += kBatch) {
        const Index B = std::min(kBatch, kTrain - first);
        for (Index b = 0; b < B; ++b) {
          const Index i = order[std::size_t(first + b)];
          std::copy_n(train.x.begin() + i * kSteps, kSteps, xb.begin() + b * kSteps);
          yb[std::size_t(b)] = train.y[std::size_t(i)];
        }
        model_forward(m, params.data(), xb.data(), B, act, true);
        bp.dpred.resize(std::size_t(B));
        loss_sum += rnnkit::mse_loss(bp.dpred.data(), act.pred.data(), yb.data(), B) * double(B);
        std::fill(grads.begin(), grads.end(), 0.0f);  // backward accumulates
        model_backward(m, params.data(), grads.data(), act, bp, B);
        rnnkit::clip_grad_norm(grads.data(), m.size, 1.0);
        rnnkit::adam_step(params.data(), grads.data(), adam_m.data(), adam_v.data(), m.size, adam, ++step);
      }
      if (epoch == 1 || epoch % 10 == 0 || epoch == epochs)
        std::printf("epoch %3ld/%ld: train mse %.6f\n", epoch, epochs, loss_sum / double(kTrain));
    }

    // Test: the model against predicting the window's last value again.
    std::vector<float> last(kTest);
    for (Index i = 0; i < kTest; ++i) last[std::size_t(i)] = test.x[std::size_t(i * kSteps + kSteps - 1)];
    std::printf("final test mse: %.6g\n", mse(predict(m, params.data(), test.x.data(), kTest), test.y));
    std::printf("baseline (last value) mse: %.6g\n", mse(last, test.y));

    save(m, params.data(), out);

    // The saved file must give what this program computes: check one fixed window both ways.
    std::vector<float> window(kSteps);  // (1, T, 1)
    for (Index t = 0; t < kSteps; ++t) window[std::size_t(t)] = float(std::sin(2 * kPi * double(t) / 25));
    const float here = predict(m, params.data(), window.data(), 1)[0];
    const float reloaded = rnnkit::Model::load(out).predict(window, 1, kSteps)[0];
    std::printf("check window sin(2*pi*t/25), t = 0..%ld: prediction %.9g (reloaded file: %.9g), true next value %.9g\n",
                long(kSteps - 1), double(here), double(reloaded), std::sin(2 * kPi * double(kSteps) / 25));
    std::printf("saved: %s\n", out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "train_sine: " << e.what() << "\n";
  }
  return 1;
}
