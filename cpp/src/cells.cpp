// The cell types' declarations, for code that does not compile the cells
// (StackSpec's parameter layout), and their mode names.

#include "rnnkit/cells.h"

namespace rnnkit {

CellDecl StackSpec::decl() const {
  return with_cell(*this, [&](auto cell) { return decltype(cell)::decl(*this); });
}

namespace {
constexpr struct {
  CellType cell;
  const char* mode;
} kModes[] = {{CellType::RNN_TANH, "RNN_TANH"}, {CellType::RNN_RELU, "RNN_RELU"}, {CellType::LSTM, "LSTM"},
              {CellType::GRU, "GRU"}};
}  // namespace

CellType cell_type(const std::string& mode) {
  std::string known;
  for (const auto& m : kModes) {
    if (mode == m.mode) return m.cell;
    known += std::string(known.empty() ? "" : ", ") + "'" + m.mode + "'";
  }
  throw std::invalid_argument("mode must be one of " + known + ", got '" + mode + "'");
}

const char* mode_name(CellType cell) {
  for (const auto& m : kModes)
    if (m.cell == cell) return m.mode;
  return "?";
}

}  // namespace rnnkit
