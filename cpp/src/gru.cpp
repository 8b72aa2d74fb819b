// The recurrent driver instantiated for the GruCell, float and double.
// One translation unit per cell, so they build in parallel.

#include "rnnkit/gru.h"
#include "rnnkit/stack.h"

namespace rnnkit {

#define RNNKIT_INSTANTIATE(S)                                                                              \
  template void stack_forward<GruCell, S>(const StackSpec&, const S*, const SeqArgs<S>&, StackCache<S>*); \
  template void stack_backward<GruCell, S>(const StackSpec&, const S*, S*, StackCache<S>&, const SeqGradArgs<S>&);
RNNKIT_INSTANTIATE(float)
RNNKIT_INSTANTIATE(double)

}  // namespace rnnkit
