// rnnkit._core: Linear, Embedding, LastStep and MeanPool forward/backward, for
// float and double, and check_lengths (packing.h's, for Python's as_lengths). rnnkit/nn.py flattens leading axes and validates shapes in
// the caller's terms; the sizes are checked again here so that a wrong call
// raises instead of reading out of bounds.

#include <pybind11/stl.h>

#include "numpy.h"
#include "rnnkit/layers.h"
#include "rnnkit/packing.h"

namespace rnnkit_py {

namespace {

using rnnkit::SeqLayout;

template <class A>
Index size_of(const A& a) {
  return Index(a.size());
}

inline void check_size(Index got, Index expected, const char* name) {
  if (got != expected)
    throw py::value_error(std::string(name) + " has " + std::to_string(got) + " elements, expected " +
                          std::to_string(expected));
}

SeqLayout layout_of(const py::buffer_info& seq, bool batch_first, const std::optional<IntArray>& lengths) {
  if (seq.ndim != 3) throw py::value_error("seq must have 3 axes, got " + std::to_string(seq.ndim));
  SeqLayout s{batch_first ? Index(seq.shape[0]) : Index(seq.shape[1]),
              batch_first ? Index(seq.shape[1]) : Index(seq.shape[0]), Index(seq.shape[2]), batch_first};
  if (lengths) {
    check_size(size_of(*lengths), s.B, "lengths");
    rnnkit::check_lengths(lengths->data(), s.B, s.T);
  }
  return s;
}

template <class S>
void register_dtype(py::module_& m) {
  m.def("linear_forward", [](const Array<S>& x, const Array<S>& w, const std::optional<Array<S>>& b) {
    const Index out = w.shape(0), in = w.shape(1), M = size_of(x) / std::max<Index>(in, 1);
    check_size(size_of(x), M * in, "x");
    if (b) check_size(size_of(*b), out, "bias");
    auto y = empty<S>({M, out});
    py::gil_scoped_release release;
    rnnkit::linear_forward(y.mutable_data(), x.data(), w.data(), data_or_null(b), M, in, out);
    return y;
  }, py::arg("x").noconvert(), py::arg("weight").noconvert(), py::arg("bias").noconvert() = py::none());

  m.def("linear_backward", [](const Array<S>& dy, const Array<S>& x, const Array<S>& w, Array<S>& dw,
                              std::optional<Array<S>>& db, bool need_dx) -> py::object {
    const Index out = w.shape(0), in = w.shape(1), M = size_of(x) / std::max<Index>(in, 1);
    check_size(size_of(x), M * in, "x");
    check_size(size_of(dy), M * out, "grad");
    check_size(size_of(dw), out * in, "weight grad");
    if (db) check_size(size_of(*db), out, "bias grad");
    Array<S> dx;
    if (need_dx) dx = empty<S>({M, in});
    S* dxp = need_dx ? dx.mutable_data() : nullptr;
    S* dbp = db ? db->mutable_data() : nullptr;
    S* dwp = dw.mutable_data();
    {
      py::gil_scoped_release release;
      rnnkit::linear_backward(dxp, dwp, dbp, dy.data(), x.data(), w.data(), M, in, out);
    }
    return need_dx ? py::object(dx) : py::object(py::none());
  }, py::arg("grad").noconvert(), py::arg("x").noconvert(), py::arg("weight").noconvert(),
     py::arg("weight_grad").noconvert(), py::arg("bias_grad").noconvert(), py::arg("need_dx"));

  m.def("embedding_forward", [](const IntArray& ids, const Array<S>& w) {
    const Index num = w.shape(0), dim = w.shape(1), M = size_of(ids);
    auto y = empty<S>({M, dim});
    py::gil_scoped_release release;
    rnnkit::embedding_forward(y.mutable_data(), ids.data(), w.data(), M, num, dim);
    return y;
  }, py::arg("ids").noconvert(), py::arg("weight").noconvert());

  m.def("embedding_backward", [](const Array<S>& dy, const IntArray& ids, Array<S>& dw, Index padding_idx) {
    const Index num = dw.shape(0), dim = dw.shape(1), M = size_of(ids);
    check_size(size_of(dy), M * dim, "grad");
    rnnkit::check_ids(ids.data(), M, num);
    S* dwp = dw.mutable_data();
    py::gil_scoped_release release;
    rnnkit::embedding_backward(dwp, dy.data(), ids.data(), M, dim, padding_idx);
  }, py::arg("grad").noconvert(), py::arg("ids").noconvert(), py::arg("weight_grad").noconvert(),
     py::arg("padding_idx"));

  m.def("last_step_forward", [](const Array<S>& seq, const std::optional<IntArray>& lengths, bool batch_first,
                                Index directions) {
    const SeqLayout s = layout_of(seq.request(), batch_first, lengths);
    if (directions != 1 && (directions != 2 || s.F % 2))
      throw py::value_error("LastStep: a bidirectional layer's features must split in two halves, got " +
                            std::to_string(s.F));
    auto y = empty<S>({s.B, s.F});
    rnnkit::last_step_forward(y.mutable_data(), seq.data(), lengths ? lengths->data() : nullptr, s, directions);
    return y;
  }, py::arg("seq").noconvert(), py::arg("lengths").noconvert(), py::arg("batch_first"), py::arg("directions"));

  m.def("last_step_backward", [](const Array<S>& dy, const std::optional<IntArray>& lengths, bool batch_first,
                                 Index directions, Index T) {
    const Index B = dy.shape(0), F = dy.shape(1);
    auto dseq = batch_first ? empty<S>({B, T, F}) : empty<S>({T, B, F});
    const SeqLayout s = layout_of(dseq.request(), batch_first, lengths);
    rnnkit::last_step_backward(dseq.mutable_data(), dy.data(), lengths ? lengths->data() : nullptr, s, directions);
    return dseq;
  }, py::arg("grad").noconvert(), py::arg("lengths").noconvert(), py::arg("batch_first"), py::arg("directions"),
     py::arg("T"));

  m.def("mean_pool_forward", [](const Array<S>& seq, const std::optional<IntArray>& lengths, bool batch_first) {
    const SeqLayout s = layout_of(seq.request(), batch_first, lengths);
    auto y = empty<S>({s.B, s.F});
    rnnkit::mean_pool_forward(y.mutable_data(), seq.data(), lengths ? lengths->data() : nullptr, s);
    return y;
  }, py::arg("seq").noconvert(), py::arg("lengths").noconvert(), py::arg("batch_first"));

  m.def("mean_pool_backward", [](const Array<S>& dy, const std::optional<IntArray>& lengths, bool batch_first,
                                 Index T) {
    const Index B = dy.shape(0), F = dy.shape(1);
    auto dseq = batch_first ? empty<S>({B, T, F}) : empty<S>({T, B, F});
    const SeqLayout s = layout_of(dseq.request(), batch_first, lengths);
    rnnkit::mean_pool_backward(dseq.mutable_data(), dy.data(), lengths ? lengths->data() : nullptr, s);
    return dseq;
  }, py::arg("grad").noconvert(), py::arg("lengths").noconvert(), py::arg("batch_first"), py::arg("T"));
}

}  // namespace

void register_layers(py::module_& m) {
  m.def("check_lengths", [](const IntArray& lengths, Index steps) {
    rnnkit::check_lengths(lengths.data(), size_of(lengths), steps);
  }, py::arg("lengths").noconvert(), py::arg("steps"),
  "Raise ValueError unless every length is in 1..steps (the check every entry point taking lengths makes).");
  register_dtype<float>(m);
  register_dtype<double>(m);
}

}  // namespace rnnkit_py
