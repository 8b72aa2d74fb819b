// rnnkit._core: the pybind11 module. It only creates the module and calls the
// register_* functions; each of those binds one part of the core.

#include <pybind11/pybind11.h>

namespace rnnkit_py {
void register_threads(pybind11::module_& m);
void register_stack(pybind11::module_& m);
void register_layers(pybind11::module_& m);
void register_losses(pybind11::module_& m);
void register_optim(pybind11::module_& m);
void register_model(pybind11::module_& m);
void register_lowp(pybind11::module_& m);
}  // namespace rnnkit_py

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnnkit's C++ core: recurrent stacks forward and backward through time";
  rnnkit_py::register_threads(m);
  rnnkit_py::register_stack(m);
  rnnkit_py::register_layers(m);
  rnnkit_py::register_losses(m);
  rnnkit_py::register_optim(m);
  rnnkit_py::register_model(m);
  rnnkit_py::register_lowp(m);
}
