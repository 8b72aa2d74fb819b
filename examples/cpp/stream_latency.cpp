// Per-step latency of the streaming runtime: one Stream::step() at a time, as an
// embedded system calls it when a new reading arrives, timed with steady_clock.
//
//   stream_latency MODEL [--steps N] [--warmup W] [--batch B]     a model file from rk.save
//   stream_latency --lstm H [--input I] [--steps N] ...           a random 1-layer LSTM(I, H) built in memory
//   stream_latency --gru H  [--input I] [--steps N] ...           the same with a GRU (also: --lstm H --gru)
//
// Defaults: 10000 steps after 1000 warm-up steps, batch 1, input 1. Inputs are
// random floats in [-1, 1), or random token ids for a model that starts with an
// Embedding, generated before the timed loop. The random models have PyTorch's
// initialisation, U(-1/sqrt(H), 1/sqrt(H)), and no head: the output is h_t.
//
// Prints, among others, three lines a script can parse:
//   per-step latency: median 412 ns, p99 590 ns over 10000 steps (batch 1)
//   steps in blocks of 100: median 390 ns per step
//   throughput: 2380952 steps/s
// Each per-step timing includes one steady_clock::now() call (the "clock
// overhead" line gives its cost); the block figure times 100 steps between two
// clock reads (the median over blocks of their mean), as a benchmark loop
// would. Exit status 1 for an unusable model, 2 for a usage error.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <rnnkit/model.h>
#include <rnnkit/spec.h>
#include <rnnkit/weights.h>

namespace {

using rnnkit::Index;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model_path;      // empty: a random model
  rnnkit::CellType cell = rnnkit::CellType::LSTM;
  Index hidden = 0, input = 1;
  Index steps = 10000, warmup = 1000, batch = 1;
  std::string precision = "float32";  // of the random model's weight matrices: float32, int8 or bf16
};

// A random 1-layer LSTM or GRU alone, as the file rk.save(rk.LSTM(I, H, batch_first=True)) would hold,
// or rk.save(rk.quantize(...)) with `precision` int8 or bf16 (rnnkit/quant.h's scheme).
rnnkit::Model random_model(rnnkit::CellType cell, Index input, Index hidden, const std::string& precision,
                           std::mt19937& rng) {
  const rnnkit::Precision prec = rnnkit::precision_from_name(precision);
  rnnkit::StackSpec spec;
  spec.cell = cell;
  spec.input_size = input;
  spec.hidden_size = hidden;
  spec.validate();
  const bool lstm = cell == rnnkit::CellType::LSTM;
  const std::string arch = std::string("{\"class\": \"") + (lstm ? "LSTM" : "GRU") +
                           "\", \"config\": {\"input_size\": " + std::to_string(input) +
                           ", \"hidden_size\": " + std::to_string(hidden) +
                           ", \"num_layers\": 1, \"bias\": true, \"batch_first\": true, \"dropout\": 0.0, "
                           "\"bidirectional\": false, \"dtype\": \"float32\", \"precision\": \"" +
                           rnnkit::precision_name(prec) + "\", " +
                           (lstm ? "\"proj_size\": 0" : "\"reset_after\": true") + "}}";

  std::vector<float> params(std::size_t(spec.num_params()));  // flat, in param_layout() order
  const float k = 1.0f / std::sqrt(float(hidden));
  std::uniform_real_distribution<float> uniform(-k, k);
  for (float& p : params) p = uniform(rng);
  std::vector<rnnkit::TensorRef> tensors;
  // a reduced-precision matrix's values and (int8) row scales, kept until the model has copied them
  std::vector<std::vector<std::int8_t>> q;
  std::vector<std::vector<float>> scales;
  std::vector<std::vector<rnnkit::Bf16>> b;
  const auto matrices = rnnkit::lowp_matrices(spec);
  q.reserve(matrices.size()), scales.reserve(matrices.size()), b.reserve(matrices.size());
  for (const rnnkit::ParamInfo& p : spec.param_layout()) {
    std::vector<Index> shape = p.cols ? std::vector<Index>{p.rows, p.cols} : std::vector<Index>{p.rows};
    const bool matrix = std::any_of(matrices.begin(), matrices.end(), [&](const auto& m) { return m.name == p.name; });
    const float* w = params.data() + p.offset;
    if (!matrix || prec == rnnkit::Precision::Float) {
      tensors.push_back({p.name, "F32", shape, w});
    } else if (prec == rnnkit::Precision::Int8) {
      q.emplace_back(std::size_t(p.size())), scales.emplace_back(std::size_t(p.rows));
      rnnkit::quantize_int8(w, p.rows, p.cols, q.back().data(), scales.back().data());
      tensors.push_back({p.name, "I8", shape, q.back().data()});
      tensors.push_back({p.name + "_scale", "F32", {p.rows}, scales.back().data()});
    } else {
      b.emplace_back(std::size_t(p.size()));
      for (Index i = 0; i < p.size(); ++i) b.back()[std::size_t(i)] = rnnkit::to_bf16(w[i]);
      tensors.push_back({p.name, "BF16", shape, b.back().data()});
    }
  }
  return rnnkit::Model::from_tensors(arch, tensors, "random model");  // copies the tensors
}

double percentile(const std::vector<double>& sorted, double q) {
  const std::size_t i = std::size_t(std::ceil(q * double(sorted.size()))) - 1;
  return sorted[std::min(i, sorted.size() - 1)];
}

bool parse_count(const char* s, Index min, Index& out) {
  char* end = nullptr;
  const long long v = std::strtoll(s, &end, 10);
  if (end == s || *end != '\0' || v < min) return false;
  out = Index(v);
  return true;
}

int usage(const std::string& error) {
  if (!error.empty()) std::cerr << "stream_latency: " << error << "\n";
  std::cerr << "usage: stream_latency MODEL [--steps N] [--warmup W] [--batch B]\n"
               "       stream_latency --lstm H | --gru H [--input I] [--precision float32|int8|bf16] [--steps N]\n"
               "                      [--warmup W] [--batch B]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    auto count = [&](Index min, Index& out) {
      if (!has_value || !parse_count(argv[++i], min, out))
        throw std::invalid_argument(arg + " needs a whole number >= " + std::to_string(min));
    };
    try {
      if (arg == "-h" || arg == "--help") return usage("");
      if (arg == "--steps") count(1, o.steps);
      else if (arg == "--warmup") count(0, o.warmup);
      else if (arg == "--batch") count(1, o.batch);
      else if (arg == "--input") count(1, o.input);
      else if (arg == "--precision" && has_value) o.precision = argv[++i];
      else if (arg == "--lstm") count(1, o.hidden);
      else if (arg == "--gru") {
        o.cell = rnnkit::CellType::GRU;
        if (has_value && argv[i + 1][0] != '-') count(1, o.hidden);  // "--gru H", or the flag "--lstm H --gru"
      } else if (arg[0] == '-' || !o.model_path.empty()) return usage("unexpected argument " + arg);
      else o.model_path = arg;
    } catch (const std::invalid_argument& e) {
      return usage(e.what());
    }
  }
  if (o.model_path.empty() == (o.hidden == 0)) return usage("give either a MODEL file or --lstm H / --gru H");

  try {
    std::mt19937 rng(0);
    const rnnkit::Model model =
        o.model_path.empty() ? random_model(o.cell, o.input, o.hidden, o.precision, rng)
                             : rnnkit::Model::load(o.model_path);
    rnnkit::Stream stream = model.stream(o.batch);  // preallocates; step() allocates nothing
    std::printf("model: %s", model.summary().c_str());
    std::printf("%ld parameters, input %ld%s, output %ld per step\n", long(model.num_parameters()),
                long(model.input_size()), model.takes_ids() ? " (token ids)" : "", long(model.output_size()));

    // Every step's input, made before timing: (warmup + steps, batch, input) floats, or (.., batch) ids.
    const Index total = o.warmup + o.steps, B = o.batch, I = model.input_size();
    std::vector<float> x;
    std::vector<std::int64_t> ids;
    if (model.takes_ids()) {
      std::uniform_int_distribution<std::int64_t> id(0, model.vocab_size() - 1);
      ids.resize(std::size_t(total * B));
      for (auto& v : ids) v = id(rng);
    } else {
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      x.resize(std::size_t(total * B * I));
      for (auto& v : x) v = uniform(rng);
    }
    std::vector<float> y(std::size_t(B * model.output_size()));  // (batch, output)
    auto step = [&](Index t) {
      if (model.takes_ids()) stream.step(ids.data() + t * B, y.data());
      else stream.step(x.data() + t * B * I, y.data());
    };

    for (Index t = 0; t < o.warmup; ++t) step(t);
    std::vector<double> ns(std::size_t(o.steps));
    double checksum = 0;  // reads every output, so the steps' results are used
    const auto start = Clock::now();
    for (Index t = 0; t < o.steps; ++t) {
      const auto t0 = Clock::now();
      step(o.warmup + t);
      const auto t1 = Clock::now();
      ns[std::size_t(t)] = double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
      checksum += y[0];
    }
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();

    constexpr Index kBlock = 100;  // steps per block: a clock read every 100 steps
    std::vector<double> block(std::size_t(std::max<Index>(1, o.steps / kBlock)));
    for (double& b : block) {
      const auto t0 = Clock::now();
      for (Index t = 0; t < kBlock; ++t) step(o.warmup + t % o.steps);
      const auto t1 = Clock::now();
      b = double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()) / double(kBlock);
      checksum += y[0];
    }
    std::sort(block.begin(), block.end());

    std::vector<double> clock(std::size_t(std::min<Index>(o.steps, 10000)));  // an empty timed region
    for (double& c : clock) {
      const auto t0 = Clock::now();
      const auto t1 = Clock::now();
      c = double(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
    std::sort(ns.begin(), ns.end());
    std::sort(clock.begin(), clock.end());

    std::printf("per-step latency: median %.0f ns, p99 %.0f ns over %ld steps (batch %ld)\n", percentile(ns, 0.5),
                percentile(ns, 0.99), long(o.steps), long(B));
    std::printf("steps in blocks of %ld: median %.0f ns per step\n", long(kBlock), percentile(block, 0.5));
    std::printf("min %.0f ns, max %.0f ns; clock overhead: median %.0f ns (included above); output checksum %g\n",
                ns.front(), ns.back(), percentile(clock, 0.5), checksum);
    std::printf("throughput: %.0f steps/s\n", double(o.steps) / wall);
    return 0;
  } catch (const rnnkit::ModelFileError& e) {
    std::cerr << "stream_latency: cannot use the model: " << e.what() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "stream_latency: " << e.what() << "\n";
  }
  return 1;
}
