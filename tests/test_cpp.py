"""Build the C++ core and its unit tests with CMake alone (no Python module
involved) and run them with CTest, so the README's one test command covers them.

The build directory persists (``build/ctest``, or ``$RNNKIT_CTEST_BUILD_DIR``),
so a second run rebuilds only what changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return proc.stdout


def test_ctest_unit_tests_pass() -> None:
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed for the C++ tests: pip install '.[test]' brings it"
    build = Path(os.environ.get("RNNKIT_CTEST_BUILD_DIR", ROOT / "build" / "ctest"))
    configure = [cmake, "-S", str(ROOT), "-B", str(build), "-DRNNKIT_BUILD_TESTS=ON", "-DRNNKIT_WERROR=ON",
                 f"-DPython_EXECUTABLE={sys.executable}"]
    if not (build / "CMakeCache.txt").exists() and shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    _run(configure)
    _run([cmake, "--build", str(build), "--parallel", str(os.cpu_count() or 2)])
    out = _run(["ctest", "--test-dir", str(build), "--output-on-failure"])
    assert "100% tests passed" in out, out
