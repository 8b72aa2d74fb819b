"""The CMake build of the C++ core, its tests and the runtime driver, shared by
tests/test_cpp.py and tests/test_runtime.py: configured and built once per session.

The build directory persists (``build/ctest``, or ``$RNNKIT_CTEST_BUILD_DIR``),
so a second run rebuilds only what changed. No Python module is involved: this
is the C++ library as a C++ user builds it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list, **kwargs) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def build_tests() -> Path:
    """Configure and build the C++ tests; return the build directory."""
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed for the C++ tests: pip install '.[test]' brings it"
    build = Path(os.environ.get("RNNKIT_CTEST_BUILD_DIR", ROOT / "build" / "ctest"))
    configure = [cmake, "-S", ROOT, "-B", build, "-DRNNKIT_BUILD_TESTS=ON", "-DRNNKIT_WERROR=ON",
                 f"-DPython_EXECUTABLE={sys.executable}"]
    if not (build / "CMakeCache.txt").exists() and shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    run(configure)
    run([cmake, "--build", build, "--parallel", str(os.cpu_count() or 2)])
    return build
