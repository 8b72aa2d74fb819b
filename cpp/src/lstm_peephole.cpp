// The recurrent driver instantiated for the PeepholeLstmCell (LSTM with peepholes), float and double.
// One translation unit per cell, so they build in parallel.

#include "rnnkit/lstm.h"
#include "rnnkit/stack.h"

namespace rnnkit {

RNNKIT_STACK_FOR_CELL(, PeepholeLstmCell)

}  // namespace rnnkit
