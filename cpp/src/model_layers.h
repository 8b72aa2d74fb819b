#pragma once
// The layers of a loaded model: rnnkit::Model's private state, shared by the
// files that build it (architecture.cpp), run a batch over it (predict.cpp)
// and step it (stream.cpp). Private to the library.

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "rnnkit/gemm.h"
#include "rnnkit/model.h"
#include "rnnkit/spec.h"
#include "rnnkit/weights.h"

namespace rnnkit {

namespace detail {

enum class Kind { Embedding, Recurrent, Linear, LastStep, MeanPool, Dropout };

template <class S>
struct Layer {
  Kind kind;
  std::string summary;
  StackSpec spec;        // Recurrent
  Index in = 0, out = 0; // features per row in and out (Embedding: num_embeddings, dim)
  Index directions = 1;  // LastStep / MeanPool: halves of the features
  bool batch_first = false;  // Recurrent: the Python layer's layout (the runtime is batch-first always)
  bool bias = false;     // Linear
  std::vector<S> params; // Recurrent: spec.param_layout(); Embedding: weight; Linear: weight, bias
  // For the streaming step (unidirectional layers), each sub-layer's weights packed
  // for one row's products (gemm.h's panel_times), so a step's products vectorise
  // over the gates. A step reads one row per sequence,
  //   z = [h_{t-1}, 1, x_t]                         (P + 1 + I)
  // and the columns of [W_hh^T; b_ih + b_hh; W_ih^T] it multiplies hold the biases
  // in the row that meets the 1: one pass over z gives W_ih x + b_ih + W_hh h + b_hh
  // for every gate whose pre-activation is a plain sum (RNN, LSTM, GRU's r and z),
  // with no second product, no bias pass and no sum of two buffers. GRU's
  // candidate keeps its parts apart (it needs r first): n_x = W_in x + b_in from
  // z's [1, x_t] and, with reset_after, n_h = W_hn h + b_hn from z's [h_{t-1}, 1].
  //
  // The units go in groups, each group's columns one panel of four registers of
  // U lanes: LSTM i, f, g, o of U units; GRU r, z, n_x, n_h of U units (its h
  // rows leave n_x out, its x rows n_h: panel_times' Head and Tail); RNN 4U units. The step multiplies z
  // by a group's panel and runs the cell on that group at once (cell_step), so
  // the gate sums go from registers to the cell through L1, and one group's cell
  // overlaps the next group's multiply-adds. GRU with reset_after=False, whose
  // candidate's product waits for every unit's r, runs `products` into g instead.
  struct StepProduct {
    PackedMat<S> w;  // (K, N)
    Index k0 = 0;    // z[k0, k0 + K) · w
    Index out = 0;   // lands in g[out, out + N) (the layout cell_step gives the cell)
  };
  struct StepWeights {
    std::vector<S, Eigen::aligned_allocator<S>> groups;  // the groups' panels, one after another
    Index lanes = 0;       // U: the lanes of the panels' registers; 0: `products` instead
    bool apart = false;    // the groups' registers are r, z, n_x, n_h (GRU), else the gates' plain sums
    Index units = 0;       // units per group: U (RNN: 4U)
    StackSpec group_spec;  // the spec with hidden_size = units: one group as its cell sees it
    std::vector<StepProduct> products;  // GRU with reset_after=False
    PackedMat<S> w_hr;  // W_hr^T, empty without proj_size
    DirParams dp;       // where the sub-layer's parameters are (spec.dir_params, looked up once)
  };
  std::vector<StepWeights> step;  // Recurrent: [sub-layer l] (float weights only)
  PackedMat<S> linear_w;          // Linear: W^T (float weights only)
  // The weight matrices in int8 / bfloat16 (a float32 model's only; params then hold
  // their values as float, and the biases): Recurrent, Linear.
  std::shared_ptr<const LowpStack> lowp;
  std::shared_ptr<const LowpLinear> lowp_linear;
};

template <class S>
struct ModelLayers {
  std::vector<Layer<S>> layers;
  bool ids = false;
  Index input = 0, output = 0, num_params = 0;
  bool per_step = true, bidirectional = false;
};
// w (rows, cols) row-major, transposed and packed for vec_mat: x (rows) · w^T... as x (cols) -> (rows)
template <class S>
PackedMat<S> packed_transpose(const S* w, Index rows, Index cols) {
  return pack_for_vec_mat<S>(cmat(w, rows, cols).transpose());
}

// Token ids for a model that starts with an Embedding, floats otherwise; no null pointers.
template <class S, class Id>
void check_input(const ModelLayers<S>& m, const S* x, const Id* ids, const S* y) {
  if ((ids != nullptr) != m.ids)
    throw std::invalid_argument(m.ids ? "this model starts with an Embedding: pass token ids, not floats"
                                      : "this model takes float features, not token ids");
  if (!x && !ids) throw std::invalid_argument("x is null");
  if (!y) throw std::invalid_argument("y is null");
}
// The streaming step's weights of sub-layer l of a unidirectional stack (stream.cpp).
template <class S>
typename Layer<S>::StepWeights step_weights(const StackSpec& s, const S* params, Index l);

// The checks build() makes before it allocates anything: the architecture, and the
// tensors' names, shapes and dtypes against it (no tensor's data is read). True where a
// layer stores its weights in reduced precision (the model then runs in float32 only).
bool check_tensors(const std::string& architecture, const std::vector<TensorRef>& refs, const std::string& what);

// The layers an architecture (JSON) and its tensors describe (architecture.cpp).
// Throws ModelFileError naming `what`.
template <class S>
std::shared_ptr<ModelLayers<S>> build(const std::string& architecture, const std::vector<TensorRef>& refs,
                                      const std::string& what);

}  // namespace detail

}  // namespace rnnkit
