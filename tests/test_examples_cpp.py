"""The C++ examples (examples/cpp) as a user's project builds them: rnnkit is
built alone with CMake, installed to a prefix, and the examples are configured
as a project of their own that finds it with find_package(rnnkit). Then each
example runs and is checked against the Python package:

    forecast        the weather model trained by examples/weather_forecast.py, vs rk.load(...).predict
    stream_latency  parseable, sane latency figures, on a model file and on a random in-memory LSTM/GRU
    train_sine      learns (beats the last-value baseline), and rk.load reads back the model it saved

The library's build is the C++ tests' (build/ctest, see tests/cpp_build.py), which
persists, so a second run rebuilds only what changed; the prefix and the
examples' build are temporary.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # the cores are shared: no spinning OpenMP threads
NUMBER = r"(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"


def _run(cmd: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def _check(cmd: list, timeout: float, **kwargs) -> str:
    proc = _run(cmd, timeout, **kwargs)
    assert proc.returncode == 0, (f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                                  f"{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc.stdout


def _find(pattern: str, text: str) -> re.Match:
    match = re.search(pattern, text)
    assert match, f"no line matching {pattern!r} in:\n{text}"
    return match


@dataclass
class Examples:
    prefix: Path  # where rnnkit was installed
    forecast: Path
    stream_latency: Path
    train_sine: Path


@pytest.fixture(scope="module")
def examples(tmp_path_factory, cpp_build: Path) -> Examples:
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed for the C++ examples: pip install '.[test]' brings it"
    ninja = ["-G", "Ninja"] if shutil.which("ninja") else []

    # (a) the library built with CMake alone: the C++ tests' build (tests/cpp_build.py), which
    # is `cmake -S . -B build && cmake --build build` with the tests switched on
    # (b) installed to a prefix
    prefix = tmp_path_factory.mktemp("rnnkit-prefix")
    _check([cmake, "--install", cpp_build, "--prefix", prefix], 300)

    # (c) the examples as a separate project over that prefix; Eigen from cmeel-eigen if it is installed
    cmeel = subprocess.run([sys.executable, "-m", "cmeel", "cmake"], capture_output=True, text=True)
    prefixes = [str(prefix)] + ([cmeel.stdout.strip()] if cmeel.returncode == 0 and cmeel.stdout.strip() else [])
    ex_build = tmp_path_factory.mktemp("examples-build")
    _check([cmake, "-S", ROOT / "examples" / "cpp", "-B", ex_build, *ninja, f"-DCMAKE_PREFIX_PATH={';'.join(prefixes)}",
            "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror"], 600)
    _check([cmake, "--build", ex_build, "--parallel", "2"], 900)
    return Examples(prefix, ex_build / "forecast", ex_build / "stream_latency", ex_build / "train_sine")


@pytest.fixture(scope="module")
def weather_model(tmp_path_factory) -> Path:
    """examples/weather_forecast.py's LSTM (raw deg C in and out), from a quick run (a few seconds)."""
    pytest.importorskip("safetensors")
    out = tmp_path_factory.mktemp("weather")
    _check([sys.executable, ROOT / "examples" / "weather_forecast.py", "--quick", "--cells", "lstm", "--out", out], 300)
    path = out / "weather_lstm_quick.safetensors"
    assert path.is_file()
    return path


def test_installed_prefix_is_a_cmake_package(examples: Examples) -> None:
    assert (examples.prefix / "include" / "rnnkit" / "model.h").is_file()
    assert list(examples.prefix.glob("lib*/cmake/rnnkit/rnnkitConfig.cmake")), "no rnnkitConfig.cmake installed"
    assert list(examples.prefix.glob("lib*/librnnkit.a")) or list(examples.prefix.glob("lib*/rnnkit.lib"))
    for exe in (examples.forecast, examples.stream_latency, examples.train_sine):
        assert exe.is_file(), exe


# ---------------------------------------------------------------------------------- forecast
READINGS = np.array([5.0, 6.1, 7.2, 6.5, 5.9, 5.0, 4.4, 3.9], dtype=np.float32)


def _python_forecast(model_path: Path, readings: np.ndarray) -> float:
    import rnnkit as rk

    return float(rk.load(model_path).predict(readings[-5:].reshape(1, 5, 1))[0, 0])


@pytest.mark.parametrize("source", ["file", "stdin", "dash"])
def test_forecast_matches_python(examples: Examples, weather_model: Path, tmp_path: Path, source: str) -> None:
    # a CSV with a header, the reading in its last column
    csv = "time_hour,origin,temp\n" + "".join(f"2013-12-30T{10 + i:02d}:00Z,EWR,{v:g}\n" for i, v in enumerate(READINGS))
    path = tmp_path / "readings.csv"
    path.write_text(csv)
    args = {"file": [path], "stdin": [], "dash": ["-"]}[source]
    out = _check([examples.forecast, weather_model, *args], 60, input=csv if source != "file" else None)
    match = _find(rf"next hour: {NUMBER} C \(from the last 5 readings: ([^)]*)\)", out)
    assert [float(v) for v in match.group(2).split(",")] == pytest.approx(READINGS[-5:].tolist())
    assert float(match.group(1)) == pytest.approx(_python_forecast(weather_model, READINGS), abs=1e-3)


def test_forecast_reads_one_number_per_line(examples: Examples, weather_model: Path) -> None:
    out = _check([examples.forecast, weather_model], 60, input="\n".join(f"{v:g}" for v in READINGS[-6:]) + "\n")
    value = float(_find(rf"next hour: {NUMBER} C", out).group(1))
    assert value == pytest.approx(_python_forecast(weather_model, READINGS), abs=1e-3)


def _truncated(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes()[:200])


def _flipped_byte(src: Path, dst: Path) -> None:
    data = bytearray(src.read_bytes())
    data[-3] ^= 0x40  # a weight's byte: the sha256 in the metadata no longer matches
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "model, readings, message",
    [
        ("missing", READINGS, "cannot use the model"),
        ("truncated", READINGS, "truncated"),
        ("corrupt", READINGS, "corrupt"),
        ("good", READINGS[:4], "need the last 5 hourly readings, got 4"),
        ("good", None, "is not a temperature"),
    ],
)
def test_forecast_errors(examples: Examples, weather_model: Path, tmp_path: Path, model: str, readings, message: str) -> None:
    path = tmp_path / "model.safetensors"
    if model == "good":
        path = weather_model
    elif model == "truncated":
        _truncated(weather_model, path)
    elif model == "corrupt":
        _flipped_byte(weather_model, path)
    text = "1.0\n2.0\nwarm\n3.0\n4.0\n5.0\n" if readings is None else "".join(f"{v:g}\n" for v in readings)
    proc = _run([examples.forecast, path], 60, input=text)
    assert proc.returncode == 1, proc
    assert message in proc.stderr, proc.stderr
    assert "next hour" not in proc.stdout


# ----------------------------------------------------------------------------- stream_latency
@pytest.mark.parametrize("mode", [["MODEL"], ["--lstm", "16"], ["--gru", "8", "--input", "3", "--batch", "2"]],
                         ids=["weather-model", "lstm-16", "gru-8-batch-2"])
def test_stream_latency(examples: Examples, weather_model: Path, mode: list) -> None:
    args = [weather_model if a == "MODEL" else a for a in mode]
    out = _check([examples.stream_latency, *args, "--steps", "2000", "--warmup", "100"], 120)
    match = _find(rf"per-step latency: median {NUMBER} ns, p99 {NUMBER} ns over (\d+) steps \(batch (\d+)\)", out)
    median, p99 = float(match.group(1)), float(match.group(2))
    assert 0 < median <= p99, out
    assert int(match.group(3)) == 2000
    assert int(match.group(4)) == (2 if "--batch" in mode else 1)
    assert float(_find(rf"steps in blocks of 100: median {NUMBER} ns per step", out).group(1)) > 0
    assert float(_find(rf"throughput: {NUMBER} steps/s", out).group(1)) > 0


def test_stream_latency_usage_errors(examples: Examples) -> None:
    for args in ([], ["--lstm"], ["--lstm", "0"], ["--steps", "10"], ["a.safetensors", "--lstm", "8"]):
        proc = _run([examples.stream_latency, *args], 60)
        assert proc.returncode == 2, (args, proc)
        assert "usage:" in proc.stderr


# --------------------------------------------------------------------------------- train_sine
def test_train_sine_learns_and_python_reads_its_model(examples: Examples, tmp_path: Path) -> None:
    pytest.importorskip("safetensors")
    import rnnkit as rk

    saved = tmp_path / "sine.safetensors"
    out = _check([examples.train_sine, saved], 120)
    final = float(_find(rf"final test mse: {NUMBER}", out).group(1))
    baseline = float(_find(rf"baseline \(last value\) mse: {NUMBER}", out).group(1))
    # about 5e-5 against 0.04 over seeds 0-3; a tenth of that margin
    assert final < baseline / 50, out
    assert _find(r"saved: (.*)", out).group(1).strip() == str(saved)

    check = _find(rf"check window sin\(2\*pi\*t/25\), t = 0\.\.19: prediction {NUMBER} \(reloaded file: {NUMBER}\)", out)
    here, reloaded = float(check.group(1)), float(check.group(2))
    assert here == reloaded  # the C++ training forward and Model::load(saved) agree exactly
    window = np.sin(2 * np.pi * np.arange(20) / 25).astype(np.float32).reshape(1, 20, 1)
    model = rk.load(saved)
    assert model.predict(window)[0, 0] == pytest.approx(here, abs=1e-5)


def test_train_sine_is_deterministic(examples: Examples, tmp_path: Path) -> None:
    runs = [_check([examples.train_sine, tmp_path / f"{i}.safetensors", "--epochs", "2", "--seed", "7"], 60)
            for i in range(2)]
    strip = [re.sub(r"saved: .*", "", r) for r in runs]
    assert strip[0] == strip[1]
    assert (tmp_path / "0.safetensors").read_bytes() == (tmp_path / "1.safetensors").read_bytes()
