"""The embedded runtime against Python: models of every kind saved with rk.save,
run by a C++ program (tests/cpp/runtime_driver.cpp: Model::load, predict, and
Stream::step at every step), must give what Python's predict gives; the same
runtime from Python (model.stream, rk.runtime.load) too.

Oracle: Python's own forward (itself checked against a NumPy reference and
PyTorch elsewhere). Streaming at step t must equal predict on the first t+1
steps: a per-step head's row t, or a pooled head's output with lengths t+1.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import rnnkit as rk

sys.path.insert(0, str(Path(__file__).resolve().parent / "cpp" / "data"))
import make_fixtures  # noqa: E402

B, T, I = 3, 6, 4


def _models() -> dict[str, rk.Module]:
    s = iter(range(100, 200))
    return {
        "rnn_tanh": rk.Sequential(rk.RNN(I, 5, batch_first=True, seed=next(s)), rk.Linear(5, 2, seed=next(s))),
        "rnn_relu_2layers_nobias": rk.Sequential(
            rk.RNN(I, 5, num_layers=2, nonlinearity="relu", bias=False, batch_first=True, seed=next(s)),
            rk.LastStep(), rk.Linear(5, 1, seed=next(s))),
        "lstm_2layers": rk.Sequential(rk.LSTM(I, 6, num_layers=2, batch_first=True, seed=next(s)),
                                      rk.Dropout(0.3), rk.Linear(6, 3, seed=next(s))),
        "lstm_proj_meanpool": rk.Sequential(rk.LSTM(I, 7, proj_size=3, batch_first=True, seed=next(s)),
                                            rk.MeanPool(), rk.Linear(3, 2, seed=next(s))),
        "gru": rk.Sequential(rk.GRU(I, 5, batch_first=True, seed=next(s)), rk.LastStep(),
                             rk.Linear(5, 2, seed=next(s))),
        "gru_reset_before_time_major": rk.Sequential(
            rk.GRU(I, 5, num_layers=2, reset_after=False, seed=next(s)), rk.Linear(5, 2, seed=next(s))),
        "embedding_lstm_last": rk.Sequential(rk.Embedding(13, I, padding_idx=0, seed=next(s)),
                                             rk.LSTM(I, 6, batch_first=True, seed=next(s)), rk.LastStep(),
                                             rk.Linear(6, 4, seed=next(s))),
        "embedding_gru_per_step": rk.Sequential(rk.Embedding(13, I, seed=next(s)),
                                                rk.GRU(I, 6, batch_first=True, seed=next(s)),
                                                rk.Linear(6, 13, seed=next(s))),
        "linear_then_stacked": rk.Sequential(rk.Linear(I, 5, seed=next(s)),
                                             rk.LSTM(5, 4, batch_first=True, seed=next(s)),
                                             rk.GRU(4, 3, batch_first=True, seed=next(s)), rk.Linear(3, 1, seed=next(s))),
        "bidirectional_lstm": rk.Sequential(rk.LSTM(I, 5, bidirectional=True, num_layers=2, batch_first=True,
                                                    seed=next(s)), rk.LastStep(), rk.Linear(10, 2, seed=next(s))),
        "bidirectional_gru_per_step": rk.Sequential(rk.GRU(I, 4, bidirectional=True, batch_first=True, seed=next(s)),
                                                    rk.Linear(8, 2, seed=next(s))),
        "lstm_alone": rk.LSTM(I, 5, batch_first=True, seed=next(s)),
        "gru_alone_time_major": rk.GRU(I, 5, seed=next(s)),
        "float64_lstm": rk.Sequential(rk.LSTM(I, 5, batch_first=True, dtype=np.float64, seed=next(s)),
                                      rk.Linear(5, 2, dtype=np.float64, seed=next(s))),
    }


MODELS = _models()


def _layers(model: rk.Module) -> list:
    return model.layers if isinstance(model, rk.Sequential) else [model]


def _batch_first(model: rk.Module) -> bool:
    rec = [layer for layer in _layers(model) if isinstance(layer, (rk.RNN, rk.LSTM, rk.GRU))]
    return rec[0].batch_first


def _inputs(model: rk.Module, rng: np.random.Generator) -> np.ndarray:
    if isinstance(_layers(model)[0], rk.Embedding):
        return rng.integers(0, 13, (B, T)).astype(np.int64)
    return rng.standard_normal((B, T, I)).astype(np.float32)


def python_predict(model: rk.Module, x: np.ndarray, lengths) -> np.ndarray:
    """Python's prediction on batch-first x, batch-first out."""
    model.eval()
    bf = _batch_first(model)
    xin = x if bf else np.swapaxes(x, 0, 1)
    if isinstance(model, rk.Sequential):
        y = model.predict(xin, lengths=lengths)
    else:
        y = model(xin, lengths=lengths)[0]
    per_step = y.ndim == 3
    return np.asarray(np.swapaxes(y, 0, 1) if per_step and not bf else y, dtype=np.float64)


def python_stream_oracle(model: rk.Module, x: np.ndarray) -> np.ndarray:
    """(B, T, O): what a stream must output at each step t: predict on the first t+1 steps."""
    full = python_predict(model, x, None)
    if full.ndim == 3:
        return full
    return np.stack([python_predict(model, x, np.full(B, t + 1)) for t in range(T)], axis=1)


@pytest.fixture(scope="module")
def driver(cpp_build: Path) -> Path:
    exe = cpp_build / "tests" / "cpp" / "runtime_driver"
    assert exe.is_file(), f"{exe} was not built"
    return exe


@pytest.mark.parametrize("name", list(MODELS))
def test_cpp_program_predicts_and_streams_what_python_predicts(name: str, driver: Path, tmp_path: Path) -> None:
    model = MODELS[name]
    rng = np.random.default_rng(len(name))
    x = _inputs(model, rng)
    lengths = np.array([T, 2, 4], dtype=np.int64)
    rk.save(model, tmp_path / "model.safetensors")
    safetensors.numpy.save_file({"x": x, "lengths": lengths}, str(tmp_path / "in.safetensors"))
    proc = subprocess.run([str(driver), str(tmp_path / "model.safetensors"), str(tmp_path / "in.safetensors"),
                           str(tmp_path / "out.safetensors")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = safetensors.numpy.load_file(str(tmp_path / "out.safetensors"))

    want = python_predict(model, x, lengths)
    assert out["predict"].shape == want.shape
    np.testing.assert_allclose(out["predict"], want, rtol=0, atol=1e-5)
    if "bidirectional" in name:
        assert "stream" not in out  # refused; the refusal itself is tested below
    else:
        np.testing.assert_allclose(out["stream"], python_stream_oracle(model, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in MODELS if "bidirectional" not in n])
def test_python_stream_runs_the_runtime(name: str) -> None:
    model = MODELS[name]
    x = _inputs(model, np.random.default_rng(7))
    s = model.stream(B)
    ys = np.stack([s.step(x[:, t]) for t in range(T)], axis=1)
    want = python_stream_oracle(model, x)
    np.testing.assert_allclose(ys, want, rtol=0, atol=1e-12 if model.dtype == np.float64 else 1e-5)
    assert ys.dtype == model.dtype and s.steps == T
    s.reset()
    np.testing.assert_array_equal(s.step(x[:, 0]), ys[:, 0])


@pytest.mark.parametrize("hidden", [3, 8, 16, 37, 70])
@pytest.mark.parametrize("make", [
    lambda h: rk.RNN(3, h, num_layers=2, batch_first=True, seed=1),
    lambda h: rk.LSTM(3, h, batch_first=True, seed=2),
    lambda h: rk.LSTM(3, h, proj_size=min(5, h - 1), batch_first=True, seed=3),
    lambda h: rk.GRU(3, h, num_layers=2, batch_first=True, seed=4),
    lambda h: rk.GRU(3, h, reset_after=False, batch_first=True, seed=5),
    lambda h: rk.GRU(3, h, bias=False, batch_first=True, seed=6),
], ids=["rnn_2layers", "lstm", "lstm_proj", "gru_2layers", "gru_reset_before", "gru_nobias"])
def test_stream_matches_the_forward_at_simd_widths(make, hidden: int) -> None:
    """The streaming step's fused products (one pass over [h, 1, x] with the biases
    folded in, GRU's candidate in two parts), in groups of units whose registers are
    a quarter, half or whole SIMD packet wide (3, 8, 16), several of them with a
    partial last group (37, 70), every row of a batch of 2, against the layer's
    forward."""
    layer = make(hidden)
    x = np.random.default_rng(hidden).standard_normal((2, 9, 3)).astype(np.float32)
    want = layer(x)[0]
    s = layer.stream(2)
    got = np.stack([s.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("hidden", [8, 37])
def test_gru_stream_keeps_the_candidates_parts_apart(hidden: int) -> None:
    """The streaming GRU's n_h takes no x rows and n_x no h rows (not even as zero
    weights): an infinite input saturates the gates, as in the forward, instead of
    turning n_h into inf·0 = NaN."""
    layer = rk.GRU(1, hidden, batch_first=True, seed=7)
    x = np.random.default_rng(0).standard_normal((1, 6, 1)).astype(np.float32)
    x[0, 2, 0], x[0, 4, 0] = np.inf, -np.inf
    want = layer(x)[0]
    assert np.isfinite(want).all()
    s = layer.stream(1)
    got = np.stack([s.step(x[:, t]) for t in range(x.shape[1])], axis=1)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


def test_stream_is_a_snapshot_and_unbatched_steps_work() -> None:
    model = rk.Sequential(rk.LSTM(1, 4, batch_first=True, seed=1), rk.Linear(4, 1, seed=2))
    s = model.stream()  # batch 1
    y0 = s.step(np.array([0.5], dtype=np.float32))  # unbatched (input_size,) -> (output_size,)
    assert y0.shape == (1,)
    for p in model.parameters().values():  # training on after stream(): the stream keeps its weights
        p[...] = 0
    s.reset()
    np.testing.assert_array_equal(s.step(np.array([[0.5]])), y0[None])


def test_stream_refuses_bad_input_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="bidirectional"):
        MODELS["bidirectional_lstm"].stream(1)
    with pytest.raises(ValueError, match="batch"):
        MODELS["gru"].stream(0)
    s = MODELS["gru"].stream(2)
    with pytest.raises(ValueError, match=r"x_t has shape \(2, 3\), expected \(batch, input_size\) = \(2, 4\)"):
        s.step(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="x_t must be real numbers"):
        s.step(np.array([["a"] * 4] * 2))
    e = MODELS["embedding_lstm_last"].stream(2)
    with pytest.raises(TypeError, match="token ids"):
        e.step(np.zeros(2, np.float32))
    e.step(np.array([1, 2]))
    with pytest.raises(ValueError, match="out of range"):
        e.step(np.array([1, 13]))
    assert e.steps == 1  # the failed step changed nothing


def test_runtime_load_reads_files_and_refuses_damaged_ones(tmp_path: Path) -> None:
    model = MODELS["lstm_2layers"]
    path = tmp_path / "m.safetensors"
    rk.save(model, path)
    r = rk.runtime.load(path)
    x = _inputs(model, np.random.default_rng(0))
    np.testing.assert_allclose(r.predict(x), python_predict(model, x, None), atol=1e-5)
    assert r.num_parameters == model.num_parameters() and r.per_step and r.can_stream
    with pytest.raises(FileNotFoundError):
        rk.runtime.load(tmp_path / "missing.safetensors")
    data = path.read_bytes()
    for cut in (0, 7, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(rk.runtime.ModelFileError, match="truncated|corrupt"):
            rk.runtime.load(tmp_path / "cut.safetensors")
    flipped = bytearray(data)
    flipped[-5] ^= 1
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="sha256"):
        rk.runtime.load(tmp_path / "flip.safetensors")
    with pytest.raises(ValueError, match=r"x has shape \(3, 6\)"):
        r.predict(np.zeros((3, 6), np.float32))


@pytest.mark.parametrize("name", list(make_fixtures.fixtures()))
def test_cpp_fixtures_still_match_rk_save(name: str) -> None:
    """tests/cpp/data: the files the C++ tests load are what rk.save and predict give today."""
    data = Path(make_fixtures.__file__).parent
    model = rk.load(data / f"{name}.safetensors")
    fresh, _ = make_fixtures.fixtures()[name]
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
    exp = safetensors.numpy.load_file(str(data / f"{name}.expected.safetensors"))
    np.testing.assert_allclose(make_fixtures.expected(model, exp["x"], exp["lengths"]), exp["y"], atol=1e-6)
