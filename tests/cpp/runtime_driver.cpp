// The C++ side of tests/test_runtime.py: run a saved model the way an embedded
// program does, with no Python, and write what it computed.
//
//   runtime_driver MODEL INPUT OUTPUT
//
// INPUT is a safetensors file with x (batch, steps, features) float32, or token
// ids (batch, steps) int64, and optionally lengths (batch) int64. OUTPUT gets
//   predict  Model::predict on x (with lengths if given)
//   stream   (batch, steps, out): Stream::step's output at every step, when the model streams
// Exit status 0, or 1 with the error on stderr.

#include <cstdio>
#include <cstring>
#include <exception>

#include "rnnkit/model.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL INPUT OUTPUT\n", argv[0]);
    return 2;
  }
  try {
    using rnnkit::Index;
    const rnnkit::Model model = rnnkit::Model::load(argv[1]);
    const rnnkit::TensorFile in = rnnkit::TensorFile::read(argv[2]);
    const auto& xt = in.tensors().at("x");
    const Index B = xt.shape.at(0), T = xt.shape.at(1), I = model.input_size(), O = model.output_size();
    std::vector<float> x;
    std::vector<std::int64_t> ids, lengths;
    if (model.takes_ids()) {
      ids.resize(size_t(B * T));
      std::memcpy(ids.data(), in.bytes(xt), ids.size() * 8);
    } else {
      x.resize(size_t(B * T * I));
      in.copy_to("x", x.data());
    }
    if (in.tensors().count("lengths")) {
      lengths.resize(size_t(B));
      std::memcpy(lengths.data(), in.bytes(in.tensors().at("lengths")), lengths.size() * 8);
    }
    const std::int64_t* len = lengths.empty() ? nullptr : lengths.data();

    std::vector<float> y(size_t((model.per_step() ? B * T : B) * O));
    if (model.takes_ids()) model.predict(ids.data(), B, T, y.data(), len);
    else model.predict(x.data(), B, T, y.data(), len);
    std::vector<rnnkit::TensorRef> out{{"predict", "F32", model.per_step() ? std::vector<Index>{B, T, O}
                                                                           : std::vector<Index>{B, O}, y.data()}};

    std::vector<float> ys;
    if (model.can_stream()) {
      ys.resize(size_t(B * T * O));
      rnnkit::Stream s = model.stream(B);
      std::vector<float> x_t(size_t(B * I)), y_t(size_t(B * O));
      std::vector<std::int64_t> ids_t(static_cast<size_t>(B));
      for (Index t = 0; t < T; ++t) {
        for (Index b = 0; b < B; ++b) {
          if (model.takes_ids()) ids_t[b] = ids[b * T + t];
          else std::memcpy(x_t.data() + b * I, x.data() + (b * T + t) * I, I * sizeof(float));
        }
        if (model.takes_ids()) s.step(ids_t.data(), y_t.data());
        else s.step(x_t.data(), y_t.data());
        for (Index b = 0; b < B; ++b) std::memcpy(ys.data() + (b * T + t) * O, y_t.data() + b * O, O * sizeof(float));
      }
      out.push_back({"stream", "F32", {B, T, O}, ys.data()});
    }
    rnnkit::write_safetensors(argv[3], out, {});
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
