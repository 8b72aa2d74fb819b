"""The peephole LSTM, rk.LSTM(..., peepholes=True): ONNX's LSTM with its P input.

    i   = σ(W_ii x + b_ii + W_hi h_{t-1} + b_hi + p_i ⊙ c_{t-1})
    f   = σ(W_if x + b_if + W_hf h_{t-1} + b_hf + p_f ⊙ c_{t-1})
    g   = tanh(W_ig x + b_ig + W_hg h_{t-1} + b_hg)
    c_t = f ⊙ c_{t-1} + i ⊙ g
    o   = σ(W_io x + b_io + W_ho h_{t-1} + b_ho + p_o ⊙ c_t)
    h_t = o ⊙ tanh(c_t)            [ W_hr (o ⊙ tanh(c_t)) with proj_size P > 0 ]

Shape letters: T steps, B batch, I input size, H hidden size, D directions.  Each layer and
direction has weight_peephole_l{k}[_reverse] (3, H), rows p_i, p_f, p_o, last after
weight_ih, weight_hh, bias_ih, bias_hh, weight_hr; the gate rows stay PyTorch's i, f, g, o.

Oracles:
  1. ONNX's own reference implementation (onnx.reference.ReferenceEvaluator, float64; it ignores
     sequence_lens, so lengths are checked one truncated sequence at a time) and ONNX Runtime
     (float32 only, with sequence_lens) check tests/reference.py's peephole forward;
  2. tests/reference.py checks rnnkit's forward (and ONNX checks it directly too);
  3. central finite differences in float64 check every gradient of rnnkit's backward;
  4. Python's forward checks the saved model in the C++ runtime (load, from_model, stream).
ONNX's gate blocks are i, o, f, c (W, R and B = [Wb, Rb] of 8H) and its P rows i, o, f.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import reference
from reference import spec_for
from test_forward import compare, run_both
from test_gradcheck import Problem, assert_grad, numerical_grad

T, B = 5, 3
DTYPES = {"f64": np.float64, "f32": np.float32}


def peephole_spec(**kw) -> reference.Spec:
    return spec_for("lstm_peephole", **kw)


def peephole_keys(params) -> list[str]:
    return [k for k in params if "weight_peephole" in k]


# ============================================================================= ONNX
IOFC = [0, 3, 1, 2]  # ONNX's gate blocks i, o, f, c taken from PyTorch's i, f, g, o
P_IOF = [0, 2, 1]  # ONNX's peephole rows i, o, f taken from rnnkit's p_i, p_f, p_o


def onnx_gates(w: np.ndarray, H: int) -> np.ndarray:
    return np.concatenate([w[k * H : (k + 1) * H] for k in IOFC])


def onnx_feed(spec, params, x, h0=None, c0=None, lengths=None, dtype=np.float64) -> dict[str, np.ndarray]:
    """The inputs of one ONNX LSTM node for layer 0 of a time-major (T, B, I) problem."""
    H = spec.hidden_size
    sfx = ["_l0", "_l0_reverse"][: spec.num_directions]
    feed = {
        "X": x,
        "W": np.stack([onnx_gates(params["weight_ih" + s], H) for s in sfx]),
        "R": np.stack([onnx_gates(params["weight_hh" + s], H) for s in sfx]),
        "P": np.stack([params["weight_peephole" + s][P_IOF].reshape(-1) for s in sfx]),
    }
    if spec.bias:
        feed["B"] = np.stack(
            [np.concatenate([onnx_gates(params["bias_ih" + s], H), onnx_gates(params["bias_hh" + s], H)]) for s in sfx]
        )
    if h0 is not None:
        feed["initial_h"], feed["initial_c"] = h0, c0
    feed = {k: np.asarray(v, dtype=dtype) for k, v in feed.items()}
    if lengths is not None:
        feed["sequence_lens"] = np.asarray(lengths, dtype=np.int32)
    return feed


def onnx_model(feed: dict[str, np.ndarray], H: int, D: int):
    """A one-node model: ONNX LSTM (opset 14) over the inputs present in feed."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    node = helper.make_node(
        "LSTM", [n if n in feed else "" for n in order], ["Y", "Y_h", "Y_c"],
        hidden_size=H, direction="bidirectional" if D == 2 else "forward",
    )
    elem = helper.np_dtype_to_tensor_dtype(feed["X"].dtype)
    Tx, Bx = feed["X"].shape[:2]
    inputs = [
        helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(feed[n].dtype), feed[n].shape)
        for n in order
        if n in feed
    ]
    outputs = [
        helper.make_tensor_value_info("Y", elem, [Tx, D, Bx, H]),
        helper.make_tensor_value_info("Y_h", elem, [D, Bx, H]),
        helper.make_tensor_value_info("Y_c", elem, [D, Bx, H]),
    ]
    graph = helper.make_graph([node], "peephole_lstm", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


def from_onnx(Y, Y_h, Y_c):
    """ONNX's Y (T, D, B, H) as PyTorch's out (T, B, D*H), forward then reverse; Y_h, Y_c as h_n, c_n."""
    Tx, D, Bx, H = Y.shape
    return Y.transpose(0, 2, 1, 3).reshape(Tx, Bx, D * H), Y_h, Y_c


def run_onnx_reference(spec, params, x, h0=None, c0=None):
    """onnx.reference.ReferenceEvaluator in float64 (no sequence_lens: it ignores them)."""
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    feed = onnx_feed(spec, params, x, h0, c0)
    sess = ReferenceEvaluator(onnx_model(feed, spec.hidden_size, spec.num_directions))
    return from_onnx(*sess.run(None, feed))


def run_onnxruntime(spec, params, x, h0=None, c0=None, lengths=None):
    """ONNX Runtime's CPU LSTM, float32 (it has no float64 LSTM), with sequence_lens."""
    ort = pytest.importorskip("onnxruntime")
    feed = onnx_feed(spec, params, x, h0, c0, lengths, dtype=np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    model = onnx_model(feed, spec.hidden_size, spec.num_directions)
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return from_onnx(*sess.run(None, feed))


def f32(a):
    """The float64 values of a after rounding to float32 (what a float32 computation sees)."""
    return None if a is None else np.asarray(a).astype(np.float32).astype(np.float64)


def onnx_problem(rng, make_inputs, bidirectional, state, bias=True, lengths=None):
    spec = peephole_spec(bidirectional=bidirectional, bias=bias)
    params = reference.init_params(spec, rng)
    inp = make_inputs(spec, rng, T, B, state=state, lengths=lengths)
    return spec, params, inp


STATE = pytest.mark.parametrize("state", [False, True], ids=["no_state", "h0_c0"])
DIRECTIONS = pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])


# ----------------------------------------------------------------------------- the oracle itself
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@STATE
@DIRECTIONS
def test_reference_matches_onnx_reference_evaluator(bidirectional, state, bias, rng, make_inputs):
    spec, params, inp = onnx_problem(rng, make_inputs, bidirectional, state, bias)
    want = run_onnx_reference(spec, params, inp["x"], inp["h0"], inp["c0"])
    got = reference.forward(spec, params, inp["x"], inp["h0"], inp["c0"])
    for name, a, b in zip(["out", "h_n", "c_n"], got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12, err_msg=name)
    # the peepholes matter: the same weights without them give another result
    plain = dataclasses.replace(spec, peepholes=False)
    no_peep = reference.forward(plain, params, inp["x"], inp["h0"], inp["c0"])
    assert np.abs(no_peep[0] - got[0]).max() > 1e-3


@STATE
@DIRECTIONS
def test_reference_lengths_match_onnx_one_sequence_at_a_time(bidirectional, state, rng, make_inputs):
    """Packed-sequence semantics against ONNX's reference run on each sequence alone, cut to
    its length: out there, 0 past it, and h_n, c_n at its last step (the reverse direction
    starts at the last valid step)."""
    spec, params, inp = onnx_problem(rng, make_inputs, bidirectional, state, lengths=[T, 1, 3])
    x, h0, c0, lengths = inp["x"], inp["h0"], inp["c0"], inp["lengths"]
    out, h_n, c_n = reference.forward(spec, params, x, h0, c0, lengths)
    for b, n in enumerate(lengths):
        one = run_onnx_reference(
            spec, params, x[:n, b : b + 1],
            None if h0 is None else h0[:, b : b + 1], None if c0 is None else c0[:, b : b + 1],
        )
        np.testing.assert_allclose(out[:n, b : b + 1], one[0], rtol=0, atol=1e-12, err_msg=f"out, sequence {b}")
        assert np.all(out[n:, b] == 0.0)
        np.testing.assert_allclose(h_n[:, b : b + 1], one[1], rtol=0, atol=1e-12, err_msg=f"h_n, sequence {b}")
        np.testing.assert_allclose(c_n[:, b : b + 1], one[2], rtol=0, atol=1e-12, err_msg=f"c_n, sequence {b}")


@pytest.mark.parametrize("lengths", [None, [T, 1, 3]], ids=["full", "sequence_lens"])
@STATE
@DIRECTIONS
def test_reference_matches_onnxruntime(bidirectional, state, lengths, rng, make_inputs):
    """ONNX Runtime in float32, sequence_lens included, against the reference on the same
    float32-rounded values."""
    spec, params, inp = onnx_problem(rng, make_inputs, bidirectional, state, lengths=lengths)
    params32 = {k: f32(v) for k, v in params.items()}
    x, h0, c0 = f32(inp["x"]), f32(inp["h0"]), f32(inp["c0"])
    want = run_onnxruntime(spec, params32, x, h0, c0, inp["lengths"])
    got = reference.forward(spec, params32, x, h0, c0, inp["lengths"])
    for name, a, b in zip(["out", "h_n", "c_n"], got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


# ----------------------------------------------------------------------------- rnnkit against ONNX
def rk_peephole(rk, spec, params, dtype):
    m = rk.LSTM(spec.input_size, spec.hidden_size, dtype=dtype, seed=0, **spec.kwargs())
    m.load_state_dict(params)
    return m


@STATE
@DIRECTIONS
def test_rnnkit_matches_onnx_reference_evaluator(rk, bidirectional, state, rng, make_inputs, run_forward):
    spec, params, inp = onnx_problem(rng, make_inputs, bidirectional, state)
    m = rk_peephole(rk, spec, params, np.float64)
    got = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    want = run_onnx_reference(spec, params, inp["x"], inp["h0"], inp["c0"])
    for name, a, b in zip(["out", "h_n", "c_n"], got, want):
        assert a.dtype == np.float64 and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


@STATE
@DIRECTIONS
def test_rnnkit_float32_matches_onnxruntime_with_sequence_lens(rk, bidirectional, state, rng, make_inputs,
                                                               run_forward):
    spec, params, inp = onnx_problem(rng, make_inputs, bidirectional, state, lengths=[T, 1, 3])
    m = rk_peephole(rk, spec, params, np.float32)
    got = run_forward(m, spec, inp["x"].astype(np.float32), f32(inp["h0"]), f32(inp["c0"]), inp["lengths"])
    want = run_onnxruntime(spec, {k: f32(v) for k, v in params.items()}, f32(inp["x"]), f32(inp["h0"]),
                           f32(inp["c0"]), inp["lengths"])
    for name, a, b in zip(["out", "h_n", "c_n"], got, want):
        assert a.dtype == np.float32 and a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)


# ============================================================================= rnnkit against the reference
# name -> (Spec overrides, make_inputs keyword arguments)
FORWARD = {
    "lengths": ({}, dict(state=False, lengths="random")),
    "bi_lengths_h0": (dict(bidirectional=True), dict(state=True, lengths="random")),
    "L2_bi_h0": (dict(num_layers=2, bidirectional=True), dict(state=True)),
    "proj_h0": (dict(proj_size=2), dict(state=True)),
    "proj_L2_bi_lengths_h0_bf": (
        dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True),
        dict(state=True, lengths="random"),
    ),
    "batch_first_h0": (dict(batch_first=True), dict(state=True)),
    "unbatched_L2_bi": (dict(num_layers=2, bidirectional=True), dict(state=True, unbatched=True)),
    "nobias_L2_lengths": (dict(num_layers=2, bias=False), dict(state=True, lengths="random")),
}


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("option", list(FORWARD))
def test_forward_matches_reference(option, dtype, rng, make_module, make_inputs, run_forward):
    overrides, input_kw = FORWARD[option]
    spec = peephole_spec(**overrides)
    m = make_module(spec, dtype, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, **input_kw)
    got, want = run_both(spec, m, inp, dtype, run_forward)
    compare(spec, got, want, dtype)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_zero_peepholes_are_the_plain_lstm(rk, dtype, rng, make_module, make_inputs, run_forward, run_backward):
    """weight_peephole = 0 gives the plain LSTM's forward and backward, and the peepholes'
    own gradients are still there (non-zero: c feeds i, f and o)."""
    spec = peephole_spec(num_layers=2, bidirectional=True, proj_size=2)
    plain = dataclasses.replace(spec, peepholes=False)
    params = reference.init_params(spec, rng)
    for k in peephole_keys(params):
        params[k][...] = 0.0
    m = make_module(spec, dtype, params=params)
    m0 = make_module(plain, dtype, params={k: v for k, v in params.items() if k not in peephole_keys(params)})
    inp = make_inputs(spec, rng, T, B, state=True, lengths="random")
    tol = 1e-12 if dtype == np.float64 else 2e-5  # float32: the two kernels may round differently
    got = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    want = run_forward(m0, plain, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    w = [rng.standard_normal(a.shape) for a in got]
    for a, b in zip(run_backward(m, spec, *w), run_backward(m0, plain, *w)):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    grads, grads0 = m.grads(), m0.grads()
    assert set(grads) == set(grads0) | set(peephole_keys(params))
    for k, g in grads0.items():
        np.testing.assert_allclose(grads[k], g, rtol=tol, atol=tol, err_msg=k)
    for k in peephole_keys(params):
        assert np.abs(grads[k]).max() > 1e-3, k


# ============================================================================= gradients
# name -> (Spec overrides, make_inputs keyword arguments, loss also on h_n/c_n)
GRADIENTS = {
    "L1_h0": (dict(), dict(state=True), True),
    "lengths_bi": (dict(bidirectional=True), dict(state=True, lengths="random"), True),
    "proj_lengths_L2_bi_bf": (
        dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True),
        dict(state=True, lengths="random"),
        True,
    ),
    "proj_unbatched": (dict(proj_size=2), dict(state=True, unbatched=True), True),
    "nobias_L2_no_state_no_grad_h": (dict(num_layers=2, bias=False), dict(state=False), False),
}


@pytest.mark.parametrize("option", list(GRADIENTS))
def test_gradients_match_finite_differences(option, rng, make_module, make_inputs, run_forward, run_backward):
    """Every entry of grad_x, grad_h0, grad_c0 and of every parameter's gradient, the
    peephole weights' included, against central differences (float64, ε = 1e-6)."""
    overrides, input_kw, grad_state = GRADIENTS[option]
    spec = peephole_spec(input_size=3, hidden_size=3, **overrides)
    inp = make_inputs(spec, rng, 4, B, **input_kw)
    pb = Problem(spec, inp, rng, make_module, run_forward, run_backward, grad_state)
    gx, gh0, gc0, grads = pb.analytic()

    assert_grad(gx, numerical_grad(inp["x"], pb.loss), "grad_x")
    if inp["h0"] is not None:
        assert_grad(gh0, numerical_grad(inp["h0"], pb.loss), "grad_h0")
        assert_grad(gc0, numerical_grad(inp["c0"], pb.loss), "grad_c0")
    params = pb.m.parameters()
    assert set(grads) == set(params) == set(spec.param_shapes())
    assert len(peephole_keys(params)) == spec.num_layers * spec.num_directions
    for k, p in params.items():
        assert_grad(grads[k], numerical_grad(p, pb.loss), f"grad {k}")
    for k in peephole_keys(params):
        assert np.abs(grads[k]).max() > 1e-4, k  # the peepholes are not a dead branch


# ============================================================================= Sequential, files, the C++ runtime
I, V = 4, 13


def _models(rk, dtype) -> dict:
    """name -> a model whose input is batch-first (token ids (B, T) or features (B, T, I))."""
    return {
        "embedding_lstm_laststep": rk.Sequential(
            rk.Embedding(V, I, padding_idx=0, dtype=dtype, seed=1),
            rk.LSTM(I, 5, batch_first=True, peepholes=True, dtype=dtype, seed=2),
            rk.LastStep(),
            rk.Linear(5, 3, dtype=dtype, seed=3),
        ),
        "lstm_proj_L2_per_step": rk.Sequential(
            rk.LSTM(I, 6, num_layers=2, proj_size=3, batch_first=True, peepholes=True, dtype=dtype, seed=4),
            rk.Linear(3, 2, dtype=dtype, seed=5),
        ),
        "linear_lstm_nobias_meanpool": rk.Sequential(
            rk.Linear(I, 5, dtype=dtype, seed=6),
            rk.LSTM(5, 4, bias=False, batch_first=True, peepholes=True, dtype=dtype, seed=7),
            rk.MeanPool(),
            rk.Linear(4, 2, dtype=dtype, seed=8),
        ),
        "bidirectional_laststep": rk.Sequential(
            rk.LSTM(I, 4, bidirectional=True, batch_first=True, peepholes=True, dtype=dtype, seed=9),
            rk.LastStep(),
            rk.Linear(8, 2, dtype=dtype, seed=10),
        ),
        "lstm_alone_time_major": rk.LSTM(I, 5, peepholes=True, dtype=dtype, seed=11),
    }


MODEL_NAMES = ["embedding_lstm_laststep", "lstm_proj_L2_per_step", "linear_lstm_nobias_meanpool",
               "bidirectional_laststep", "lstm_alone_time_major"]
MODELS = pytest.mark.parametrize("name", MODEL_NAMES)
LENGTHS = np.array([6, 2, 4])


def model_and_input(rk, name, dtype, rng):
    """The model, its weights moved off their initial values, and a batch-first input of T = 6."""
    model = _models(rk, dtype)[name]
    for v in model.parameters().values():
        v[...] = v + 0.1 * rng.standard_normal(v.shape)
    layers = model.layers if isinstance(model, rk.Sequential) else [model]
    if isinstance(layers[0], rk.Embedding):
        layers[0].parameters()["weight"][0] = 0.0
        x = rng.integers(1, V, size=(3, 6))
    else:
        x = rng.standard_normal((3, 6, I))
    return model, x


def python_predict(rk, model, x, lengths=None):
    """Python's eval forward on batch-first x; batch-first output."""
    if isinstance(model, rk.Sequential):
        return model.predict(x, lengths=lengths)
    model.eval()
    return model(np.swapaxes(x, 0, 1), lengths=lengths)[0].swapaxes(0, 1)


def test_sequential_predict_matches_numpy_and_reference(rk, rng):
    """Embedding -> peephole LSTM -> LastStep -> Linear, against a lookup, the reference LSTM,
    each sequence's output at its last step and a matrix product (float64)."""
    model, x = model_and_input(rk, "embedding_lstm_laststep", np.float64, rng)
    sd = model.state_dict()
    lstm = {k[2:]: v for k, v in sd.items() if k.startswith("1.")}
    assert "weight_peephole_l0" in lstm
    spec = peephole_spec(input_size=I, hidden_size=5, batch_first=True)
    out, _, _ = reference.forward(spec, lstm, sd["0.weight"][x], lengths=LENGTHS)
    last = out[np.arange(3), LENGTHS - 1]
    want = last @ sd["3.weight"].T + sd["3.bias"]
    np.testing.assert_allclose(model.predict(x, lengths=LENGTHS), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@MODELS
def test_save_load_round_trip(rk, rng, tmp_path, name, dtype):
    pytest.importorskip("safetensors")
    model, x = model_and_input(rk, name, dtype, rng)
    path = tmp_path / "model.safetensors"
    rk.save(model, path)
    loaded = rk.load(path)
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    assert "peepholes=True" in repr(loaded)
    assert loaded.get_config() == model.get_config()
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert list(sd2) == list(sd) and peephole_keys(sd)
    for k in sd:
        assert sd2[k].dtype == np.dtype(dtype), k
        np.testing.assert_array_equal(sd2[k], sd[k], err_msg=k)
    np.testing.assert_array_equal(python_predict(rk, loaded, x, LENGTHS), python_predict(rk, model, x, LENGTHS))


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@MODELS
def test_runtime_load_and_from_model_predict_what_python_predicts(rk, rng, tmp_path, name, dtype):
    """The C++ runtime reads the file (rk.runtime.load) or the live model (from_model) and
    predicts, with and without lengths, what Python predicts."""
    pytest.importorskip("safetensors")
    model, x = model_and_input(rk, name, dtype, rng)
    path = tmp_path / "model.safetensors"
    rk.save(model, path)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    for runtime in (rk.runtime.load(path, dtype=dtype), rk.runtime.from_model(model)):
        assert runtime.num_parameters == model.num_parameters()
        for lengths in (None, LENGTHS):
            got = runtime.predict(x, lengths) if lengths is not None else runtime.predict(x)
            want = python_predict(rk, model, x, lengths)
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if "bidirectional" not in n])
def test_stream_steps_equal_predict(rk, rng, name, dtype):
    """stream(B).step at step t gives predict on the first t+1 steps: row t of a per-step
    head, or a pooled head's output with lengths t+1; reset() starts over."""
    model, x = model_and_input(rk, name, dtype, rng)
    Tx = x.shape[1]
    s = model.stream(3)
    ys = np.stack([s.step(x[:, t]) for t in range(Tx)], axis=1)
    full = python_predict(rk, model, x)
    if full.ndim == 3:
        want = full
    else:
        want = np.stack([python_predict(rk, model, x, np.full(3, t + 1)) for t in range(Tx)], axis=1)
    assert ys.dtype == np.dtype(dtype) and ys.shape == want.shape and s.steps == Tx
    np.testing.assert_allclose(ys, want, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)
    s.reset()
    np.testing.assert_array_equal(s.step(x[:, 0]), ys[:, 0])


# ============================================================================= the module's contract
def expected_keys(L, D, bias, proj):
    """The contract's names in order, written out: per layer and direction weight_ih, weight_hh,
    bias_ih, bias_hh (if bias), weight_hr (if proj_size), weight_peephole."""
    keys = []
    for layer in range(L):
        for sfx in ["", "_reverse"][:D]:
            names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else [])
            names += (["weight_hr"] if proj else []) + ["weight_peephole"]
            keys += [f"{n}_l{layer}{sfx}" for n in names]
    return keys


def test_state_dict_names_shapes_and_order_written_out(rk):
    m = rk.LSTM(3, 5, bidirectional=True, proj_size=2, peepholes=True)
    want = {
        "weight_ih_l0": (20, 3), "weight_hh_l0": (20, 2), "bias_ih_l0": (20,), "bias_hh_l0": (20,),
        "weight_hr_l0": (2, 5), "weight_peephole_l0": (3, 5),
        "weight_ih_l0_reverse": (20, 3), "weight_hh_l0_reverse": (20, 2), "bias_ih_l0_reverse": (20,),
        "bias_hh_l0_reverse": (20,), "weight_hr_l0_reverse": (2, 5), "weight_peephole_l0_reverse": (3, 5),
    }
    assert [(k, v.shape) for k, v in m.state_dict().items()] == list(want.items())
    m = rk.LSTM(3, 4, num_layers=2, bias=False, peepholes=True)
    assert [(k, v.shape) for k, v in m.state_dict().items()] == [
        ("weight_ih_l0", (16, 3)), ("weight_hh_l0", (16, 4)), ("weight_peephole_l0", (3, 4)),
        ("weight_ih_l1", (16, 4)), ("weight_hh_l1", (16, 4)), ("weight_peephole_l1", (3, 4)),
    ]


CONFIGS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, bias=False),
    dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True),
    dict(num_layers=2, bidirectional=True, proj_size=3, bias=False, dropout=0.5),
]


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_state_dict_parameters_and_flat_buffer_order(rk, config, dtype):
    """state_dict, parameters() and grads() have the contract's keys in its order; the flat
    buffer holds the tensors in that order, back to back; the reference agrees."""
    spec = peephole_spec(input_size=3, hidden_size=5, **config)
    m = rk.LSTM(3, 5, peepholes=True, dtype=dtype, seed=1, **config)
    keys = expected_keys(spec.num_layers, spec.num_directions, spec.bias, spec.proj_size)
    sd = m.state_dict()
    assert list(sd) == keys == list(spec.param_shapes())
    assert {k: v.shape for k, v in sd.items()} == spec.param_shapes()
    assert list(m.parameters()) == keys and list(m.grads()) == keys
    assert all(v.dtype == np.dtype(dtype) for v in sd.values())
    assert m.num_parameters() == sum(int(np.prod(s)) for s in spec.param_shapes().values())
    np.testing.assert_array_equal(m._flat, np.concatenate([v.ravel() for v in sd.values()]))
    for k, v in m.parameters().items():
        assert np.shares_memory(v, m._flat), k


def test_peephole_weights_in_sequential_are_named_like_torch(rk):
    model = rk.Sequential(rk.Embedding(7, 3), rk.LSTM(3, 4, num_layers=2, peepholes=True), rk.Linear(4, 2))
    names = list(model.state_dict())
    assert names[:5] == ["0.weight", "1.weight_ih_l0", "1.weight_hh_l0", "1.bias_ih_l0", "1.bias_hh_l0"]
    assert names[5] == "1.weight_peephole_l0" and names[10] == "1.weight_peephole_l1"
    assert names[-2:] == ["2.weight", "2.bias"]


def test_peephole_init_is_seeded_and_uniform_in_one_over_sqrt_hidden(rk):
    """U(-1/sqrt(H), 1/sqrt(H)) with H the hidden size, also with proj_size (not 1/sqrt(P))."""
    H = 16
    kw = dict(num_layers=2, bidirectional=True, proj_size=4, peepholes=True, dtype=np.float64)
    a, b, c = (rk.LSTM(3, H, seed=s, **kw).state_dict() for s in (5, 5, 6))
    peep = np.concatenate([a[k].ravel() for k in peephole_keys(a)])
    assert peep.size == 4 * 3 * H
    bound = 1 / np.sqrt(H)
    assert np.abs(peep).max() <= bound and np.abs(peep).max() > 0.9 * bound
    assert peep.min() < -0.5 * bound and peep.max() > 0.5 * bound
    for k in peephole_keys(a):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert not np.array_equal(a[k], c[k]), k


def test_repr(rk):
    """peepholes=True shows when set (where among the other arguments is left open), never when not."""
    assert repr(rk.LSTM(3, 5, peepholes=True)) == "LSTM(3, 5, peepholes=True)"
    assert repr(rk.LSTM(3, 5, peepholes=False)) == repr(rk.LSTM(3, 5)) == "LSTM(3, 5)"
    many = repr(rk.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, peepholes=True, dtype=np.float64))
    assert many.startswith("LSTM(3, 5, ") and many.count("peepholes=True") == 1
    assert "proj_size=2" in many and "num_layers=2" in many and "dtype=float64" in many
    assert "peepholes" not in repr(rk.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "default")
def test_get_config_round_trip(rk, config):
    m = rk.LSTM(3, 5, peepholes=True, dtype=np.float64, seed=0, **config)
    cfg = json.loads(json.dumps(m.get_config()))  # what a model file keeps
    assert cfg["peepholes"] is True
    again = rk.LSTM(**cfg)
    assert again.get_config() == m.get_config() and repr(again) == repr(m)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}
    assert rk.LSTM(3, 5, **config).get_config()["peepholes"] is False


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
@pytest.mark.parametrize("value", [True, False])
def test_peepholes_are_not_an_option_of_rnn_and_gru(rk, mode, value):
    with pytest.raises(TypeError, match="peepholes"):
        getattr(rk, mode)(3, 4, peepholes=value)


def test_peepholes_must_be_a_bool(rk):
    rk.LSTM(3, 4, peepholes=True)  # accepted, so the errors below are about the value
    for bad in ("yes", None):
        with pytest.raises((TypeError, ValueError), match="peepholes"):
            rk.LSTM(3, 4, peepholes=bad)


def test_load_state_dict_checks_the_peephole_weights(rk):
    """A plain LSTM's state_dict lacks weight_peephole (an error naming it; strict=False keeps
    the module's own), a peephole one does not load into a plain LSTM, and a misshapen
    weight_peephole is rejected whole."""
    m = rk.LSTM(3, 4, bidirectional=True, peepholes=True, dtype=np.float64, seed=0)
    plain = rk.LSTM(3, 4, bidirectional=True, dtype=np.float64, seed=1)
    before = m.state_dict()
    with pytest.raises((ValueError, KeyError), match="weight_peephole_l0"):
        m.load_state_dict(plain.state_dict())
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    m.load_state_dict(plain.state_dict(), strict=False)
    sd = m.state_dict()
    for k in peephole_keys(sd):
        np.testing.assert_array_equal(sd[k], before[k], err_msg=k)
    np.testing.assert_array_equal(sd["weight_ih_l0"], plain.state_dict()["weight_ih_l0"])
    with pytest.raises((ValueError, KeyError), match="weight_peephole_l0"):
        plain.load_state_dict(before)
    m.load_state_dict(before)
    new = {k: v + 1.0 for k, v in before.items()}
    for bad in (np.zeros((4, 3)), np.zeros((3, 5)), np.zeros((1, 3, 4)), np.zeros(12)):
        with pytest.raises(ValueError, match="weight_peephole_l0_reverse"):
            m.load_state_dict(dict(new, weight_peephole_l0_reverse=bad))
        for k, v in m.state_dict().items():  # rejected whole: not even the keys before it are loaded
            np.testing.assert_array_equal(v, before[k], err_msg=k)
