// rnnkit::forward / rnnkit::backward: pick the cell for spec.cell. The cells'
// drivers are compiled in rnn.cpp, lstm.cpp and gru.cpp.

#include "rnnkit/stack.h"

#include "rnnkit/gru.h"
#include "rnnkit/lstm.h"
#include "rnnkit/rnn.h"

namespace rnnkit {

#define RNNKIT_EXTERN(C, S)                                                                                \
  extern template void stack_forward<C, S>(const StackSpec&, const S*, const SeqArgs<S>&, StackCache<S>*); \
  extern template void stack_backward<C, S>(const StackSpec&, const S*, S*, StackCache<S>&, const SeqGradArgs<S>&);
RNNKIT_EXTERN(RnnCell, float)
RNNKIT_EXTERN(RnnCell, double)
RNNKIT_EXTERN(LstmCell, float)
RNNKIT_EXTERN(LstmCell, double)
RNNKIT_EXTERN(GruCell, float)
RNNKIT_EXTERN(GruCell, double)

template <class S>
void forward(const StackSpec& s, const S* params, const SeqArgs<S>& a, StackCache<S>* cache) {
  s.validate();
  switch (s.cell) {
    case CellType::RNN_TANH:
    case CellType::RNN_RELU: return stack_forward<RnnCell>(s, params, a, cache);
    case CellType::LSTM: return stack_forward<LstmCell>(s, params, a, cache);
    case CellType::GRU: return stack_forward<GruCell>(s, params, a, cache);
  }
}

template <class S>
void backward(const StackSpec& s, const S* params, S* grads, StackCache<S>& cache, const SeqGradArgs<S>& g) {
  switch (s.cell) {
    case CellType::RNN_TANH:
    case CellType::RNN_RELU: return stack_backward<RnnCell>(s, params, grads, cache, g);
    case CellType::LSTM: return stack_backward<LstmCell>(s, params, grads, cache, g);
    case CellType::GRU: return stack_backward<GruCell>(s, params, grads, cache, g);
  }
}

template void forward<float>(const StackSpec&, const float*, const SeqArgs<float>&, StackCache<float>*);
template void forward<double>(const StackSpec&, const double*, const SeqArgs<double>&, StackCache<double>*);
template void backward<float>(const StackSpec&, const float*, float*, StackCache<float>&,
                              const SeqGradArgs<float>&);
template void backward<double>(const StackSpec&, const double*, double*, StackCache<double>&,
                               const SeqGradArgs<double>&);

}  // namespace rnnkit
