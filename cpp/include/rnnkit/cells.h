#pragma once
// Every cell type, once. A new cell is its header (its declaration, and its
// step forward beside its step backward) and a line in with_cell; the driver,
// the streaming step, the parameter layout, the model file and the Python
// layers all go through here.

#include <stdexcept>
#include <string>

#include "gru.h"
#include "lstm.h"
#include "rnn.h"
#include "spec.h"

namespace rnnkit {

/// f(Cell{}) for the cell type that runs spec s; returns what f returns.
template <class F>
decltype(auto) with_cell(const StackSpec& s, F&& f) {
  switch (s.cell) {
    case CellType::RNN_TANH:
    case CellType::RNN_RELU: return f(RnnCell{});
    case CellType::LSTM: return s.peepholes ? f(PeepholeLstmCell{}) : f(LstmCell{});
    case CellType::GRU: return f(GruCell{});
  }
  throw std::invalid_argument("unknown cell type " + std::to_string(int(s.cell)));
}

/// The cell type of a mode name ("RNN_TANH", "RNN_RELU", "LSTM", "GRU"), and back.
CellType cell_type(const std::string& mode);
const char* mode_name(CellType cell);

}  // namespace rnnkit
