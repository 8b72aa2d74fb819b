#pragma once
// Random models for the runtime's tests: an architecture JSON as rk.save writes
// it and random tensors with the names and shapes it needs.

#include <exception>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "rnnkit/model.h"
#include "rnnkit/spec.h"

namespace testing {

using rnnkit::Index;

struct LayerDesc {
  std::string cls, config;  // config: the JSON object's inside
  std::vector<std::pair<std::string, std::vector<Index>>> params;
};

inline std::string b(bool v) { return v ? "true" : "false"; }

inline LayerDesc recurrent(const rnnkit::StackSpec& s) {
  using rnnkit::CellType;
  const std::string cls = s.cell == CellType::LSTM ? "LSTM" : s.cell == CellType::GRU ? "GRU" : "RNN";
  std::string cfg = "\"input_size\": " + std::to_string(s.input_size) + ", \"hidden_size\": " +
                    std::to_string(s.hidden_size) + ", \"num_layers\": " + std::to_string(s.num_layers) +
                    ", \"bias\": " + b(s.bias) + ", \"batch_first\": true, \"dropout\": 0.0, \"bidirectional\": " +
                    b(s.bidirectional) + ", \"dtype\": \"float32\"";
  if (cls == "LSTM") cfg += ", \"proj_size\": " + std::to_string(s.proj_size) + ", \"peepholes\": " + b(s.peepholes);
  if (cls == "GRU") cfg += ", \"reset_after\": " + b(s.reset_after);
  if (cls == "RNN") cfg += std::string(", \"nonlinearity\": ") + (s.cell == CellType::RNN_RELU ? "\"relu\"" : "\"tanh\"");
  LayerDesc d{cls, cfg, {}};
  for (const auto& p : s.param_layout())
    d.params.push_back({p.name, p.cols ? std::vector<Index>{p.rows, p.cols} : std::vector<Index>{p.rows}});
  return d;
}

inline LayerDesc linear(Index in, Index out) {
  return {"Linear",
          "\"in_features\": " + std::to_string(in) + ", \"out_features\": " + std::to_string(out) +
              ", \"bias\": true, \"dtype\": \"float32\"",
          {{"weight", {out, in}}, {"bias", {out}}}};
}

inline LayerDesc embedding(Index num, Index dim) {
  return {"Embedding",
          "\"num_embeddings\": " + std::to_string(num) + ", \"embedding_dim\": " + std::to_string(dim) +
              ", \"padding_idx\": null, \"dtype\": \"float32\"",
          {{"weight", {num, dim}}}};
}

inline LayerDesc pool(const std::string& cls, bool bidirectional = false) {
  return {cls, "\"batch_first\": true, \"bidirectional\": " + b(bidirectional), {}};
}

struct RandomModel {
  std::string architecture;
  std::vector<std::string> names;
  std::vector<std::vector<Index>> shapes;
  std::vector<std::vector<float>> data;

  std::vector<rnnkit::TensorRef> refs() const {
    std::vector<rnnkit::TensorRef> out;
    for (size_t i = 0; i < names.size(); ++i) out.push_back({names[i], "F32", shapes[i], data[i].data()});
    return out;
  }
  rnnkit::Model model() const { return rnnkit::Model::from_tensors(architecture, refs()); }
};

inline RandomModel random_model(const std::vector<LayerDesc>& layers, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  RandomModel m;
  m.architecture = "{\"class\": \"Sequential\", \"config\": {\"layers\": [";
  for (size_t i = 0; i < layers.size(); ++i) {
    m.architecture += (i ? ", " : "") + std::string("{\"class\": \"") + layers[i].cls + "\", \"config\": {" +
                      layers[i].config + "}}";
    for (const auto& [name, shape] : layers[i].params) {
      Index n = 1;
      for (Index d : shape) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& x : v) x = u(rng);
      m.names.push_back(std::to_string(i) + "." + name);
      m.shapes.push_back(shape);
      m.data.push_back(std::move(v));
    }
  }
  m.architecture += "]}}";
  return m;
}

inline rnnkit::StackSpec spec(rnnkit::CellType cell, Index in, Index hidden, Index layers = 1) {
  rnnkit::StackSpec s;
  s.cell = cell;
  s.input_size = in;
  s.hidden_size = hidden;
  s.num_layers = layers;
  return s;
}

// The message of the ModelFileError f() throws ("OTHER EXCEPTION: ..." for another
// exception, "NO EXCEPTION" for none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const rnnkit::ModelFileError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("OTHER EXCEPTION: ") + e.what();
  }
  return "NO EXCEPTION";
}

// A file's bytes, and bytes written as a file.
inline std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

}  // namespace testing
