// rnnkit._core.set_num_threads / get_num_threads, and the optional BLAS (use_blas / blas_library)

#include <pybind11/pybind11.h>

#include "rnnkit/blas.h"
#include "rnnkit/config.h"

namespace rnnkit_py {

void register_threads(pybind11::module_& m) {
  m.def("get_num_threads", &rnnkit::get_num_threads, "Threads the core uses for its loops and GEMMs.");
  m.def("set_num_threads", &rnnkit::set_num_threads, pybind11::arg("n"),
        "Set the threads the core uses (n >= 1), for every later call from any thread.");
  m.def("use_blas", &rnnkit::use_blas, pybind11::arg("library"), pybind11::arg("symbol_prefix") = "",
        "Hand large products to this CBLAS shared library ('' goes back to Eigen). Raises RuntimeError if it "
        "cannot be loaded.");
  m.def("blas_library", [] { return rnnkit::blas().library; }, "The BLAS library in use, '' for Eigen's own GEMM.");
  m.def("has_openmp", [] {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
  });
}

}  // namespace rnnkit_py
