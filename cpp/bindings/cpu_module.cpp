// rnnkit._cpu: cpuid and RNNKIT_ISA alone, built for every x86-64 CPU, so that the package
// can ask which of its _core_<level> modules this CPU runs before it imports one.

#include <pybind11/pybind11.h>

#include "rnnkit/cpu.h"

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "Which instruction-set level this CPU runs (cpuid, capped by RNNKIT_ISA)";
  m.def("dispatch_level", [] { return rnnkit::isa_name(rnnkit::cpu_features().dispatch); },
        "The widest level the CPU has, capped by RNNKIT_ISA: 'baseline', 'avx2' or 'avx512'.");
  m.def("cap_error", [] { return rnnkit::cpu_features().cap_error; },
        "Why RNNKIT_ISA was ignored, or '' where it was not.");
}
