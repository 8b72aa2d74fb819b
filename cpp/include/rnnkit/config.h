#pragma once
// Build-wide settings of the rnnkit core: the index type, the thread count and
// the OpenMP macro that every parallel loop goes through. Nothing else.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <Eigen/Core>

namespace rnnkit {

using Index = std::ptrdiff_t;

// Divide a memory-bound loop's element count by this before parallel_for.
constexpr Index kMemoryBound = 32;

/// How this copy of the core was built: what rk.show_config() prints.
struct BuildInfo {
  std::string version;        // rnnkit's (python/rnnkit/_version.py)
  std::string compiler;       // name and version
  std::string flags;          // the instruction-set flags the core was compiled with ("" for the compiler's default)
  std::string eigen;          // Eigen's version
  std::string eigen_simd;     // the vector instruction sets Eigen's packets use here
  bool openmp = false;
  int openmp_version = 0;     // _OPENMP (yyyymm), 0 without OpenMP
};
const BuildInfo& build_info();

/// Number of threads the core uses for its own loops and for Eigen's GEMMs.
/// Defaults to OpenMP's default (the machine's cores, or OMP_NUM_THREADS).
/// 1 on a thread of an OpenMP team (the core's own, e.g. one part of a batch,
/// or the caller's): no team is started inside another.
int get_num_threads();

/// Set the number of threads (n >= 1). Applies to every later call, from any thread.
void set_num_threads(int n);

// Parallel loop over independent rows: body(i) for i in [0, n). `work`
// estimates the loop's cost in elements of gate arithmetic (transcendental
// functions): below ~16k a thread team costs more than it saves, so the loop
// runs serially, without entering OpenMP at all (even a one-thread region
// costs about a microsecond, which the streaming step cannot afford).
// Memory-bound loops (copies, optimizer steps) pass work/kMemoryBound: a team
// pays off there only for arrays of about half a million elements, and every
// needless team is expensive when the cores are shared (OpenMP threads spin
// while they wait).
template <class F>
inline void parallel_for(Index n, Index work, F&& body) {
#ifdef _OPENMP
  if (work >= 16384 && n > 1) {
    const int nt = get_num_threads();
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
      for (Index i = 0; i < n; ++i) body(i);
      return;
    }
  }
#endif
  for (Index i = 0; i < n; ++i) body(i);
}

// Runs f(id, k) on every thread of a team of nt threads, id in [0, k) and k
// the team's size (OpenMP may give fewer than asked for), or f(0, 1) on the
// calling thread where nt <= 1: the one way a product or a time loop splits
// across threads. An exception thrown on a thread of the team is caught there
// and rethrown on the calling thread once the team has finished, since one
// that leaves an OpenMP region terminates the program.
template <class F>
inline void on_threads(int nt, F&& f) {
#ifdef _OPENMP
  if (nt > 1) {
    std::exception_ptr error;
#pragma omp parallel num_threads(nt)
    {
      try {
        f(Index(omp_get_thread_num()), Index(omp_get_num_threads()));
      } catch (...) {
#pragma omp critical(rnnkit_on_threads)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
    return;
  }
#endif
  f(Index(0), Index(1));
}

// Part id of k of the range [0, n): [n·id/k, n·(id+1)/k).
inline Index split_begin(Index n, Index id, Index k) { return n * id / k; }

}  // namespace rnnkit
