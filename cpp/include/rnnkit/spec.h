#pragma once
// What a recurrent stack is: cell type, sizes and options, and where each
// parameter lives in the stack's one flat parameter buffer.
//
// The buffer holds, for layer l = 0..L-1 and direction d = 0..D-1, in this
// order (PyTorch's `_flat_weights` order and names, so a state_dict copies in):
//   weight_ih_l{l}{sfx}  (G·H, I_l)     I_0 = input_size, I_l = D·P for l > 0
//   weight_hh_l{l}{sfx}  (G·H, P)
//   bias_ih_l{l}{sfx}    (G·H)          only with bias
//   bias_hh_l{l}{sfx}    (G·H)          only with bias
//   weight_hr_l{l}{sfx}  (P, H)         only with proj_size > 0 (LSTM)
// with G the gates per unit (RNN 1, LSTM 4, GRU 3), P = proj_size or H, and
// sfx "" or "_reverse". Every matrix is row-major.

#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"

namespace rnnkit {

enum class CellType { RNN_TANH, RNN_RELU, LSTM, GRU };

/// Offsets (in elements) of one layer-direction's parameters in the flat buffer; -1 if absent.
struct DirParams {
  Index w_ih = -1, w_hh = -1, b_ih = -1, b_hh = -1, w_hr = -1;
  Index input_size = 0;
};

/// One named parameter tensor in the flat buffer.
struct ParamInfo {
  std::string name;
  Index offset, rows, cols;  // cols == 0: a vector of `rows` elements
  Index size() const { return cols ? rows * cols : rows; }
};

struct StackSpec {
  CellType cell = CellType::LSTM;
  Index input_size = 0;
  Index hidden_size = 0;
  Index num_layers = 1;
  bool bias = true;
  bool bidirectional = false;
  Index proj_size = 0;      // LSTM only
  bool reset_after = true;  // GRU only
  bool peepholes = false;  // LSTM only

  Index gates() const {
    switch (cell) {
      case CellType::LSTM: return 4;
      case CellType::GRU: return 3;
      default: return 1;
    }
  }
  Index directions() const { return bidirectional ? 2 : 1; }
  Index out_size() const { return proj_size > 0 ? proj_size : hidden_size; }  // P
  Index layer_input_size(Index l) const { return l == 0 ? input_size : directions() * out_size(); }

  void validate() const {
    auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
    if (input_size < 1) fail("input_size must be >= 1, got " + std::to_string(input_size));
    if (hidden_size < 1) fail("hidden_size must be >= 1, got " + std::to_string(hidden_size));
    if (num_layers < 1) fail("num_layers must be >= 1, got " + std::to_string(num_layers));
    if (proj_size < 0) fail("proj_size must be >= 0, got " + std::to_string(proj_size));
    if (proj_size > 0 && cell != CellType::LSTM) fail("proj_size is only supported by LSTM");
    if (proj_size >= hidden_size && proj_size > 0)
      fail("proj_size must be smaller than hidden_size (" + std::to_string(hidden_size) + "), got " +
           std::to_string(proj_size));
  }

  DirParams dir_params(Index layer, Index dir) const {
    Index off = 0;
    DirParams p;
    for (Index l = 0; l < num_layers; ++l) {
      for (Index d = 0; d < directions(); ++d) {
        const Index GH = gates() * hidden_size, I = layer_input_size(l), P = out_size();
        const bool here = (l == layer && d == dir);
        if (here) p.input_size = I;
        if (here) p.w_ih = off;
        off += GH * I;
        if (here) p.w_hh = off;
        off += GH * P;
        if (bias) {
          if (here) p.b_ih = off;
          off += GH;
          if (here) p.b_hh = off;
          off += GH;
        }
        if (proj_size > 0) {
          if (here) p.w_hr = off;
          off += P * hidden_size;
        }
        if (here) return p;
      }
    }
    throw std::out_of_range("layer/direction out of range");
  }

  /// Every parameter tensor, in buffer order, with PyTorch's name.
  std::vector<ParamInfo> param_layout() const {
    std::vector<ParamInfo> out;
    const Index GH = gates() * hidden_size, P = out_size();
    for (Index l = 0; l < num_layers; ++l) {
      for (Index d = 0; d < directions(); ++d) {
        const DirParams p = dir_params(l, d);
        const std::string sfx = "_l" + std::to_string(l) + (d ? "_reverse" : "");
        out.push_back({"weight_ih" + sfx, p.w_ih, GH, p.input_size});
        out.push_back({"weight_hh" + sfx, p.w_hh, GH, P});
        if (bias) {
          out.push_back({"bias_ih" + sfx, p.b_ih, GH, 0});
          out.push_back({"bias_hh" + sfx, p.b_hh, GH, 0});
        }
        if (proj_size > 0) out.push_back({"weight_hr" + sfx, p.w_hr, P, hidden_size});
      }
    }
    return out;
  }

  Index num_params() const {
    const auto layout = param_layout();
    return layout.back().offset + layout.back().size();
  }
};

}  // namespace rnnkit
