#pragma once
// Embedded inference: run a model saved by rk.save (Python) from C++, with no Python.
//
//   rnnkit::Model model = rnnkit::Model::load("weather_lstm.safetensors");
//   model.predict(x, batch, steps, y);        // x (batch, steps, input_size), y (batch, [steps,] output_size)
//   rnnkit::Stream s = model.stream(1);       // state for 1 sequence, preallocated
//   for (each new reading) s.step(x_t, y_t);  // one time step: no heap allocation, no locks
//
// A model is what rk.Sequential holds: an optional Embedding first, then any of
// RNN / LSTM / GRU stacks (every option: layers, bidirectional, proj_size,
// reset_after, bias, relu/tanh), Linear, Dropout (identity at inference), and
// a LastStep or MeanPool head; without a pooling head the output is per step.
// A file holding one recurrent layer alone loads too.
//
// Layouts are fixed whatever the Python layers' batch_first: every buffer is
// row-major and batch-first, (batch, steps, features), floats of the model's
// scalar type S (Model: float; ModelD: double; a file's weights are converted).
// A model that starts with an Embedding takes int64 (or int32) token ids (batch, steps).
//
// A Model is immutable after loading and cheap to copy (its layers are shared);
// predict may be called from several threads at once. A Stream belongs to one
// thread at a time and keeps the model alive.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "safetensors.h"
#include "tensor.h"

namespace rnnkit {

namespace detail {
template <class S>
struct ModelLayers;
template <class S>
struct StreamState;
}  // namespace detail

template <class S>
class BasicStream;

template <class S>
class BasicModel {
 public:
  /// Read a model file written by rk.save (format version 2, or 1). Throws ModelFileError
  /// when the file is missing, truncated, corrupt (checksum), not an rnnkit model, of
  /// another format version, describes a layer or option this runtime does not know, holds
  /// other tensors than its architecture needs, or a NaN or infinite weight. Nothing is
  /// allocated from the architecture before it is checked against the tensors present.
  static BasicModel load(const std::string& path);

  /// Build from an architecture (the JSON rk.save writes in the metadata) and its
  /// tensors (PyTorch's names, e.g. "1.weight_ih_l0"; F32 or F64, copied); used by
  /// load() and by Python's model.stream(). Throws ModelFileError as load() does;
  /// `what` names the source in its messages.
  static BasicModel from_tensors(const std::string& architecture_json, const std::vector<TensorRef>& tensors,
                                 const std::string& what = "model");
  /// The checks from_tensors makes before it allocates or reads anything: the architecture,
  /// and each tensor's name, shape and dtype against it (`data` may be null). Throws
  /// ModelFileError as from_tensors does; passing them, from_tensors can still refuse a
  /// NaN or infinite value.
  static void check_tensors(const std::string& architecture_json, const std::vector<TensorRef>& tensors,
                            const std::string& what = "model");

  bool takes_ids() const;      // the first layer is an Embedding: inputs are token ids
  Index vocab_size() const;    // token ids run 0..vocab_size()-1 (the Embedding's rows); 0 for float input
  Index input_size() const;    // features per step (1 for token ids)
  Index output_size() const;   // features of y per row
  bool per_step() const;       // y is (batch, steps, out); false: (batch, out) after LastStep/MeanPool
  bool can_stream() const;     // false for a bidirectional model
  Index num_parameters() const;
  /// One line per layer, e.g. "LSTM(1, 32, num_layers=2)".
  std::string summary() const;

  /// Run a batch. x: (batch, steps, input_size) floats; lengths: (batch) each in 1..steps,
  /// or nullptr for all `steps` (padding beyond a length is skipped, as rk's lengths=).
  /// y: batch·steps·output_size floats when per_step(), else batch·output_size.
  void predict(const S* x, Index batch, Index steps, S* y, const std::int64_t* lengths = nullptr) const;
  /// The same for a model that starts with an Embedding: ids (batch, steps).
  void predict(const std::int64_t* ids, Index batch, Index steps, S* y, const std::int64_t* lengths = nullptr) const;
  void predict(const std::int32_t* ids, Index batch, Index steps, S* y, const std::int64_t* lengths = nullptr) const;
  /// predict() into a new vector.
  std::vector<S> predict(const std::vector<S>& x, Index batch, Index steps) const;

  /// A streaming runner for `batch` sequences. Throws std::invalid_argument for a
  /// bidirectional model (its output at step t needs steps after t).
  BasicStream<S> stream(Index batch) const;

 private:
  std::shared_ptr<const detail::ModelLayers<S>> layers_;
};

template <class S>
class BasicStream {
 public:
  /// One time step for every sequence of the batch: x_t (batch, input_size), or token
  /// ids (batch); y_t (batch, output_size) gets the head's output for this step (with
  /// LastStep: the output as if the sequences ended here; MeanPool: the mean so far).
  /// Allocates nothing and takes no locks; runs on the calling thread only. Throws
  /// std::invalid_argument, the state left as it was, for a NaN in x_t (the state would
  /// carry it into every later step) or a token id out of range.
  void step(const S* x_t, S* y_t);
  void step(const std::int64_t* ids_t, S* y_t);
  /// Back to the zero state, as at creation.
  void reset();
  Index batch() const;
  Index steps() const;  // steps since creation or the last reset()
  Index input_size() const;   // as the model's
  Index output_size() const;
  bool takes_ids() const;

  BasicStream(BasicStream&&) noexcept;
  BasicStream& operator=(BasicStream&&) noexcept;
  ~BasicStream();

 private:
  friend class BasicModel<S>;
  explicit BasicStream(std::unique_ptr<detail::StreamState<S>> state);
  std::unique_ptr<detail::StreamState<S>> state_;
};

using Model = BasicModel<float>;
using Stream = BasicStream<float>;
using ModelD = BasicModel<double>;
using StreamD = BasicStream<double>;

/// Write a model file as rk.save does (format, format_version, architecture, sha256 in the
/// metadata), so that rk.load and Model::load read it: a model trained in C++ goes to Python.
void save_model(const std::string& path, const std::string& architecture_json, const std::vector<TensorRef>& tensors);

}  // namespace rnnkit
