// The recurrent driver instantiated for the RnnCell, float and double.
// One translation unit per cell, so they build in parallel.

#include "rnnkit/rnn.h"
#include "rnnkit/stack.h"

namespace rnnkit {

RNNKIT_STACK_FOR_CELL(, RnnCell)

}  // namespace rnnkit
