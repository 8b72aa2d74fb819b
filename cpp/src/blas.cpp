// use_blas: dlopen a CBLAS library and keep its gemm entry points.

#include "rnnkit/blas.h"

#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#define RNNKIT_HAVE_DLOPEN 1
#endif

namespace rnnkit {

namespace {
Blas g_blas;
}

const Blas& blas() { return g_blas; }

void use_blas(const std::string& library, const std::string& prefix) {
  if (library.empty()) {
    g_blas = Blas();
    return;
  }
#ifdef RNNKIT_HAVE_DLOPEN
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw std::runtime_error("cannot load the BLAS library " + library + ": " + dlerror());
  Blas b;
  b.sgemm = reinterpret_cast<SgemmFn>(dlsym(handle, (prefix + "cblas_sgemm").c_str()));
  b.dgemm = reinterpret_cast<DgemmFn>(dlsym(handle, (prefix + "cblas_dgemm").c_str()));
  if (!b.sgemm || !b.dgemm) {
    dlclose(handle);
    throw std::runtime_error(library + " has no " + prefix + "cblas_sgemm / " + prefix + "cblas_dgemm");
  }
  // rnnkit splits products across its own threads: the library's own threads stay off.
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(handle, (prefix + "openblas_set_num_threads").c_str()))) set(1);
  b.library = library;
  g_blas = b;  // the handle stays open for the life of the process
#else
  (void)prefix;
  throw std::runtime_error("use_blas: loading a BLAS at run time is not supported on this platform");
#endif
}

}  // namespace rnnkit
