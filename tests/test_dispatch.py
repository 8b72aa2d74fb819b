"""The compiled core per instruction-set level: the package imports the one the CPU runs,
RNNKIT_ISA caps it, each level's core computes what the others do, and show_config /
``python -m rnnkit`` say which is in use.

The whole core test suite runs once more per level in CI (RNNKIT_ISA=baseline / avx2; see
conftest.py, which checks the level took), and under an emulated AVX2-only and SSE4.2-only
CPU (scripts/test_isa_qemu.sh), where an instruction from a wider level would kill the
process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rnnkit as rk
from rnnkit._dispatch import LEVELS, available_modules

FEATURES = rk.cpu_features()
NATIVE = FEATURES["module"] == "_core_native"
ORDER = {level: i for i, level in enumerate(reversed(LEVELS))}  # baseline 0, avx2 1, avx512 2


def run_python(code: str, isa: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RNNKIT_ISA"}
    if isa is not None:
        env["RNNKIT_ISA"] = isa
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300)


def levels_here() -> list[str]:
    """The levels this CPU runs whose core this install holds."""
    return [level for level in LEVELS if ORDER[level] <= ORDER[FEATURES["best"]]
            and f"_core_{level}" in available_modules()]


def test_the_imported_core_is_the_widest_the_cpu_runs():
    assert f"_core_{FEATURES['chosen']}" in available_modules() or NATIVE
    if NATIVE:
        assert available_modules() == ["_core_native"]
        return
    assert FEATURES["module"] == f"_core_{FEATURES['build']}"
    cap = os.environ.get("RNNKIT_ISA") or FEATURES["best"]
    wanted = min(cap, FEATURES["best"], key=ORDER.get) if cap in ORDER else FEATURES["best"]
    assert FEATURES["chosen"] == FEATURES["build"] == max(
        (level for level in levels_here() if ORDER[level] <= ORDER[wanted]), key=ORDER.get)


PROBE = textwrap.dedent("""
    import json, rnnkit as rk
    f = rk.cpu_features()
    print(json.dumps({"module": f["module"], "build": f["build"], "chosen": f["chosen"],
                      "simd": rk.show_config(mode="dicts")["build"]["eigen_simd"], "flags": rk._core.build_info()["flags"]}))
""")


@pytest.mark.skipif(NATIVE, reason="a build for its own machine holds one core")
@pytest.mark.parametrize("level", ["baseline", "avx2", "avx512"])
def test_rnnkit_isa_picks_the_core_of_that_level(level):
    if level not in levels_here():
        pytest.skip(f"this CPU or install does not run {level}")
    got = json.loads(run_python(PROBE, level).stdout)
    assert got["module"] == f"_core_{level}" and got["build"] == got["chosen"] == level
    # what the compiler was told for that copy (build: the macros it then defines), and what
    # Eigen's packets use (Eigen names AVX2 builds "AVX")
    simd = got["simd"]
    if level == "baseline":
        assert "AVX" not in simd and "-mavx" not in got["flags"], got
    elif level == "avx2":
        assert simd.startswith("AVX ") and "AVX512" not in simd and "-mavx2 -mfma" in got["flags"], got
    else:
        assert simd.startswith("AVX512") and "-mavx512f" in got["flags"], got


@pytest.mark.skipif(NATIVE, reason="a build for its own machine holds one core")
def test_an_unknown_rnnkit_isa_is_named_and_ignored():
    run = run_python("import warnings; warnings.simplefilter('default'); import rnnkit as rk; "
                     "print(rk.cpu_features()['chosen'])", "sse9")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [FEATURES["best"] if FEATURES["best"] in levels_here() else levels_here()[0]]
    assert "RNNKIT_ISA=sse9 is not one of baseline, avx2, avx512: ignored" in run.stderr


RUN = textwrap.dedent("""
    import sys, numpy as np, rnnkit as rk
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 12, 5)).astype(np.float32)
    lengths = np.array([12, 3, 7, 12, 1, 9, 5])
    out, lowp = [], []
    for m in (rk.LSTM(5, 24, num_layers=2, batch_first=True, seed=1, proj_size=12),
              rk.GRU(5, 20, batch_first=True, bidirectional=True, seed=2, reset_after=False),
              rk.RNN(5, 30, batch_first=True, seed=3, nonlinearity="relu")):
        y, _ = m(x, lengths=lengths)
        m.zero_grad()
        m.backward(np.ones_like(y))
        out += [y.ravel(), m._grad.copy()]
        for precision in ("int8", "bf16"):
            lowp.append(rk.quantize(m, precision)(x, lengths=lengths)[0].ravel())
        if not m.bidirectional:
            s = m.stream(7)
            out.append(np.concatenate([s.step(x[:, t]).ravel() for t in range(4)]))
    np.savez(sys.argv[1], float=np.concatenate(out), lowp=np.concatenate(lowp))
""")


@pytest.mark.skipif(NATIVE, reason="a build for its own machine holds one core")
def test_every_level_computes_what_the_widest_does(tmp_path):
    """Forward, BPTT, int8 / bf16 inference and streaming, on each level's core. The float
    sums round differently (FMA or not, 4, 8 or 16 lanes), so the levels agree to float32's
    precision, not bit for bit; the reduced-precision runs requantize activations that
    differ by an ulp, so they agree to their own precision."""
    results = {}
    for level in levels_here():
        path = tmp_path / f"{level}.npz"
        run = run_python(RUN, level, str(path))
        assert run.returncode == 0, run.stderr
        results[level] = dict(np.load(path))
    widest = levels_here()[0]
    for level, got in results.items():
        np.testing.assert_allclose(got["float"], results[widest]["float"], rtol=1e-5, atol=1e-5,
                                   err_msg=f"float32, {level} vs {widest}")
        np.testing.assert_allclose(got["lowp"], results[widest]["lowp"], rtol=1e-2, atol=1e-2,
                                   err_msg=f"int8 / bf16, {level} vs {widest}")


def test_show_config_says_what_runs():
    config = rk.show_config(mode="dicts")
    assert config["version"] == rk.__version__
    assert config["core"]["module"] == f"rnnkit.{FEATURES['module']}"
    assert config["core"]["chosen"] == FEATURES["chosen"]
    assert config["threads"] == rk.get_num_threads()
    assert config["build"]["eigen"].startswith("3.")
    with pytest.raises(ValueError, match="mode must be 'stdout' or 'dicts', got 'json'"):
        rk.show_config(mode="json")


def test_python_m_rnnkit_prints_the_configuration():
    run = subprocess.run([sys.executable, "-m", "rnnkit"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"rnnkit {rk.__version__}\n")
    assert f"rnnkit.{FEATURES['module']}" in run.stdout and "threads" in run.stdout and "blas" in run.stdout
    run = subprocess.run([sys.executable, "-m", "rnnkit", "--version"], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == rk.__version__


def test_the_version_is_written_once():
    from importlib.metadata import version

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert version("rnnkit") == rk.__version__
    assert rk._core.build_info()["version"] == rk.__version__
    with open(os.path.join(root, "pyproject.toml")) as f:
        assert 'dynamic = ["version"]' in f.read()
