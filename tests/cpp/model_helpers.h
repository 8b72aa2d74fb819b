#pragma once
// Random models for the runtime's tests: an architecture JSON as rk.save writes
// it and random tensors with the names and shapes it needs.

#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "rnnkit/model.h"
#include "rnnkit/spec.h"
#include "rnnkit/weights.h"

namespace testing {

using rnnkit::Index;

struct LayerDesc {
  std::string cls, config;  // config: the JSON object's inside
  std::vector<std::pair<std::string, std::vector<Index>>> params;
};

// `layer` with its weight matrices stored in `precision` ("int8" or "bf16", rnnkit/quant.h):
// random_model then writes them as I8 with their row scales, or as BF16.
inline LayerDesc quantized(LayerDesc layer, const std::string& precision) {
  layer.config += ", \"precision\": \"" + precision + "\"";
  return layer;
}

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
  std::vector<std::string> dtypes;                // "F32", or a quantized layer's "I8" / "BF16"
  std::vector<std::vector<unsigned char>> stored;  // the I8 / BF16 tensors' bytes

  std::vector<rnnkit::TensorRef> refs() const {
    std::vector<rnnkit::TensorRef> out;
    for (size_t i = 0; i < names.size(); ++i)
      out.push_back({names[i], dtypes[i], shapes[i],
                     dtypes[i] == "F32" ? static_cast<const void*>(data[i].data()) : stored[i].data()});
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
    const std::string& cfg = layers[i].config;
    const std::string precision = cfg.find("\"precision\": \"int8\"") != std::string::npos   ? "int8"
                                  : cfg.find("\"precision\": \"bf16\"") != std::string::npos ? "bf16"
                                                                                             : "float32";
    for (const auto& [name, shape] : layers[i].params) {
      Index n = 1;
      for (Index d : shape) n *= d;
      std::vector<float> v(static_cast<size_t>(n));
      for (auto& x : v) x = u(rng);
      const bool matrix = shape.size() == 2 && name.rfind("weight_peephole", 0) != 0 &&
                          (name.rfind("weight", 0) == 0);  // weight_ih / _hh / _hr, a Linear's weight
      const std::string dtype = matrix && precision == "int8" ? "I8" : matrix && precision == "bf16" ? "BF16" : "F32";
      std::vector<unsigned char> bytes;
      std::vector<float> scale;
      if (dtype == "I8") {
        scale.resize(static_cast<size_t>(shape[0]));
        bytes.resize(static_cast<size_t>(n));
        rnnkit::quantize_int8(v.data(), shape[0], shape[1], reinterpret_cast<std::int8_t*>(bytes.data()),
                              scale.data());
      } else if (dtype == "BF16") {
        bytes.resize(static_cast<size_t>(2 * n));
        for (Index k = 0; k < n; ++k) {
          const rnnkit::Bf16 h = rnnkit::to_bf16(v[static_cast<size_t>(k)]);
          std::memcpy(bytes.data() + 2 * k, &h.bits, 2);
        }
      }
      m.names.push_back(std::to_string(i) + "." + name);
      m.shapes.push_back(shape);
      m.dtypes.push_back(dtype);
      m.data.push_back(std::move(v));
      m.stored.push_back(std::move(bytes));
      if (dtype == "I8") {  // its row scales, a tensor of their own
        m.names.push_back(std::to_string(i) + "." + name + "_scale");
        m.shapes.push_back({shape[0]});
        m.dtypes.push_back("F32");
        m.data.push_back(std::move(scale));
        m.stored.emplace_back();
      }
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
