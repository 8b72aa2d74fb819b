#pragma once
// An optional BLAS for the large matrix products. rnnkit builds and runs with
// Eigen alone; a CBLAS shared library can be plugged in at run time, and
// gemm() (gemm.h) then hands it every product big enough to gain, each
// thread's block single-threaded (rnnkit keeps control of its threads).
//
//   rnnkit::use_blas("/path/libscipy_openblas.so", "scipy_");  // symbols scipy_cblas_sgemm, ...
//
// Python does this at import when the scipy-openblas32 package is installed
// (pip install "rnnkit[blas]"); RNNKIT_BLAS=0 in the environment keeps Eigen.
// The library must export <prefix>cblas_sgemm and <prefix>cblas_dgemm with
// 32-bit integers (an LP64 CBLAS), and may export
// <prefix>openblas_set_num_threads, which is set to 1.

#include <string>

namespace rnnkit {

// The CBLAS sgemm/dgemm signatures (enums passed as int: RowMajor 101, NoTrans 111, Trans 112).
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                         int);
using DgemmFn = void (*)(int, int, int, int, int, int, double, const double*, int, const double*, int, double,
                         double*, int);

struct Blas {
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;
  std::string library;  // the path given to use_blas, "" when off
};

/// Load `library` and use its CBLAS gemm from now on; "" goes back to Eigen. Throws
/// std::runtime_error (and changes nothing) if the library or its symbols cannot be found.
/// Call it when no product is running (at start-up).
void use_blas(const std::string& library, const std::string& symbol_prefix = "");

/// The BLAS in use (its function pointers are null when none).
const Blas& blas();

}  // namespace rnnkit
