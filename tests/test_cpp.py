"""Build the C++ core and its unit tests with CMake alone (no Python module
involved) and run them with CTest, so the README's one test command covers them.
"""

from __future__ import annotations

from pathlib import Path

from cpp_build import run


def test_ctest_unit_tests_pass(cpp_build: Path) -> None:
    out = run(["ctest", "--test-dir", cpp_build, "--output-on-failure"])
    assert "100% tests passed" in out, out
