"""Import the compiled core built for this CPU.

The package holds the C++ core once per instruction-set level, each copy a module of its
own: ``_core_avx512`` (AVX-512 F/BW/VL/DQ/CD, with the VNNI and BF16 int8 / bfloat16
kernels where the CPU has them), ``_core_avx2`` (AVX2, FMA) and ``_core_baseline`` (any
x86-64 CPU; on other CPUs, the only one). ``_cpu``, built for every CPU, reads cpuid and
the ``RNNKIT_ISA`` cap; the widest module at or below that level is imported and stands
as ``rnnkit._core``. A build for its own machine (``RNNKIT_NATIVE_ARCH=ON``) holds
``_core_native`` alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from types import ModuleType

LEVELS = ("avx512", "avx2", "baseline")


def _present(name: str) -> bool:
    return importlib.util.find_spec(f"rnnkit.{name}") is not None


def available_modules() -> list[str]:
    """The compiled cores this install holds, widest first."""
    return [name for name in ("_core_native", *(f"_core_{level}" for level in LEVELS)) if _present(name)]


def load_core() -> ModuleType:
    """Import the core for this CPU and register it as ``rnnkit._core``."""
    if "rnnkit._core" in sys.modules:
        return sys.modules["rnnkit._core"]
    if _present("_core_native"):
        name = "_core_native"
    else:
        from . import _cpu

        if _cpu.cap_error():
            warnings.warn(f"rnnkit: {_cpu.cap_error()}", RuntimeWarning, stacklevel=3)
        wanted = _cpu.dispatch_level()
        candidates = [f"_core_{level}" for level in LEVELS[LEVELS.index(wanted):]]
        found = [c for c in candidates if _present(c)]
        if not found:
            raise ImportError(f"rnnkit: this install holds no compiled core this CPU can run (it runs {wanted!r}: "
                              f"looked for {', '.join(candidates)}; found {available_modules() or 'none'}). "
                              "Reinstall rnnkit.")
        name = found[0]
    module = importlib.import_module(f"rnnkit.{name}")
    sys.modules["rnnkit._core"] = module
    return module
