// The recurrent driver instantiated for the GruCell, float and double.
// One translation unit per cell, so they build in parallel.

#include "rnnkit/gru.h"
#include "rnnkit/stack.h"

namespace rnnkit {

RNNKIT_STACK_FOR_CELL(, GruCell)

}  // namespace rnnkit
