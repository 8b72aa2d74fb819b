"""Forward pass of rnnkit's RNN/LSTM/GRU against the NumPy reference (tests/reference.py),
and the module's parameter handling (state_dict, parameters(), init, repr) against torch.

Tolerances: 1e-10 in float64; 1e-5 (relative to the magnitude) in float32.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference
from reference import CELLS, spec_for

T, B = 5, 3

# name -> (Spec overrides, make_inputs keyword arguments)
OPTIONS = {
    "plain": ({}, dict(state=False)),
    "batch_first": (dict(batch_first=True), dict(state=False)),
    "nobias": (dict(bias=False), dict(state=True)),
    "h0": ({}, dict(state=True)),
    "lengths": ({}, dict(state=False, lengths="random")),
    "lengths_h0_bf": (dict(batch_first=True), dict(state=True, lengths="random")),
    "lengths_all_T": ({}, dict(state=True, lengths=[T] * B)),
    "lengths_all_1": ({}, dict(state=True, lengths=[1] * B)),
    "unbatched": ({}, dict(state=True, unbatched=True)),
    "unbatched_bf_nostate": (dict(batch_first=True), dict(state=False, unbatched=True)),
    "everything": (dict(batch_first=True, bias=False), dict(state=True, lengths="random")),
}
DTYPES = {"f64": np.float64, "f32": np.float32}
# The cells compared with torch.nn (GRU reset_after=False has its own test below); torch has no
# peephole LSTM, so those are listed as skipped (test_peephole.py checks them against ONNX and the contract).
TORCH_CELLS = [
    pytest.param(c, marks=pytest.mark.skip(reason="torch.nn.LSTM has no peephole connections"))
    if CELLS[c].get("peepholes") else c
    for c in CELLS
    if c != "gru_v1"
]


def check_close(actual, expected, dtype, what=""):
    assert actual.dtype == dtype, (what, actual.dtype)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    if dtype == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10, err_msg=what)
    else:
        scale = max(1.0, float(np.abs(expected).max(initial=0)))
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale, err_msg=what)


def as_f64(params):
    return {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}


def rounded(a, dtype):
    """The values the module actually sees after converting to its dtype."""
    return None if a is None else np.asarray(a).astype(dtype).astype(np.float64)


def run_both(spec, m, inp, dtype, run_forward, masks=None):
    """rnnkit forward and reference forward on the same (dtype-rounded) values."""
    got = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    want = reference.forward(
        spec,
        as_f64(m.state_dict()),
        rounded(inp["x"], dtype),
        rounded(inp["h0"], dtype),
        rounded(inp["c0"], dtype),
        inp["lengths"],
        dropout_masks=masks,
    )
    return got, want


def compare(spec, got, want, dtype):
    for name, a, b in zip(["out", "h_n", "c_n"], got, want):
        if spec.mode != "LSTM" and name == "c_n":
            continue
        check_close(a, b, dtype, name)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3], ids=["L1", "L2", "L3"])
def test_matches_reference(cell, num_layers, bidirectional, option, dtype, rng, make_module, make_inputs, run_forward):
    overrides, input_kw = OPTIONS[option]
    spec = spec_for(cell, num_layers=num_layers, bidirectional=bidirectional, **overrides)
    m = make_module(spec, dtype, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, **input_kw)
    got, want = run_both(spec, m, inp, dtype, run_forward)
    compare(spec, got, want, dtype)


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_default_init_matches_reference(cell, dtype, rng, make_module, make_inputs, run_forward):
    """The module's own (seeded) initial parameters, read back through state_dict()."""
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    m = make_module(spec, dtype, seed=3)
    inp = make_inputs(spec, rng, T, B, state=True, lengths="random")
    got, want = run_both(spec, m, inp, dtype, run_forward)
    compare(spec, got, want, dtype)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_long_batches_with_lengths_match_reference(cell, bidirectional, batch_first, training, rng, make_module,
                                                   make_inputs, run_forward):
    """Enough packed rows (up to 12 x 40) that the input projections take several blocks, which
    in eval mode read the caller's x, and the output rows go straight to the caller's array."""
    spec = spec_for(cell, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    m.train(training)
    inp = make_inputs(spec, rng, 12, 40, state=True, lengths="random")
    got, want = run_both(spec, m, inp, np.float64, run_forward)
    compare(spec, got, want, np.float64)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("layout", ["time_major", "batch_first", "unbatched", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_dropout_masks_follow_rng(cell, bidirectional, layout, rng, make_module, make_inputs, run_forward):
    """Training forward draws keep = _rng.random((T, B, D*Hout)) >= p per layer 0..L-2;
    a second forward draws the next masks from the same generator."""
    p = 0.4
    spec = spec_for(cell, num_layers=3, bidirectional=bidirectional, dropout=p, batch_first=layout == "batch_first")
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp = make_inputs(
        spec, rng, T, B, state=True, unbatched=layout == "unbatched", lengths="random" if layout == "lengths" else None
    )
    Bm = 1 if layout == "unbatched" else B
    m._rng = np.random.default_rng(7)
    mask_rng = np.random.default_rng(7)
    for _ in range(2):
        masks = reference.draw_dropout_masks(spec, mask_rng, T, Bm)
        got, want = run_both(spec, m, inp, np.float64, run_forward, masks=masks)
        compare(spec, got, want, np.float64)
    # and the masks really mattered: without them the output differs
    _, no_drop = run_both(spec, m, inp, np.float64, run_forward)
    assert not np.allclose(want[0], no_drop[0])


def test_dropout_off_in_eval(cell, rng, make_module, make_inputs, run_forward):
    spec = spec_for(cell, num_layers=2, bidirectional=True, dropout=0.5)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    assert m.eval() is m and m.training is False
    m._rng = np.random.default_rng(7)
    inp = make_inputs(spec, rng, T, B, state=True)
    got, want = run_both(spec, m, inp, np.float64, run_forward)  # no masks
    compare(spec, got, want, np.float64)
    # eval draws nothing from the generator
    assert m._rng.random() == np.random.default_rng(7).random()


def test_train_and_eval_agree_without_dropout(cell, rng, make_module, make_inputs, run_forward):
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    assert m.training is True  # modules start in training mode
    inp = make_inputs(spec, rng, T, B, state=True, lengths="random")
    train = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    assert m.eval() is m and m.training is False
    evals = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    assert m.train() is m and m.training is True
    for a, b in zip(train, evals):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


# ----------------------------------------------------------------------------- lengths
@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lengths_semantics(cell, bidirectional, batch_first, rng, make_module, make_inputs, run_forward):
    """out is exactly 0 past each length; values in the padding change nothing; each sequence
    gives what it gives alone, truncated to its length; all lengths == T is the same as none."""
    spec = spec_for(cell, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    Tl, Bl = 6, 4
    inp = make_inputs(spec, rng, Tl, Bl, state=True, lengths=[6, 1, 3, 5])
    x, h0, c0, lengths = inp["x"], inp["h0"], inp["c0"], inp["lengths"]
    out, h_n, c_n = run_forward(m, spec, x, h0, c0, lengths)
    out_tm = out.transpose(1, 0, 2) if batch_first else out
    x_tm = x.transpose(1, 0, 2) if batch_first else x
    for b, n in enumerate(lengths):
        assert np.all(out_tm[n:, b] == 0.0)

    # garbage in the padding changes nothing
    x_garbage = x_tm.copy()
    for b, n in enumerate(lengths):
        x_garbage[n:, b] = 1e3 * rng.standard_normal(x_garbage[n:, b].shape)
    if batch_first:
        x_garbage = x_garbage.transpose(1, 0, 2)
    again = run_forward(m, spec, x_garbage, h0, c0, lengths)
    for a, b_ in zip((out, h_n, c_n), again):
        if a is not None:
            np.testing.assert_array_equal(a, b_)

    # each sequence alone (B=1, no lengths), truncated to its length
    for b, n in enumerate(lengths):
        xb = x_tm[:n, b : b + 1]
        if batch_first:
            xb = xb.transpose(1, 0, 2)
        hb = h0[:, b : b + 1]
        cb = None if c0 is None else c0[:, b : b + 1]
        out_b, h_b, c_b = run_forward(m, spec, xb, hb, cb, None)
        out_b = out_b.transpose(1, 0, 2) if batch_first else out_b
        np.testing.assert_allclose(out_tm[:n, b : b + 1], out_b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h_n[:, b : b + 1], h_b, rtol=1e-12, atol=1e-12)
        if c_n is not None:
            np.testing.assert_allclose(c_n[:, b : b + 1], c_b, rtol=1e-12, atol=1e-12)

    # all lengths == T is the same as no lengths
    full = run_forward(m, spec, x, h0, c0, np.full(Bl, Tl))
    none = run_forward(m, spec, x, h0, c0, None)
    for a, b_ in zip(full, none):
        if a is not None:
            np.testing.assert_allclose(a, b_, rtol=1e-13, atol=1e-13)


def test_nan_in_padding_does_not_leak(cell, rng, make_module, make_inputs, run_forward):
    """Steps past a length are not computed: NaN there must not reach anything."""
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, state=True, lengths=[T, 2, 1])
    x = inp["x"].copy()
    x[2:, 1] = np.nan
    x[1:, 2] = np.nan
    out, h_n, c_n = run_forward(m, spec, x, inp["h0"], inp["c0"], inp["lengths"])
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(h_n))
    if c_n is not None:
        assert np.all(np.isfinite(c_n))


# ----------------------------------------------------------------------------- inputs
@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_input_conversion(cell, dtype, rng, make_module, make_inputs, run_forward):
    """Any float array is converted to the module dtype: float32/float64/int inputs,
    non-contiguous and Fortran-ordered arrays all give the result of a contiguous array
    of the module dtype; outputs are always in the module dtype."""
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    m = make_module(spec, dtype, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, state=True)
    # values exactly representable in float32 and float64, so every conversion is exact
    x = inp["x"].astype(np.float32).astype(dtype)
    h0 = inp["h0"].astype(np.float32).astype(dtype)
    c0 = None if inp["c0"] is None else inp["c0"].astype(np.float32).astype(dtype)
    base = run_forward(m, spec, x, h0, c0)
    for a in base:
        assert a is None or a.dtype == dtype

    other = np.float32 if dtype == np.float64 else np.float64
    variants = {
        "other_dtype": (x.astype(other), h0.astype(other), None if c0 is None else c0.astype(other)),
        "fortran": (np.asfortranarray(x), np.asfortranarray(h0), None if c0 is None else np.asfortranarray(c0)),
        "strided": (
            np.repeat(x, 2, axis=1)[:, ::2],
            np.repeat(h0, 2, axis=2)[:, :, ::2],
            None if c0 is None else np.repeat(c0, 2, axis=2)[:, :, ::2],
        ),
    }
    for name, (xv, hv, cv) in variants.items():
        got = run_forward(m, spec, xv, hv, cv)
        for a, b in zip(got, base):
            if a is not None:
                assert a.dtype == dtype, name
                np.testing.assert_array_equal(a, b, err_msg=name)

    xi = np.round(3 * x).astype(np.int64)
    got = run_forward(m, spec, xi, h0, c0)
    want = run_forward(m, spec, xi.astype(dtype), h0, c0)
    for a, b in zip(got, want):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_outputs_are_not_overwritten_by_next_call(cell, rng, make_module, make_inputs, run_forward):
    spec = spec_for(cell, num_layers=2)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp1 = make_inputs(spec, rng, T, B, state=True)
    inp2 = make_inputs(spec, rng, T, B, state=True)
    first = run_forward(m, spec, inp1["x"], inp1["h0"], inp1["c0"])
    saved = [None if a is None else a.copy() for a in first]
    run_forward(m, spec, inp2["x"], inp2["h0"], inp2["c0"])
    for a, b in zip(first, saved):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_inputs_are_not_modified(cell, rng, make_module, make_inputs, run_forward):
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, state=True, lengths="random")
    copies = {k: None if v is None else v.copy() for k, v in inp.items()}
    run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    for k, v in inp.items():
        if v is not None:
            np.testing.assert_array_equal(v, copies[k], err_msg=k)


# ----------------------------------------------------------------------------- parameters
CONFIGS = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, bias=False),
    dict(num_layers=2, bidirectional=True, bias=False, batch_first=True),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("cell_name", TORCH_CELLS)
def test_state_dict_keys_and_shapes_match_torch(cell_name, config, make_module, make_torch):
    spec = spec_for(cell_name, input_size=3, hidden_size=5, **config)
    m = make_module(spec, np.float32)
    tm = make_torch(spec, None, np.float32)
    want = {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    sd = m.state_dict()
    assert {k: v.shape for k, v in sd.items()} == want
    assert {k: v.shape for k, v in m.parameters().items()} == want
    assert set(m.grads()) == set(want)
    assert all(v.dtype == np.float32 for v in sd.values())
    assert m.num_parameters() == sum(p.numel() for p in tm.parameters())
    assert want == spec.param_shapes()  # the reference agrees with torch too


@pytest.mark.parametrize("config", CONFIGS[:2], ids=["L1", "L2bi"])
def test_gru_reset_after_false_has_gru_keys(config, make_module, make_torch):
    spec = spec_for("gru_v1", input_size=3, hidden_size=5, **config)
    m = make_module(spec, np.float64)
    tm = make_torch(spec_for("gru", input_size=3, hidden_size=5, **config), None, np.float64)
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    assert m.num_parameters() == sum(p.numel() for p in tm.parameters())


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
@pytest.mark.parametrize("cell_name", TORCH_CELLS)
def test_load_state_dict_from_torch(cell_name, dtype, make_module, make_torch):
    """A torch module's state_dict() (tensors) loads as is, in either dtype."""
    import torch

    spec = spec_for(cell_name, num_layers=2, bidirectional=True)
    torch.manual_seed(0)
    tm = make_torch(spec, None, np.float64)
    m = make_module(spec, dtype, seed=1)
    m.load_state_dict(tm.state_dict())
    sd = m.state_dict()
    for k, v in tm.state_dict().items():
        assert sd[k].dtype == dtype
        np.testing.assert_array_equal(sd[k], v.numpy().astype(dtype), err_msg=k)


def test_parameters_are_live_views(cell, rng, make_module, make_inputs, run_forward):
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
    inp = make_inputs(spec, rng, T, B, state=True)
    before = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])[0]

    # state_dict() returns copies: writing into one changes nothing
    sd = m.state_dict()
    sd["weight_ih_l0"][...] = 0.0
    np.testing.assert_array_equal(run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])[0], before)

    # parameters() are views: writing into one changes the model
    new = reference.init_params(spec, rng)
    params = m.parameters()
    for k, v in params.items():
        assert v.dtype == np.float64
        v[...] = new[k]
    np.testing.assert_array_equal(m.state_dict()["weight_hh_l1_reverse"], new["weight_hh_l1_reverse"])
    got = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"])
    want = reference.forward(spec, new, inp["x"], inp["h0"], inp["c0"])
    compare(spec, got, want, np.float64)
    # views taken before a load_state_dict see the loaded values
    m.load_state_dict(reference.init_params(spec, np.random.default_rng(5)))
    np.testing.assert_array_equal(params["weight_ih_l0"], m.state_dict()["weight_ih_l0"])


@pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))
def test_init_is_seeded_and_uniform(cell, dtype, make_module):
    H = 16
    spec = spec_for(cell, input_size=8, hidden_size=H, num_layers=2, bidirectional=True)
    a, b = make_module(spec, dtype, seed=11).state_dict(), make_module(spec, dtype, seed=11).state_dict()
    c = make_module(spec, dtype, seed=12).state_dict()
    d, e = make_module(spec, dtype, seed=None).state_dict(), make_module(spec, dtype, seed=None).state_dict()
    bound = 1.0 / np.sqrt(H)
    for k in a:
        assert a[k].dtype == dtype
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert not np.array_equal(a[k], c[k]), k
        assert not np.array_equal(d[k], e[k]), k
        assert np.all(np.abs(a[k]) <= bound * (1 + 1e-6)), k
    allv = np.concatenate([v.ravel() for v in a.values()]).astype(np.float64)
    assert allv.min() < -0.95 * bound and allv.max() > 0.95 * bound
    assert abs(allv.mean()) < 0.05 * bound
    # uniform: about a quarter of the values in each quarter of the range
    hist, _ = np.histogram(allv, bins=4, range=(-bound, bound))
    np.testing.assert_allclose(hist / allv.size, 0.25, atol=0.03)


@pytest.mark.parametrize(
    "mode,kwargs",
    [
        ("LSTM", dict(num_layers=2, batch_first=True)),
        ("LSTM", dict(proj_size=2, num_layers=2, bias=False, batch_first=True)),
        ("GRU", dict(num_layers=2, dropout=0.5, bidirectional=True)),
        ("RNN", dict()),
        ("GRU", dict()),
    ],
)
def test_repr_like_torch(rk, mode, kwargs):
    torch = pytest.importorskip("torch")
    assert repr(getattr(rk, mode)(3, 5, **kwargs)) == repr(getattr(torch.nn, mode)(3, 5, **kwargs))


def test_repr_example(rk):
    assert repr(rk.LSTM(3, 5, num_layers=2, batch_first=True)) == "LSTM(3, 5, num_layers=2, batch_first=True)"
