// The core's thread count: one process-wide value, read by every parallel loop
// and by gemm() (gemm.h), which splits products across threads itself.

#include "rnnkit/config.h"

#include <atomic>
#include <stdexcept>
#include <string>

namespace rnnkit {

namespace {
std::atomic<int> g_threads{0};  // 0: not set yet, use OpenMP's default
}

int get_num_threads() {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;  // on a thread of a team already (ours or the caller's): no team inside it
#endif
  const int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("num_threads must be >= 1, got " + std::to_string(n));
  g_threads.store(n, std::memory_order_relaxed);
}

#ifndef RNNKIT_VERSION
#define RNNKIT_VERSION "unknown"
#endif
#ifndef RNNKIT_BUILD_FLAGS
#define RNNKIT_BUILD_FLAGS ""
#endif

const BuildInfo& build_info() {
  static const BuildInfo info = [] {
    BuildInfo b;
    b.version = RNNKIT_VERSION;
#if defined(__clang__)
    b.compiler = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    b.compiler = std::string("gcc ") + __VERSION__;
#elif defined(_MSC_VER)
    b.compiler = "msvc " + std::to_string(_MSC_VER);
#endif
    b.flags = RNNKIT_BUILD_FLAGS;
    b.eigen = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
              std::to_string(EIGEN_MINOR_VERSION);
    b.eigen_simd = Eigen::SimdInstructionSetsInUse();
#ifdef _OPENMP
    b.openmp = true;
    b.openmp_version = _OPENMP;
#endif
    return b;
  }();
  return info;
}

}  // namespace rnnkit
