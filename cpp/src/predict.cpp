// rnnkit::Model's batch predict: each layer over the whole batch, one after
// another, through the core's stack forward (stack.h) and layers (layers.h).

#include <algorithm>
#include <type_traits>

#include "model_layers.h"
#include "rnnkit/layers.h"
#include "rnnkit/packing.h"
#include "rnnkit/stack.h"

namespace rnnkit {

namespace {

using detail::Kind;
using detail::Layer;
using detail::ModelLayers;

template <class S, class Id>
void run_predict(const ModelLayers<S>& m, const S* x, const Id* ids, Index B, Index T, S* y,
                 const std::int64_t* lengths) {
  if (B < 1) throw std::invalid_argument("batch must be >= 1, got " + std::to_string(B));
  if (T < 1) throw std::invalid_argument("steps must be >= 1, got " + std::to_string(T));
  check_input(m, x, ids, y);
  if (lengths) check_lengths(lengths, B, T);

  std::vector<S> cur, next;
  const S* in = x;
  Index F = m.input;
  bool pooled = false;
  for (const Layer<S>& L : m.layers) {
    const Index rows = pooled ? B : B * T;
    switch (L.kind) {
      case Kind::Embedding:
        next.resize(std::size_t(rows * L.out));
        embedding_forward(next.data(), ids, L.params.data(), rows, L.in, L.out);
        break;
      case Kind::Recurrent: {
        const StackSpec& s = L.spec;
        next.resize(std::size_t(rows * L.out));
        SeqArgs<S> a;  // no h_n / c_n: predict returns the output sequence only
        a.T = T, a.B = B, a.batch_first = true, a.lengths = lengths;
        a.x = in, a.out = next.data();
        a.lowp = L.lowp.get();
        forward<S>(s, L.params.data(), a, nullptr);
        break;
      }
      case Kind::Linear:
        next.resize(std::size_t(rows * L.out));
        if constexpr (std::is_same_v<S, float>) {
          if (L.lowp_linear) {  // the bias, then += x · W^T in reduced precision
            for (Index r = 0; r < rows; ++r)
              for (Index j = 0; j < L.out; ++j) next[std::size_t(r * L.out + j)] = L.bias ? L.params[std::size_t(L.out * L.in + j)] : 0.0f;
            L.lowp_linear->apply(next.data(), in, rows, true);
            break;
          }
        }
        linear_forward(next.data(), in, L.params.data(), L.bias ? L.params.data() + L.out * L.in : nullptr, rows,
                       L.in, L.out);
        break;
      case Kind::LastStep:
      case Kind::MeanPool:
        next.resize(std::size_t(B * F));
        if (L.kind == Kind::LastStep)
          last_step_forward(next.data(), in, lengths, SeqLayout{B, T, F, true}, L.directions);
        else
          mean_pool_forward(next.data(), in, lengths, SeqLayout{B, T, F, true});
        pooled = true;
        break;
      case Kind::Dropout: continue;
    }
    std::swap(cur, next);
    in = cur.data();
    F = L.out;
  }
  std::copy_n(in, (pooled ? B : B * T) * F, y);
}

}  // namespace

template <class S>
void BasicModel<S>::predict(const S* x, Index batch, Index steps, S* y, const std::int64_t* lengths) const {
  run_predict<S, std::int64_t>(*layers_, x, nullptr, batch, steps, y, lengths);
}
template <class S>
void BasicModel<S>::predict(const std::int64_t* ids, Index batch, Index steps, S* y,
                            const std::int64_t* lengths) const {
  run_predict<S, std::int64_t>(*layers_, nullptr, ids, batch, steps, y, lengths);
}
template <class S>
void BasicModel<S>::predict(const std::int32_t* ids, Index batch, Index steps, S* y,
                            const std::int64_t* lengths) const {
  run_predict<S, std::int32_t>(*layers_, nullptr, ids, batch, steps, y, lengths);
}
template <class S>
std::vector<S> BasicModel<S>::predict(const std::vector<S>& x, Index batch, Index steps) const {
  if (Index(x.size()) != batch * steps * input_size())
    throw std::invalid_argument("x has " + std::to_string(x.size()) + " values, expected batch·steps·input_size = " +
                                std::to_string(batch * steps * input_size()));
  std::vector<S> y(std::size_t((per_step() ? batch * steps : batch) * output_size()));
  predict(x.data(), batch, steps, y.data());
  return y;
}

#define RNNKIT_PREDICT(S)                                                                                  \
  template void BasicModel<S>::predict(const S*, Index, Index, S*, const std::int64_t*) const;            \
  template void BasicModel<S>::predict(const std::int64_t*, Index, Index, S*, const std::int64_t*) const; \
  template void BasicModel<S>::predict(const std::int32_t*, Index, Index, S*, const std::int64_t*) const; \
  template std::vector<S> BasicModel<S>::predict(const std::vector<S>&, Index, Index) const;
RNNKIT_PREDICT(float)
RNNKIT_PREDICT(double)
#undef RNNKIT_PREDICT

}  // namespace rnnkit
