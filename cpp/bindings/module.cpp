// rnnkit._core_<level>: the pybind11 module, built once per instruction-set level
// (CMakeLists.txt names it through RNNKIT_PY_MODULE; the package imports it as
// rnnkit._core). It only creates the module and calls the register_* functions; each
// of those binds one part of the core.

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

#ifndef RNNKIT_PY_MODULE
#define RNNKIT_PY_MODULE _core
#endif

PYBIND11_MODULE(RNNKIT_PY_MODULE, m) {
  m.doc() = "rnnkit's C++ core: recurrent stacks forward and backward through time";
  rnnkit_py::register_threads(m);
  rnnkit_py::register_stack(m);
  rnnkit_py::register_layers(m);
  rnnkit_py::register_losses(m);
  rnnkit_py::register_optim(m);
  rnnkit_py::register_model(m);
  rnnkit_py::register_lowp(m);
}
