#pragma once
// Build-wide settings of the rnnkit core: the index type, the thread count and
// the OpenMP macro that every parallel loop goes through. Nothing else.

#include <cstddef>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <Eigen/Core>

namespace rnnkit {

using Index = std::ptrdiff_t;

// Divide a memory-bound loop's element count by this before RNNKIT_PARALLEL_FOR.
constexpr Index kMemoryBound = 32;

/// Number of threads the core uses for its own loops and for Eigen's GEMMs.
/// Defaults to OpenMP's default (the machine's cores, or OMP_NUM_THREADS).
int get_num_threads();

/// Set the number of threads (n >= 1). Applies to every later call, from any thread.
void set_num_threads(int n);

}  // namespace rnnkit

// Parallel loop over independent rows. `work` estimates the loop's cost in
// elements of gate arithmetic (transcendental functions): below ~16k a thread
// team costs more than it saves, so the loop runs serially. Memory-bound loops
// (copies, optimizer steps) pass work/kMemoryBound: a team pays off there only
// for arrays of about half a million elements, and every needless team is
// expensive when the cores are shared (OpenMP threads spin while they wait).
#ifdef _OPENMP
#define RNNKIT_STR_(x) #x
#define RNNKIT_PARALLEL_FOR(work) \
  _Pragma(RNNKIT_STR_(omp parallel for schedule(static) if ((work) >= 16384 && ::rnnkit::get_num_threads() > 1) num_threads(::rnnkit::get_num_threads())))
#else
#define RNNKIT_PARALLEL_FOR(work)
#endif
