// rnnkit._core: losses with their gradients (rnnkit/losses.h), float and double.
// Each returns (loss, grad) with grad shaped like the prediction.

#include <pybind11/stl.h>

#include "numpy.h"
#include "rnnkit/losses.h"

namespace rnnkit_py {

namespace {

template <class S>
void register_dtype(py::module_& m) {
  m.def("mse_loss", [](const Array<S>& pred, const Array<S>& target) {
    if (pred.size() != target.size()) throw py::value_error("target must have as many elements as pred");
    Array<S> grad(std::vector<py::ssize_t>(pred.shape(), pred.shape() + pred.ndim()));
    const double loss = rnnkit::mse_loss(grad.mutable_data(), pred.data(), target.data(), Index(pred.size()));
    return py::make_tuple(loss, grad);
  }, py::arg("pred").noconvert(), py::arg("target").noconvert());

  m.def("cross_entropy_loss", [](const Array<S>& logits, const IntArray& target,
                                 const std::optional<py::array_t<std::uint8_t, py::array::c_style>>& valid,
                                 std::int64_t ignore_index) {
    const Index C = logits.shape(logits.ndim() - 1), M = Index(logits.size()) / std::max<Index>(C, 1);
    if (Index(target.size()) != M) throw py::value_error("target must have one class id per row of logits");
    if (valid && Index(valid->size()) != M) throw py::value_error("valid must have one entry per row of logits");
    Array<S> grad(std::vector<py::ssize_t>(logits.shape(), logits.shape() + logits.ndim()));
    const double loss = rnnkit::cross_entropy_loss(grad.mutable_data(), logits.data(), target.data(),
                                                   valid ? valid->data() : nullptr, M, C, ignore_index);
    return py::make_tuple(loss, grad);
  }, py::arg("logits").noconvert(), py::arg("target").noconvert(), py::arg("valid").noconvert(),
     py::arg("ignore_index"));

  m.def("bce_with_logits_loss", [](const Array<S>& logits, const Array<S>& target) {
    if (logits.size() != target.size()) throw py::value_error("target must have as many elements as logits");
    Array<S> grad(std::vector<py::ssize_t>(logits.shape(), logits.shape() + logits.ndim()));
    const double loss =
        rnnkit::bce_with_logits_loss(grad.mutable_data(), logits.data(), target.data(), Index(logits.size()));
    return py::make_tuple(loss, grad);
  }, py::arg("logits").noconvert(), py::arg("target").noconvert());
}

}  // namespace

void register_losses(py::module_& m) {
  register_dtype<float>(m);
  register_dtype<double>(m);
}

}  // namespace rnnkit_py
