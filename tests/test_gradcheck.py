"""Backward (BPTT) against central finite differences, in float64.

Loss: L = sum(out*Wo) + sum(h_n*Wh) [+ sum(c_n*Wc)] with fixed random Wo, Wh, Wc, so
grad_out = Wo and grad_h_n = Wh (or (Wh, Wc)).  Every entry of grad_x, grad_h0, grad_c0 and
of every parameter gradient is checked against (L(θ+ε) - L(θ-ε)) / 2ε, ε = 1e-6, for every
cell variant and option (layers, bidirectional, batch_first, bias=False, lengths, unbatched,
proj_size, peepholes, reset_after=False, dropout with fixed masks).  Parameters are perturbed through
the live views of m.parameters().
"""

from __future__ import annotations

import numpy as np
import pytest

import reference
from reference import spec_for

EPS = 1e-6
T, B = 4, 3

# name -> (Spec overrides, make_inputs keyword arguments, loss also on h_n/c_n)
OPTIONS = {
    "L1": (dict(), dict(state=True), True),
    "L2_bi": (dict(num_layers=2, bidirectional=True), dict(state=True), True),
    "L2_nobias_bf": (dict(num_layers=2, bias=False, batch_first=True), dict(state=True), True),
    "lengths_bi": (dict(bidirectional=True), dict(state=True, lengths="random"), True),
    "lengths_L2_bi_bf": (
        dict(num_layers=2, bidirectional=True, batch_first=True),
        dict(state=True, lengths="random"),
        True,
    ),
    "unbatched_L2_bi": (dict(num_layers=2, bidirectional=True), dict(state=True, unbatched=True), True),
    "no_state_no_grad_h": (dict(num_layers=2), dict(state=False), False),
    "dropout_L3_bi": (dict(num_layers=3, bidirectional=True, dropout=0.3), dict(state=True, lengths="random"), True),
}


def scalar_loss(out, h_n, c_n, w):
    loss = float(np.sum(out * w["out"]))
    if w["h"] is not None:
        loss += float(np.sum(h_n * w["h"]))
    if w["c"] is not None:
        loss += float(np.sum(c_n * w["c"]))
    return loss


def numerical_grad(arr, f):
    """Central differences of f() w.r.t. every entry of arr (perturbed in place, restored)."""
    g = np.zeros(arr.shape)
    for idx in np.ndindex(arr.shape):
        old = arr[idx]
        arr[idx] = old + EPS
        fp = f()
        arr[idx] = old - EPS
        fm = f()
        arr[idx] = old
        g[idx] = (fp - fm) / (2 * EPS)
    return g


def assert_grad(analytic, numeric, what):
    assert analytic.shape == numeric.shape, (what, analytic.shape, numeric.shape)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=what)


class Problem:
    """A module, inputs and loss weights; forward() gives L, analytic() the backward grads."""

    def __init__(self, spec, inp, rng, make_module, run_forward, run_backward, grad_state=True):
        self.spec, self.inp = spec, inp
        self.m = make_module(spec, np.float64, params=reference.init_params(spec, rng))
        self.fwd, self.bwd = run_forward, run_backward
        out, h_n, c_n = self.run()
        self.w = {
            "out": rng.standard_normal(out.shape),
            "h": rng.standard_normal(h_n.shape) if grad_state else None,
            "c": rng.standard_normal(c_n.shape) if (grad_state and c_n is not None) else None,
        }

    def run(self):
        self.m._rng = np.random.default_rng(7)  # the same dropout masks at every forward
        i = self.inp
        return self.fwd(self.m, self.spec, i["x"], i["h0"], i["c0"], i["lengths"])

    def loss(self):
        return scalar_loss(*self.run(), self.w)

    def analytic(self):
        self.m.zero_grad()
        self.run()
        gx, gh0, gc0 = self.bwd(self.m, self.spec, self.w["out"], self.w["h"], self.w["c"])
        return gx, gh0, gc0, {k: np.array(v) for k, v in self.m.grads().items()}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_gradients_match_finite_differences(cell, option, rng, make_module, make_inputs, run_forward, run_backward):
    overrides, input_kw, grad_state = OPTIONS[option]
    spec = spec_for(cell, input_size=3, hidden_size=3, **overrides)
    inp = make_inputs(spec, rng, T, B, **input_kw)
    pb = Problem(spec, inp, rng, make_module, run_forward, run_backward, grad_state)
    gx, gh0, gc0, grads = pb.analytic()

    assert_grad(gx, numerical_grad(inp["x"], pb.loss), "grad_x")
    if inp["h0"] is not None:
        assert_grad(gh0, numerical_grad(inp["h0"], pb.loss), "grad_h0")
    if inp["c0"] is not None:
        assert_grad(gc0, numerical_grad(inp["c0"], pb.loss), "grad_c0")
    params = pb.m.parameters()
    assert set(grads) == set(params) == set(spec.param_shapes())
    for k, p in params.items():
        assert_grad(grads[k], numerical_grad(p, pb.loss), f"grad {k}")


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
def test_padded_steps_get_no_gradient(cell, batch_first, rng, make_module, make_inputs, run_forward, run_backward):
    """grad_out at steps >= length is ignored, and grad_x is exactly 0 there."""
    spec = spec_for(cell, num_layers=2, bidirectional=True, batch_first=batch_first)
    inp = make_inputs(spec, rng, 6, 4, state=True, lengths=[6, 2, 1, 4])
    pb = Problem(spec, inp, rng, make_module, run_forward, run_backward)
    gx, gh0, gc0, grads = pb.analytic()

    w_garbage = pb.w["out"].copy()
    w_tm = w_garbage.transpose(1, 0, 2) if batch_first else w_garbage  # a view
    for b, n in enumerate(inp["lengths"]):
        w_tm[n:, b] = 1e3 * rng.standard_normal(w_tm[n:, b].shape)
    pb.w["out"] = w_garbage
    gx2, gh02, gc02, grads2 = pb.analytic()

    np.testing.assert_allclose(gx2, gx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gh02, gh0, rtol=1e-12, atol=1e-12)
    if gc0 is not None:
        np.testing.assert_allclose(gc02, gc0, rtol=1e-12, atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads2[k], grads[k], rtol=1e-12, atol=1e-12, err_msg=k)
    gx_tm = gx.transpose(1, 0, 2) if batch_first else gx
    for b, n in enumerate(inp["lengths"]):
        assert np.all(gx_tm[n:, b] == 0.0)


def test_parameter_gradients_accumulate_until_zero_grad(cell, rng, make_module, make_inputs, run_forward, run_backward):
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    inp1 = make_inputs(spec, rng, T, B, state=True, lengths="random")
    inp2 = make_inputs(spec, rng, T, B, state=True)
    pb = Problem(spec, inp1, rng, make_module, run_forward, run_backward)
    m = pb.m
    gx1, *_, g1 = pb.analytic()
    pb.inp = inp2
    gx2, *_, g2 = pb.analytic()

    live = m.grads()  # views: they must follow what happens below
    m.zero_grad()
    assert all(np.all(v == 0) for v in live.values())
    for inp in (inp1, inp2):
        pb.inp = inp
        pb.run()
        gx, *_ = run_backward(m, spec, pb.w["out"], pb.w["h"], pb.w["c"])
        # grad_x is the gradient of this call alone, not accumulated
        np.testing.assert_allclose(gx, gx1 if inp is inp1 else gx2, rtol=1e-12, atol=1e-12)
    for k in g1:
        np.testing.assert_allclose(live[k], g1[k] + g2[k], rtol=1e-12, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(m.grads()[k], g1[k] + g2[k], rtol=1e-12, atol=1e-12, err_msg=k)
    m.zero_grad()
    assert all(np.all(v == 0) for v in m.grads().values())
    assert all(np.all(v == 0) for v in live.values())


def test_eval_forward_then_train_forward_backward(cell, rng, make_module, make_inputs, run_forward, run_backward):
    """An eval forward in between does not disturb a later train forward/backward."""
    spec = spec_for(cell, num_layers=2)
    inp = make_inputs(spec, rng, T, B, state=True)
    pb = Problem(spec, inp, rng, make_module, run_forward, run_backward)
    want = pb.analytic()
    pb.m.eval()
    pb.run()
    pb.m.train()
    got = pb.analytic()
    for a, b in zip(got[:3], want[:3]):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for k in want[3]:
        np.testing.assert_allclose(got[3][k], want[3][k], rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
def test_training_steps_of_other_shapes_reuse_buffers(cell, batch_first, rng, make_module, make_inputs, run_forward,
                                                      run_backward):
    """A training forward refills the buffers its layer kept from the last backward (the cache
    object is handed back): steps of larger, smaller and equal shapes in turn, with lengths and
    dropout, still give the gradients of finite differences."""
    spec = spec_for(cell, input_size=3, hidden_size=3, num_layers=3, bidirectional=True, dropout=0.3,
                    batch_first=batch_first)
    pb, spare = None, None
    for T_, B_ in [(4, 3), (6, 5), (3, 2), (3, 2)]:
        inp = make_inputs(spec, rng, T_, B_, state=True, lengths="random")
        if pb is None:
            pb = Problem(spec, inp, rng, make_module, run_forward, run_backward)
        else:  # new loss weights for the new shapes, without a training forward (it would take the spare)
            D, L, P = spec.num_directions, spec.num_layers, spec.out_size
            pb.inp = inp
            pb.w = {"out": rng.standard_normal((B_, T_, D * P) if batch_first else (T_, B_, D * P)),
                    "h": rng.standard_normal((D * L, B_, P)),
                    "c": rng.standard_normal((D * L, B_, spec.hidden_size)) if spec.mode == "LSTM" else None}
        pb.m.zero_grad()
        pb.run()
        assert spare is None or pb.m._cache[0] is spare  # the last step's cache, refilled
        gx, gh0, gc0 = pb.bwd(pb.m, spec, pb.w["out"], pb.w["h"], pb.w["c"])
        grads = {k: np.array(v) for k, v in pb.m.grads().items()}
        spare, pb.m._spare_cache = pb.m._spare_cache, None  # the differences' forwards get caches of their own
        assert spare is not None
        assert_grad(gx, numerical_grad(inp["x"], pb.loss), "grad_x")
        assert_grad(gh0, numerical_grad(inp["h0"], pb.loss), "grad_h0")
        for k, p in pb.m.parameters().items():
            assert_grad(grads[k], numerical_grad(p, pb.loss), f"grad {k}")
        pb.m._spare_cache = spare


def test_float32_gradients_close_to_float64(cell, rng, make_module, make_inputs, run_forward, run_backward):
    spec = spec_for(cell, num_layers=2, bidirectional=True)
    inp = make_inputs(spec, rng, T, B, state=True, lengths="random")
    params = reference.init_params(spec, rng)
    results = []
    for dtype in (np.float64, np.float32):
        m = make_module(spec, dtype, params=params)
        out, h_n, c_n = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
        w = np.random.default_rng(3)
        gout = w.standard_normal(out.shape)
        gh = w.standard_normal(h_n.shape)
        gc = None if c_n is None else w.standard_normal(c_n.shape)
        gx, gh0, gc0 = run_backward(m, spec, gout, gh, gc)
        assert gx.dtype == dtype and gh0.dtype == dtype
        grads = m.grads()
        results.append([gx, gh0] + ([gc0] if gc0 is not None else []) + [grads[k] for k in sorted(grads)])
    for a, b in zip(*results):
        scale = max(1.0, float(np.abs(a).max()))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * scale)
