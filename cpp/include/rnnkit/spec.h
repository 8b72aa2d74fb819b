#pragma once
// What a recurrent stack is: cell type, sizes and options, and where each
// parameter lives in the stack's one flat parameter buffer.
//
// The buffer holds, for layer l = 0..L-1 and direction d = 0..D-1, in this
// order (PyTorch's `_flat_weights` order and names, so a state_dict copies in):
//   weight_ih_l{l}{sfx}        (G·H, I_l)     I_0 = input_size, I_l = D·P for l > 0
//   weight_hh_l{l}{sfx}        (G·H, P)
//   bias_ih_l{l}{sfx}          (G·H)          only with bias
//   bias_hh_l{l}{sfx}          (G·H)          only with bias
//   weight_hr_l{l}{sfx}        (P, H)         only with proj_size > 0 (LSTM)
//   weight_peephole_l{l}{sfx}  (3, H)         only with peepholes (LSTM; rows p_i, p_f, p_o)
// with G the cell's gate blocks (CellDecl::gates: RNN 1, LSTM 4, GRU 3), P =
// proj_size or H, and sfx "" or "_reverse". Every matrix is row-major.

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.h"
#include "decl.h"

namespace rnnkit {

enum class CellType { RNN_TANH, RNN_RELU, LSTM, GRU };

/// Offsets (in elements) of one layer-direction's parameters in the flat buffer; -1 if absent.
struct DirParams {
  Index w_ih = -1, w_hh = -1, b_ih = -1, b_hh = -1, w_hr = -1, peep = -1;
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
  bool peepholes = false;   // LSTM only

  /// The declaration of the cell this spec runs (cells.h).
  CellDecl decl() const;
  Index gates() const { return decl().gates; }
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
    if (peepholes && cell != CellType::LSTM) fail("peepholes are only supported by LSTM");
    if (proj_size >= hidden_size && proj_size > 0)
      fail("proj_size must be smaller than hidden_size (" + std::to_string(hidden_size) + "), got " +
           std::to_string(proj_size));
  }

  /// Elements of one layer-direction's parameters in layer l (every layer past the first has the same).
  Index dir_size(Index l) const {
    const CellDecl d = decl();
    const Index GH = d.gates * hidden_size, P = out_size(), H = hidden_size;
    return GH * (layer_input_size(l) + P) + (bias ? 2 * GH : 0) + (proj_size > 0 ? P * H : 0) + d.peepholes * H;
  }

  DirParams dir_params(Index layer, Index dir) const {
    if (layer < 0 || layer >= num_layers || dir < 0 || dir >= directions())
      throw std::out_of_range("layer/direction out of range");
    const CellDecl d = decl();
    const Index GH = d.gates * hidden_size, P = out_size(), H = hidden_size;
    Index off = directions() * dir_size(0) * (layer > 0) +
                directions() * dir_size(1) * std::max<Index>(0, layer - 1) + dir * dir_size(layer);
    DirParams p;
    const auto take = [&](Index n) { return (off += n) - n; };
    p.input_size = layer_input_size(layer);
    p.w_ih = take(GH * p.input_size);
    p.w_hh = take(GH * P);
    if (bias) p.b_ih = take(GH), p.b_hh = take(GH);
    if (proj_size > 0) p.w_hr = take(P * H);
    if (d.peepholes) p.peep = take(d.peepholes * H);
    return p;
  }

  /// How many tensors param_layout() lists, without listing them: a model file's
  /// architecture is checked against the tensors it holds before anything is allocated.
  Index num_tensors() const {
    return num_layers * directions() * (2 + (bias ? 2 : 0) + (proj_size > 0) + (decl().peepholes > 0));
  }

  /// param_layout()'s names and shapes with every offset 0: no product of two sizes is
  /// formed, so it holds for sizes whose buffer would not fit in an Index (a model file's
  /// claims, checked against the tensors it holds before param_layout() is asked for).
  std::vector<ParamInfo> param_shapes() const {
    std::vector<ParamInfo> out;
    const CellDecl d = decl();
    const Index GH = d.gates * hidden_size, P = out_size();
    for (Index l = 0; l < num_layers; ++l) {
      for (Index dir = 0; dir < directions(); ++dir) {
        const std::string sfx = "_l" + std::to_string(l) + (dir ? "_reverse" : "");
        out.push_back({"weight_ih" + sfx, 0, GH, layer_input_size(l)});
        out.push_back({"weight_hh" + sfx, 0, GH, P});
        if (bias) {
          out.push_back({"bias_ih" + sfx, 0, GH, 0});
          out.push_back({"bias_hh" + sfx, 0, GH, 0});
        }
        if (proj_size > 0) out.push_back({"weight_hr" + sfx, 0, P, hidden_size});
        if (d.peepholes) out.push_back({"weight_peephole" + sfx, 0, d.peepholes, hidden_size});
      }
    }
    return out;
  }

  /// Every parameter tensor, in buffer order, with PyTorch's name: back to back, in
  /// param_shapes()' order, as dir_params() places them.
  std::vector<ParamInfo> param_layout() const {
    std::vector<ParamInfo> out = param_shapes();
    Index offset = 0;
    for (ParamInfo& p : out) {
      p.offset = offset;
      offset += p.size();
    }
    return out;
  }

  Index num_params() const { return directions() * (dir_size(0) + (num_layers - 1) * dir_size(1)); }
};

}  // namespace rnnkit
