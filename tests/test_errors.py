"""Bad input raises a clear error naming the argument, with what it got; a failed call leaves
the module (parameters, gradients, the training cache) as it was; nothing crashes."""

from __future__ import annotations

import numpy as np
import pytest

import reference
from reference import spec_for

T, B, I, H = 5, 3, 3, 4

H0_NAME = r"h0|hx|h_0"
C0_NAME = r"c0|cx|c_0|hx"


def snapshot(m):
    return {k: np.array(v) for k, v in m.state_dict().items()}, {k: np.array(v) for k, v in m.grads().items()}


def assert_unchanged(m, snap):
    params, grads = snap
    now_p, now_g = snapshot(m)
    assert set(now_p) == set(params)
    for k in params:
        np.testing.assert_array_equal(now_p[k], params[k], err_msg=k)
        np.testing.assert_array_equal(now_g[k], grads[k], err_msg=k)


@pytest.fixture
def setup(cell, rng, make_module, make_inputs):
    """A 2-layer bidirectional module (float64) with non-zero grads, and valid inputs."""
    spec = spec_for(cell, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, state=True)
    return spec, m, inp


def with_grads(spec, m, inp, run_forward, run_backward):
    """Run one forward/backward so that the grads are non-zero; returns the outputs."""
    out, h_n, c_n = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    run_backward(m, spec, np.ones_like(out), np.ones_like(h_n), None if c_n is None else np.ones_like(c_n))
    return out, h_n, c_n


def assert_same_backward(m, twin, got, want):
    """Same results as an identical module (to rounding: sums may be ordered differently)."""
    for a, b in zip(got, want):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for k, v in twin.grads().items():
        np.testing.assert_allclose(m.grads()[k], v, rtol=1e-12, atol=1e-12, err_msg=k)


# ----------------------------------------------------------------------------- constructors
@pytest.mark.parametrize(
    "mode,args,kwargs,name",
    [
        ("RNN", (3, 0), {}, "hidden_size"),
        ("LSTM", (3, 0), {}, "hidden_size"),
        ("GRU", (3, 0), {}, "hidden_size"),
        ("GRU", (3, -2), {}, "hidden_size"),
        ("LSTM", (0, 4), {}, "input_size"),
        ("RNN", (3, 4), dict(num_layers=0), "num_layers"),
        ("RNN", (3, 4), dict(nonlinearity="sigmoid"), "nonlinearity"),
        ("RNN", (3, 4), dict(dropout=1.5), "dropout"),
        ("LSTM", (3, 4), dict(dropout=-0.1), "dropout"),
        ("GRU", (3, 4), dict(dropout=1.5), "dropout"),
        ("LSTM", (3, 4), dict(proj_size=4), "proj_size"),
        ("LSTM", (3, 4), dict(proj_size=5), "proj_size"),
        ("LSTM", (3, 4), dict(proj_size=-1), "proj_size"),
    ],
)
def test_bad_constructor_arguments(rk, mode, args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        getattr(rk, mode)(*args, **kwargs)


@pytest.mark.parametrize("dtype", [np.int32, int, np.complex128, np.bool_])
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_bad_dtype(rk, mode, dtype):
    with pytest.raises((TypeError, ValueError), match="dtype"):
        getattr(rk, mode)(3, 4, dtype=dtype)


# ----------------------------------------------------------------------------- forward
def bad_x_cases():
    return {
        "rank1": (np.zeros(I), r"\bx\b", None),
        "rank4": (np.zeros((T, B, 1, I)), r"\bx\b", None),
        "last_dim": (np.zeros((T, B, 7)), r"\bx\b", "7"),
        "unbatched_last_dim": (np.zeros((T, 7)), r"\bx\b", "7"),
        "empty_T": (np.zeros((0, B, I)), r"\bx\b", None),
        "empty_B": (np.zeros((T, 0, I)), r"\bx\b", None),
        "empty_unbatched": (np.zeros((0, I)), r"\bx\b", None),
    }


@pytest.mark.parametrize("case", list(bad_x_cases()))
def test_bad_x_shape(setup, case, run_forward):
    spec, m, inp = setup
    x, name, got = bad_x_cases()[case]
    snap = snapshot(m)
    with pytest.raises(ValueError, match=name) as err:
        run_forward(m, spec, x)
    if got is not None:
        assert got in str(err.value)
    assert_unchanged(m, snap)


@pytest.mark.parametrize("x", [None, "abc", [["a", "b", "c"]], object()], ids=["None", "str", "strlist", "object"])
def test_x_not_numeric(setup, x, run_forward):
    spec, m, _ = setup
    with pytest.raises((TypeError, ValueError)):
        run_forward(m, spec, x)


def bad_state_shapes():
    DL = 4  # 2 layers x 2 directions
    return {
        "layers": (DL + 1, B, H),
        "batch": (DL, B + 1, H),
        "size": (DL, B, 9),
        "rank2": (DL, B * H),
        "rank4": (DL, B, H, 1),
    }


@pytest.mark.parametrize("shape", list(bad_state_shapes()))
def test_bad_h0_shape(setup, shape, run_forward):
    spec, m, inp = setup
    bad = np.zeros(bad_state_shapes()[shape])
    snap = snapshot(m)
    with pytest.raises(ValueError, match=H0_NAME):
        run_forward(m, spec, inp["x"], bad, inp["c0"])
    assert_unchanged(m, snap)


@pytest.mark.parametrize("shape", list(bad_state_shapes()))
def test_bad_c0_shape(rng, make_module, make_inputs, run_forward, shape):
    spec = spec_for("lstm_proj", input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    m = make_module(spec, np.float64)
    inp = make_inputs(spec, rng, T, B, state=True)
    with pytest.raises(ValueError, match=C0_NAME):
        run_forward(m, spec, inp["x"], inp["h0"], np.zeros(bad_state_shapes()[shape]))
    # proj: c has size H, h has size P; swapping them is an error
    with pytest.raises(ValueError, match=C0_NAME):
        run_forward(m, spec, inp["x"], inp["h0"], np.zeros((4, B, spec.out_size)))
    with pytest.raises(ValueError, match=H0_NAME):
        run_forward(m, spec, inp["x"], np.zeros((4, B, H)), inp["c0"])


def test_lstm_hx_must_be_a_pair(rk, rng):
    m = rk.LSTM(I, H, dtype=np.float64)
    x = rng.standard_normal((T, B, I))
    with pytest.raises((TypeError, ValueError)):
        m(x, np.zeros((1, B, H)))
    with pytest.raises((TypeError, ValueError)):
        m(x, (np.zeros((1, B, H)),))


def test_unbatched_state_must_be_unbatched(setup, run_forward):
    spec, m, inp = setup
    x = inp["x"][:, 0]
    h0 = np.zeros((4, 1, spec.out_size))  # batched state for an unbatched input
    c0 = None if spec.mode != "LSTM" else np.zeros((4, H))
    with pytest.raises(ValueError, match=H0_NAME):
        run_forward(m, spec, x, h0, c0)


@pytest.mark.parametrize(
    "lengths",
    [[0, 1, 2], [1, T + 1, 2], [-1, 2, 3], [1, 2], [1, 2, 3, 4], [[1], [2], [3]]],
    ids=["zero", "too_long", "negative", "short", "long", "rank2"],
)
def test_bad_lengths(setup, lengths, run_forward):
    spec, m, inp = setup
    snap = snapshot(m)
    with pytest.raises(ValueError, match="lengths"):
        run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], np.array(lengths))
    assert_unchanged(m, snap)


def test_every_entry_point_checks_lengths_with_one_message(rk):
    """One check in C++ (packing.h's check_lengths), so one message, whichever way lengths come in."""
    msg = "lengths[1] = 9 is out of range: each length must be in 1..5"
    x = np.zeros((2, 5, 3), np.float32)
    bad = np.array([5, 9])
    seq = rk.Sequential(rk.LSTM(3, 4, batch_first=True), rk.LastStep(), rk.Linear(4, 2))
    runs = {
        "LSTM": lambda: rk.LSTM(3, 4, batch_first=True)(x, lengths=bad),
        "Sequential": lambda: seq(x, lengths=bad),
        "LastStep": lambda: rk.LastStep()(x, lengths=bad),
        "runtime predict": lambda: rk.runtime.from_model(seq).predict(x, bad),
        "_core.last_step_forward": lambda: rk._core.last_step_forward(x, bad, True, 1),
        "_core.check_lengths": lambda: rk._core.check_lengths(bad, 5),
    }
    for name, run in runs.items():
        with pytest.raises(ValueError) as e:
            run()
        assert str(e.value) == msg, name
    with pytest.raises(ValueError, match=r"lengths\[0\] = 0 is out of range"):
        rk.GRU(3, 4, batch_first=True)(x, lengths=np.array([0, 2], np.uint8))


def test_failed_forward_keeps_the_previous_training_cache(setup, rng, make_module, run_forward, run_backward):
    """A failed call leaves the module as it was: the cache of the last good training
    forward is still there, and backward gives what it would have given."""
    spec, m, inp = setup
    twin = make_module(spec, np.float64, params=m.state_dict())
    out, h_n, c_n = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    run_forward(twin, spec, inp["x"], inp["h0"], inp["c0"])
    with pytest.raises(ValueError):
        run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], np.array([0, 1, 2]))
    g = rng.standard_normal(out.shape)
    got = run_backward(m, spec, g)
    want = run_backward(twin, spec, g)
    assert_same_backward(m, twin, got, want)


# ----------------------------------------------------------------------------- non-finite x
def test_nan_in_x_propagates_without_crashing(cell, rng, make_module, make_inputs, run_forward, run_backward):
    spec = spec_for(cell, input_size=I, hidden_size=H)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, state=True)
    clean = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    x = inp["x"].copy()
    x[2, 0, 1] = np.nan
    x[3, 1, 0] = np.inf
    out, h_n, c_n = run_forward(m, spec, x, inp["h0"], inp["c0"])
    # other sequences and earlier steps are untouched
    np.testing.assert_array_equal(out[:, 2], clean[0][:, 2])
    np.testing.assert_array_equal(out[:2], clean[0][:2])
    np.testing.assert_array_equal(h_n[:, 2], clean[1][:, 2])
    if cell != "rnn_relu":  # relu(NaN) is left to the implementation
        assert np.all(np.isnan(out[2, 0])) and np.all(np.isnan(h_n[:, 0]))
    gx, gh0, _ = run_backward(m, spec, np.ones_like(out))
    assert gx.shape == x.shape
    np.testing.assert_array_equal(np.isfinite(gx[:, 2]), True)


# ----------------------------------------------------------------------------- backward
def test_backward_without_training_forward(setup, run_forward, run_backward):
    spec, m, inp = setup
    g = np.zeros((T, B, 2 * spec.out_size))
    snap = snapshot(m)
    with pytest.raises(RuntimeError):  # no forward at all
        run_backward(m, spec, g)
    m.eval()
    run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    with pytest.raises(RuntimeError):  # forward in eval mode keeps nothing
        run_backward(m, spec, g)
    assert_unchanged(m, snap)


def test_second_backward_needs_a_new_forward(setup, run_forward, run_backward):
    spec, m, inp = setup
    out, _, _ = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    run_backward(m, spec, np.ones_like(out))
    snap = snapshot(m)
    with pytest.raises(RuntimeError):
        run_backward(m, spec, np.ones_like(out))
    assert_unchanged(m, snap)
    run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    run_backward(m, spec, np.ones_like(out))  # fine again


@pytest.mark.parametrize("which", ["grad_out", "grad_h_n"])
def test_bad_gradient_shapes(setup, which, rng, make_module, run_forward, run_backward):
    """A rejected backward changes no grads and does not consume the cache."""
    check_bad_gradient(setup, which, rng, make_module, run_forward, run_backward)


@pytest.mark.parametrize("cell", ["lstm", "lstm_proj", "lstm_peephole"])
def test_bad_grad_c_n_shape(setup, rng, make_module, run_forward, run_backward):
    check_bad_gradient(setup, "grad_c_n", rng, make_module, run_forward, run_backward)


def check_bad_gradient(setup, which, rng, make_module, run_forward, run_backward):
    spec, m, inp = setup
    twin = make_module(spec, np.float64, params=m.state_dict())
    with_grads(spec, m, inp, run_forward, run_backward)
    with_grads(spec, twin, inp, run_forward, run_backward)
    out, h_n, c_n = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    run_forward(twin, spec, inp["x"], inp["h0"], inp["c0"])
    g = {
        "grad_out": rng.standard_normal(out.shape),
        "grad_h_n": rng.standard_normal(h_n.shape),
        "grad_c_n": None if c_n is None else rng.standard_normal(c_n.shape),
    }
    bad = dict(g)
    bad[which] = np.zeros(g[which].shape[:-1] + (g[which].shape[-1] + 1,))
    snap = snapshot(m)
    pattern = {"grad_out": "grad_out", "grad_h_n": "grad_h_n|grad_hx|grad_h", "grad_c_n": "grad_c_n|grad_hx|grad_c"}
    with pytest.raises(ValueError, match=pattern[which]):
        run_backward(m, spec, bad["grad_out"], bad["grad_h_n"], bad["grad_c_n"])
    assert_unchanged(m, snap)
    with pytest.raises(ValueError, match="grad_out"):
        run_backward(m, spec, g["grad_out"][:-1], g["grad_h_n"], g["grad_c_n"])  # one step short
    assert_unchanged(m, snap)
    # the cache survived: the correct call still works and gives the twin's result
    got = run_backward(m, spec, g["grad_out"], g["grad_h_n"], g["grad_c_n"])
    want = run_backward(twin, spec, g["grad_out"], g["grad_h_n"], g["grad_c_n"])
    assert_same_backward(m, twin, got, want)


# ----------------------------------------------------------------------------- state_dict
def test_load_state_dict_missing_key(setup):
    spec, m, _ = setup
    good = reference.init_params(spec, np.random.default_rng(1))
    d = dict(good)
    del d["weight_hh_l1_reverse"]
    snap = snapshot(m)
    with pytest.raises((ValueError, KeyError), match="weight_hh_l1_reverse"):
        m.load_state_dict(d)
    assert_unchanged(m, snap)
    # strict=False loads what is there and leaves the missing one as it was
    m.load_state_dict(d, strict=False)
    sd = m.state_dict()
    np.testing.assert_array_equal(sd["weight_hh_l1_reverse"], snap[0]["weight_hh_l1_reverse"])
    for k in d:
        np.testing.assert_array_equal(sd[k], d[k], err_msg=k)


def test_load_state_dict_unexpected_key(setup):
    spec, m, _ = setup
    good = reference.init_params(spec, np.random.default_rng(1))
    d = dict(good, weight_ih_l2=np.zeros((spec.gates * H, 2 * spec.out_size)))
    snap = snapshot(m)
    with pytest.raises((ValueError, KeyError), match="weight_ih_l2"):
        m.load_state_dict(d)
    assert_unchanged(m, snap)
    m.load_state_dict(d, strict=False)  # the extra key is ignored
    for k, v in good.items():
        np.testing.assert_array_equal(m.state_dict()[k], v, err_msg=k)


@pytest.mark.parametrize("key", ["weight_ih_l0", "bias_hh_l1_reverse", "weight_ih_l1"])
@pytest.mark.parametrize("strict", [True, False])
def test_load_state_dict_wrong_shape(setup, key, strict):
    """Rejected whole: no key is loaded, even the ones before the bad one."""
    spec, m, _ = setup
    d = reference.init_params(spec, np.random.default_rng(1))
    good = d[key]
    snap = snapshot(m)
    for bad in (np.zeros(good.shape[:-1] + (good.shape[-1] + 2,)), good.T if good.ndim == 2 else good[None]):
        d[key] = bad
        with pytest.raises(ValueError, match=key):
            m.load_state_dict(d, strict=strict)
        assert_unchanged(m, snap)


def test_load_state_dict_bias_keys_into_bias_free_module(make_module):
    spec = spec_for("lstm", input_size=I, hidden_size=H, bias=False)
    m = make_module(spec, np.float64)
    d = reference.init_params(spec_for("lstm", input_size=I, hidden_size=H), np.random.default_rng(1))
    snap = snapshot(m)
    with pytest.raises((ValueError, KeyError), match="bias_ih_l0"):
        m.load_state_dict(d)
    assert_unchanged(m, snap)


def test_load_state_dict_non_numeric(setup):
    spec, m, _ = setup
    d = reference.init_params(spec, np.random.default_rng(1))
    d["weight_ih_l0"] = "not an array"
    snap = snapshot(m)
    with pytest.raises((TypeError, ValueError)):
        m.load_state_dict(d)
    assert_unchanged(m, snap)
