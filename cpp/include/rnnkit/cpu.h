#pragma once
// What the CPU can run, and which kernels rnnkit picks for it, once, at first use: the
// widest level the CPU has, capped by the environment variable RNNKIT_ISA
// (baseline | avx2 | avx512) so that the narrower kernels can be run and tested on a
// CPU that has more, and by the level this binary was compiled for.
//
// The Python package holds one copy of the whole core per level (rnnkit._core_baseline,
// _core_avx2, _core_avx512, each a shared object of its own, so no code compiled for one
// level can be linked into another's) and imports the one dispatch_level() names. A C++
// program is built for one level (RNNKIT_NATIVE_ARCH, or the compiler's flags); within
// it, the reduced-precision products (quant.h) still choose their kernel here.

#include <string>

namespace rnnkit {

/// The instruction-set levels the kernels come in.
enum class IsaLevel { Baseline = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  // what the CPU (and the operating system, which must save the wider registers) supports
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512cd = false;
  bool avx512_vnni = false, avx512_bf16 = false;
  IsaLevel best = IsaLevel::Baseline;      // the widest level the CPU has
  IsaLevel dispatch = IsaLevel::Baseline;  // best, capped by RNNKIT_ISA: the level to run
  IsaLevel build = IsaLevel::Baseline;     // the widest level this binary's code was compiled for
  IsaLevel chosen = IsaLevel::Baseline;    // dispatch, capped by build: the kernels in use
  std::string cap;                       // RNNKIT_ISA as set ("" where unset)
  std::string cap_error;                 // why RNNKIT_ISA was ignored ("" where it was not)
};

/// The CPU's features and the level chosen (read once; RNNKIT_ISA is read then).
const CpuFeatures& cpu_features();

/// "baseline", "avx2", "avx512".
const char* isa_name(IsaLevel level);

}  // namespace rnnkit
