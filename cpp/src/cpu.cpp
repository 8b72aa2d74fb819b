// rnnkit::cpu_features: cpuid (through the compiler's __builtin_cpu_supports, which also
// checks that the operating system saves the AVX and AVX-512 registers) and RNNKIT_ISA.

#include "rnnkit/cpu.h"

#include <cstdlib>

namespace rnnkit {

const char* isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::Avx512: return "avx512";
    case IsaLevel::Avx2: return "avx2";
    default: return "baseline";
  }
}

namespace {

// The level this file was compiled for (its -m flags, the same as the rest of its copy of the
// core): the widest of the levels whose every instruction set the compiler may use. Here, not in
// cpu.h, so that no inline function means a different thing in translation units built with
// different flags.
constexpr IsaLevel compiled_level() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && \
    defined(__AVX512CD__) && defined(__AVX2__) && defined(__FMA__)
  return IsaLevel::Avx512;
#elif defined(__AVX2__) && defined(__FMA__)
  return IsaLevel::Avx2;
#else
  return IsaLevel::Baseline;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.f16c = __builtin_cpu_supports("f16c");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512cd = __builtin_cpu_supports("avx512cd");
  f.avx512_vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
#endif
  // The levels are what the build's flags for them let the compiler use (CMakeLists.txt):
  // avx2 = AVX2 + FMA + F16C, avx512 = that + AVX-512 F, BW, VL, DQ, CD (x86-64-v4).
  if (f.avx2 && f.fma && f.f16c) f.best = IsaLevel::Avx2;
  if (f.best == IsaLevel::Avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512cd)
    f.best = IsaLevel::Avx512;
  f.dispatch = f.best;
  if (const char* env = std::getenv("RNNKIT_ISA"); env && *env) {
    f.cap = env;
    IsaLevel cap = f.best;
    if (f.cap == "baseline") cap = IsaLevel::Baseline;
    else if (f.cap == "avx2") cap = IsaLevel::Avx2;
    else if (f.cap == "avx512") cap = IsaLevel::Avx512;
    else f.cap_error = "RNNKIT_ISA=" + f.cap + " is not one of baseline, avx2, avx512: ignored";
    if (int(cap) < int(f.dispatch)) f.dispatch = cap;
  }
  f.build = compiled_level();
  f.chosen = int(f.build) < int(f.dispatch) ? f.build : f.dispatch;
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace rnnkit
