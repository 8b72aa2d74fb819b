// rnnkit::forward / rnnkit::backward: the cell spec.cell names (cells.h). The
// cells' drivers are compiled one translation unit each (rnn.cpp, lstm.cpp,
// lstm_peephole.cpp, gru.cpp), so they build in parallel.

#include "rnnkit/stack.h"

#include "rnnkit/cells.h"

namespace rnnkit {

RNNKIT_STACK_FOR_CELL(extern, RnnCell)
RNNKIT_STACK_FOR_CELL(extern, LstmCell)
RNNKIT_STACK_FOR_CELL(extern, PeepholeLstmCell)
RNNKIT_STACK_FOR_CELL(extern, GruCell)

template <class S>
void forward(const StackSpec& s, const S* params, const SeqArgs<S>& a, StackCache<S>* cache) {
  s.validate();
  with_cell(s, [&](auto cell) { stack_forward<decltype(cell)>(s, params, a, cache); });
}

template <class S>
void backward(const StackSpec& s, const S* params, S* grads, StackCache<S>& cache, const SeqGradArgs<S>& g) {
  with_cell(s, [&](auto cell) { stack_backward<decltype(cell)>(s, params, grads, cache, g); });
}

template void forward<float>(const StackSpec&, const float*, const SeqArgs<float>&, StackCache<float>*);
template void forward<double>(const StackSpec&, const double*, const SeqArgs<double>&, StackCache<double>*);
template void backward<float>(const StackSpec&, const float*, float*, StackCache<float>&,
                              const SeqGradArgs<float>&);
template void backward<double>(const StackSpec&, const double*, double*, StackCache<double>&,
                               const SeqGradArgs<double>&);

}  // namespace rnnkit
