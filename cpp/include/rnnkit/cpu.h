#pragma once
// What the CPU can run, and which kernels rnnkit picks for it. The reduced-precision
// products (quant.h) have one kernel per instruction set and choose among them here,
// once, at their first use: the widest the CPU has, capped by the environment
// variable RNNKIT_ISA (baseline | avx2 | avx512), so that the portable and AVX2
// kernels can be run and tested on a CPU that has more.

#include <string>

namespace rnnkit {

/// The instruction-set levels the kernels come in.
enum class IsaLevel { Baseline = 0, Avx2 = 1, Avx512 = 2 };

struct CpuFeatures {
  // what the CPU (and the operating system, which must save the wider registers) supports
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false;
  bool avx512_vnni = false, avx512_bf16 = false;
  IsaLevel best = IsaLevel::Baseline;    // the widest level the CPU has
  IsaLevel chosen = IsaLevel::Baseline;  // best, capped by RNNKIT_ISA
  std::string cap;                       // RNNKIT_ISA as set ("" where unset)
  std::string cap_error;                 // why RNNKIT_ISA was ignored ("" where it was not)
};

/// The CPU's features and the level chosen (read once; RNNKIT_ISA is read then).
const CpuFeatures& cpu_features();

/// "baseline", "avx2", "avx512".
const char* isa_name(IsaLevel level);

}  // namespace rnnkit
