"""Reduced-precision inference, rk.quantize(model, "int8" | "bf16").

Oracles:
  1. the scheme written out in NumPy (int8: per-row symmetric scales for the weights' rows and for
     each row of activations, exact integer sums; bf16: round to nearest even, float32 sums), as
     every product of tests/reference.py's forward: rnnkit's quantized layers must compute it, for
     every cell variant, layers, bidirectional and lengths;
  2. the float32 model: the quantized one stays close to it, and is not it (the weights really are
     quantized);
  3. rnnkit itself across its paths: the C++ runtime (a saved file, from_model, the streaming
     step) and every instruction-set level's kernels (RNNKIT_ISA) give the Python layers'
     outputs bit for bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import reference
import rnnkit as rk
from reference import CELLS, spec_for

PRECISIONS = ("int8", "bf16")


# ============================================================================= the scheme in NumPy
def quantize_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of a (float32) as int8 values and a scale: s = max|row| / 127, q = round(row / s)."""
    a = np.asarray(a, dtype=np.float32)
    amax = np.abs(a).max(axis=1)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, np.float32(1)), np.float32(0))
    q = np.rint(a * inv.astype(np.float32)[:, None]).astype(np.int64)
    return q, (amax / np.float32(127)).astype(np.float32)


def to_bf16(a: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 (ties to even), as float32."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def int8_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    qa, sa = quantize_rows(a)
    qw, sw = quantize_rows(w)
    return (qa @ qw.T).astype(np.float32) * (sa[:, None] * sw[None, :])


def bf16_product(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    return to_bf16(a).astype(np.float64) @ to_bf16(w).astype(np.float64).T


PRODUCT = {"int8": int8_product, "bf16": bf16_product}


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# ============================================================================= one product
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("rows,inputs,outputs", [(1, 1, 1), (3, 7, 33), (70, 64, 130), (5, 200, 10)])
def test_a_linear_layer_is_the_scheme(precision, rows, inputs, outputs):
    rng = rng_for(precision, rows, inputs, outputs)
    lin = rk.Linear(inputs, outputs, seed=1)
    x = rng.standard_normal((rows, inputs)).astype(np.float32)
    x[0] = 0.0  # a row of zeros: scale 0
    q = rk.quantize(lin, precision)
    want = PRODUCT[precision](x, lin.parameters()["weight"]) + lin.parameters()["bias"]
    np.testing.assert_allclose(q(x), want, rtol=2e-6, atol=2e-6)
    if rows > 1:  # (one row of zeros is exact in any precision)
        assert np.abs(q(x) - lin.eval()(x)).max() > 1e-6  # quantized, not float32


# ============================================================================= recurrent layers
CASES = [(cell, kw) for cell in CELLS for kw in ({}, {"num_layers": 2, "bidirectional": True})]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("cell,kw", CASES, ids=[f"{c}-{'deep' if kw else 'one'}" for c, kw in CASES])
def test_recurrent_layers_are_the_scheme(precision, cell, kw):
    spec = spec_for(cell, input_size=5, hidden_size=12, **kw)
    rng = rng_for(precision, cell, str(kw))
    params = reference.init_params(spec, rng, scale=0.4)
    m = getattr(rk, spec.mode)(spec.input_size, spec.hidden_size, **spec.kwargs(), seed=0)
    m.load_state_dict({k: v.astype(np.float32) for k, v in params.items()})
    T, B = 7, 4
    x = rng.standard_normal((T, B, 5)).astype(np.float32)
    lengths = np.array([7, 3, 5, 1])
    q = rk.quantize(m, precision)
    assert q.precision == precision and m.precision == "float32"
    qparams = {k: v.astype(np.float64) for k, v in q.parameters().items()}  # the stored matrices' values
    out_q = q(x, lengths=lengths)[0]
    want, _, _ = reference.forward(spec, qparams, x, lengths=lengths, mm=PRODUCT[precision])
    real = out_q != 0  # not the padding past each length
    err = np.abs(out_q - want)[real]
    # Float32 against the reference's float64 activations rounds a value to the neighbouring int8
    # or bfloat16 level now and then (a step of max|a|/127, or 2^-8 of it), and the recurrence
    # carries that along its sequence; the typical element agrees to float32's rounding.
    assert np.median(err) < 1e-6 and err.max() < 5e-3, (np.median(err), err.max())
    gap = np.abs(out_q - m.eval()(x, lengths=lengths)[0])[real]
    assert np.median(gap) > 2e-5 and gap.max() < 0.1, (np.median(gap), gap.max())  # quantized, and close


@pytest.mark.parametrize("precision", PRECISIONS)
def test_states_h0_c0_and_h_n_as_the_float_layer(precision):
    rng = rng_for("states", precision)
    m = rk.LSTM(4, 10, num_layers=2, batch_first=True, seed=2)
    q = rk.quantize(m, precision)
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    h0 = rng.standard_normal((2, 3, 10)).astype(np.float32) * 0.3
    c0 = rng.standard_normal((2, 3, 10)).astype(np.float32) * 0.3
    out, (h, c) = q(x, (h0, c0))
    np.testing.assert_array_equal(h[1], out[:, -1])
    out_f, (h_f, c_f) = m.eval()(x, (h0, c0))
    assert np.abs(h - h_f).max() < 0.05 and np.abs(c - c_f).max() < 0.05
    # unbatched, as the float layer takes it
    out1, _ = q(x[0], (h0[:, 0], c0[:, 0]))
    np.testing.assert_allclose(out1, out[0], rtol=1e-6, atol=1e-7)


# ============================================================================= models, files, runtime
def sentiment_like(seed=0) -> rk.Sequential:
    return rk.Sequential(rk.Embedding(50, 8, seed=seed), rk.LSTM(8, 16, batch_first=True, seed=seed),
                         rk.LastStep(), rk.Linear(16, 3, seed=seed))


def forecaster(seed=0) -> rk.Sequential:
    return rk.Sequential(rk.GRU(3, 12, num_layers=2, batch_first=True, seed=seed), rk.Linear(12, 2, seed=seed))


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("make", [sentiment_like, forecaster])
def test_save_load_runtime_and_stream_give_the_same_outputs(tmp_path, precision, make):
    model = make()
    q = rk.quantize(model, precision)
    rng = rng_for("files", precision, make.__name__)
    if make is sentiment_like:
        x = rng.integers(0, 50, size=(5, 9))
    else:
        x = rng.standard_normal((5, 9, 3)).astype(np.float32)
    lengths = np.array([9, 4, 9, 2, 7])
    y = q.predict(x, lengths=lengths)
    path = tmp_path / "q.safetensors"
    rk.save(q, path)
    q2 = rk.load(path)
    assert repr(q2) == repr(q) and q2.get_config() == q.get_config()
    np.testing.assert_array_equal(q2.predict(x, lengths=lengths), y)
    for k, v in q.state_dict().items():
        np.testing.assert_array_equal(q2.state_dict()[k], v)
        assert q2.state_dict()[k].dtype == v.dtype
    runtime = rk.runtime.load(path)
    np.testing.assert_array_equal(runtime.predict(x, lengths=lengths), y)
    np.testing.assert_array_equal(rk.runtime.from_model(q).predict(x, lengths=lengths), y)
    # streaming: step by step, what predict gives at every step (no lengths)
    full = q.predict(x)
    s = q.stream(5)
    steps = [s.step(x[:, t]) for t in range(x.shape[1])]
    if make is sentiment_like:  # LastStep: the step's output is the sequence so far's
        np.testing.assert_array_equal(steps[-1], full)
    else:
        np.testing.assert_array_equal(np.stack(steps, 1), full)


def test_the_file_stores_int8_and_bf16_and_is_small(tmp_path):
    model = rk.Sequential(rk.LSTM(128, 128, batch_first=True, seed=0), rk.Linear(128, 4, seed=0))
    rk.save(model, tmp_path / "f32.safetensors")
    sizes = {"float32": (tmp_path / "f32.safetensors").stat().st_size}
    for precision, code in (("int8", "I8"), ("bf16", "BF16")):
        path = tmp_path / f"{precision}.safetensors"
        rk.save(rk.quantize(model, precision), path)
        sizes[precision] = path.stat().st_size
        data = path.read_bytes()
        header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
        assert header["0.weight_ih_l0"]["dtype"] == code and header["1.weight"]["dtype"] == code
        assert header["0.bias_ih_l0"]["dtype"] == "F32"
        assert ("0.weight_hh_l0_scale" in header) == (precision == "int8")
        assert header["__metadata__"]["format_version"] == "3"
    assert sizes["int8"] <= 0.3 * sizes["float32"], sizes
    assert sizes["bf16"] <= 0.55 * sizes["float32"], sizes


# ============================================================================= what a user sees
def test_repr_summary_and_state_dict_say_the_precision():
    q = rk.quantize(forecaster(), "int8")
    assert "precision='int8'" in repr(q.layers[0]) and "precision='int8'" in repr(q.layers[1])
    assert q.summary(print_fn=None).count("precision='int8'") == 2
    sd = q.state_dict()
    assert sd["0.weight_ih_l0"].dtype == np.int8 and sd["0.weight_ih_l0_scale"].dtype == np.float32
    assert sd["0.bias_ih_l0"].dtype == np.float32 and sd["1.weight"].dtype == np.int8
    b = rk.quantize(forecaster(), "bf16").state_dict()
    assert b["0.weight_hh_l1"].dtype == np.uint16 and "0.weight_hh_l1_scale" not in b
    # parameters() are the stored values as float32
    p = q.parameters()
    np.testing.assert_array_equal(p["0.weight_ih_l0"], sd["0.weight_ih_l0"] * sd["0.weight_ih_l0_scale"][:, None])


def test_quantized_models_refuse_to_train():
    q = rk.quantize(forecaster(), "int8")
    with pytest.raises(RuntimeError, match="int8 weights: it runs inference only"):
        q.train()
    assert not q.training and not any(layer.training for layer in q.layers)
    with pytest.raises(RuntimeError, match="runs inference only"):
        q.layers[0].train()
    x = np.zeros((2, 4, 3), np.float32)
    trainer = rk.Trainer(q, "mse", rk.SGD(lr=0.1))
    with pytest.raises(RuntimeError, match="runs inference only"):
        trainer.fit(x, np.zeros((2, 4, 2), np.float32), epochs=1)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="precision must be one of 'int8', 'bf16', got str 'int4'"):
        rk.quantize(forecaster(), "int4")
    with pytest.raises(ValueError, match="needs a float32 model, got float64"):
        rk.quantize(rk.GRU(3, 4, dtype=np.float64), "int8")
    with pytest.raises(ValueError, match="has int8 weights already"):
        rk.quantize(rk.quantize(forecaster(), "int8"), "bf16")
    with pytest.raises(TypeError, match="model must be an rnnkit"):
        rk.quantize("LSTM", "int8")


def test_a_bad_state_dict_leaves_the_quantized_model_as_it_was():
    q = rk.quantize(forecaster(), "int8")
    before = q.state_dict()
    bad = dict(before)
    bad["1.weight"] = bad["1.weight"].astype(np.float32)  # not int8
    with pytest.raises(ValueError, match="'weight' has dtype float32, expected int8"):
        q.load_state_dict(bad)
    bad = dict(before)
    del bad["0.weight_hh_l1_scale"]
    with pytest.raises(ValueError, match="missing key 'weight_hh_l1_scale'"):
        q.load_state_dict(bad)
    for k, v in q.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("edit,message", [
    (lambda t: t["0.weight_ih_l0"].__setitem__((0, 0), -128), "has the value -128 (element 0): int8 weights are in"),
    (lambda t: t["0.weight_hh_l0_scale"].__setitem__(3, -1.0), "has a negative scale (element 3)"),
])
def test_both_loaders_refuse_bad_int8_tensors_alike(tmp_path, edit, message):
    q = rk.quantize(forecaster(), "int8")
    tensors = q.state_dict()
    edit(tensors)
    arch = json.dumps({"class": "Sequential", "config": q.get_config()})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rk.runtime._runtime_class(np.float32).from_tensors(arch, tensors)
    from rnnkit import io

    infos = {k: (io._CODES[v.dtype], v.shape) for k, v in tensors.items()}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        io._build(json.loads(arch), infos, tensors)


def test_a_float64_runtime_refuses_reduced_precision(tmp_path):
    path = tmp_path / "q.safetensors"
    rk.save(rk.quantize(forecaster(), "bf16"), path)
    with pytest.raises(ValueError, match="bf16 weights run in float32: load the model as float32"):
        rk.runtime.load(path, dtype=np.float64)


# ============================================================================= every kernel
KERNEL_RUN = textwrap.dedent("""
    import sys, numpy as np, rnnkit as rk
    f = rk.cpu_features()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 13, 6)).astype(np.float32)
    out = []
    for precision in ("int8", "bf16"):
        for m in (rk.LSTM(6, 40, num_layers=2, batch_first=True, seed=1, proj_size=20),
                  rk.GRU(6, 36, batch_first=True, bidirectional=True, seed=2, reset_after=False),
                  rk.RNN(6, 70, batch_first=True, seed=3)):
            out.append(rk.quantize(m, precision)(x, lengths=np.arange(9) + 5)[0])
    np.save(sys.argv[1], np.concatenate([o.reshape(-1) for o in out]))
    print(f["chosen"], f["int8_kernel"], f["bf16_kernel"])
""")


def test_every_instruction_set_level_gives_the_same_outputs(tmp_path):
    results, kernels = {}, {}
    for level in ("", "avx2", "baseline"):
        env = {**os.environ, "RNNKIT_ISA": level}
        path = tmp_path / f"{level or 'best'}.npy"
        run = subprocess.run([sys.executable, "-c", KERNEL_RUN, str(path)], env=env, capture_output=True, text=True,
                             check=True)
        kernels[level] = run.stdout.split()
        results[level] = np.load(path)
    assert kernels["baseline"] == ["baseline", "portable", "portable"]
    best = rk.cpu_features()
    if best["avx2"] and best["fma"]:
        assert kernels["avx2"] == ["avx2", "avx2", "avx2"]
    # Each level is a copy of the whole core compiled for it: the float32 work around the
    # products (gates, activations' scales) rounds differently, so an activation can land on
    # the other side of a rounding step; the kernels themselves give the same sums bit for
    # bit (tests/cpp/test_lowp.cpp, once per level).
    for level in ("avx2", "baseline"):
        np.testing.assert_allclose(results[level], results[""], rtol=1e-2, atol=1e-2,
                                   err_msg=f"RNNKIT_ISA={level} ({kernels[level]})")
