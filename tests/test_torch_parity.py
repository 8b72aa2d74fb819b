"""Parity with PyTorch 2.x autograd on random configurations.

For each seeded random configuration (RNN tanh/relu, LSTM with and without proj_size, GRU;
1-3 layers; bidirectional; batch_first; bias; h0/c0 given or not; lengths through
pack_padded_sequence(enforce_sorted=False); unbatched input) the torch module's state_dict
is loaded into rnnkit as is, and out, h_n, c_n, grad_x, grad_h0, grad_c0 and every parameter
gradient must match torch: 1e-9 in float64, 1e-4 in float32 (relative to the magnitude).

The same configurations first check the NumPy reference itself against torch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import reference
from reference import Spec

torch = pytest.importorskip("torch")


@dataclasses.dataclass(frozen=True)
class Case:
    spec: Spec
    T: int
    B: int
    unbatched: bool
    state: bool  # pass h0 (and c0)
    lengths: bool  # pass lengths (packed sequences in torch)
    grad_state: bool  # loss also depends on h_n (and c_n)
    seed: int

    def __str__(self) -> str:
        flags = [f"T{self.T}", "unbatched" if self.unbatched else f"B{self.B}"]
        flags += [tag for on, tag in [(self.state, "h0"), (self.lengths, "len"), (not self.grad_state, "noGh")] if on]
        return f"{self.spec}-{'-'.join(flags)}-s{self.seed}"


def random_cases(n: int, seed: int) -> list[Case]:
    r = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        kind = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru"][i % 5]
        H = int(r.integers(2, 6))
        spec = Spec(
            mode={"rnn_tanh": "RNN", "rnn_relu": "RNN", "gru": "GRU"}.get(kind, "LSTM"),
            input_size=int(r.integers(1, 6)),
            hidden_size=H,
            num_layers=int(r.integers(1, 4)),
            nonlinearity="relu" if kind == "rnn_relu" else "tanh",
            bias=bool(r.random() < 0.8),
            batch_first=bool(r.random() < 0.5),
            bidirectional=bool(r.random() < 0.5),
            proj_size=int(r.integers(1, H)) if kind == "lstm_proj" else 0,
        )
        unbatched = bool(r.random() < 0.15)
        cases.append(
            Case(
                spec=spec,
                T=int(r.integers(1, 8)),
                B=1 if unbatched else int(r.integers(1, 5)),
                unbatched=unbatched,
                state=bool(r.random() < 0.7),
                lengths=(not unbatched) and bool(r.random() < 0.5),
                grad_state=bool(r.random() < 0.8),
                seed=i,
            )
        )
    return cases


CASES = random_cases(40, seed=2024)


@pytest.fixture(params=CASES, ids=str)
def case(request) -> Case:
    return request.param


def close(actual, expected, tol, what):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol * scale, err_msg=what)


def case_data(case: Case, make_inputs):
    rng = np.random.default_rng(1000 + case.seed)
    params = reference.init_params(case.spec, rng)
    inp = make_inputs(
        case.spec, rng, case.T, case.B, unbatched=case.unbatched, state=case.state,
        lengths="random" if case.lengths else None,
    )
    return params, inp, rng


def _t(a, dtype, grad=False):
    if a is None:
        return None
    t = torch.tensor(np.asarray(a), dtype=torch.float64 if dtype == np.float64 else torch.float32)
    return t.requires_grad_(grad)


def test_reference_matches_torch(case, make_inputs, make_torch, run_torch):
    """The oracle itself: reference.forward == torch forward to 1e-12 (float64)."""
    params, inp, _ = case_data(case, make_inputs)
    tm = make_torch(case.spec, params, np.float64)
    lengths = None if inp["lengths"] is None else torch.as_tensor(inp["lengths"])
    with torch.no_grad():
        t_out, t_h, t_c = run_torch(
            tm, case.spec, _t(inp["x"], np.float64), _t(inp["h0"], np.float64), _t(inp["c0"], np.float64), lengths
        )
    out, h_n, c_n = reference.forward(case.spec, params, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
    np.testing.assert_allclose(out, t_out.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, t_h.numpy(), rtol=0, atol=1e-12)
    if case.spec.mode == "LSTM":
        np.testing.assert_allclose(c_n, t_c.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_matches_torch_autograd(
    case, dtype, make_inputs, make_module, make_torch, run_torch, run_forward, run_backward
):
    spec = case.spec
    params, inp, rng = case_data(case, make_inputs)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    tm = make_torch(spec, params, dtype)

    # torch autograd of L = sum(out*Wo) + sum(h_n*Wh) + sum(c_n*Wc)
    x = _t(inp["x"], dtype, grad=True)
    h0 = _t(inp["h0"], dtype, grad=True)
    c0 = _t(inp["c0"], dtype, grad=True)
    lengths = None if inp["lengths"] is None else torch.as_tensor(inp["lengths"])
    t_out, t_h, t_c = run_torch(tm, spec, x, h0, c0, lengths)
    w_out = rng.standard_normal(tuple(t_out.shape)).astype(dtype)
    w_h = rng.standard_normal(tuple(t_h.shape)).astype(dtype) if case.grad_state else None
    w_c = rng.standard_normal(tuple(t_c.shape)).astype(dtype) if (case.grad_state and t_c is not None) else None
    loss = (t_out * _t(w_out, dtype)).sum()
    if w_h is not None:
        loss = loss + (t_h * _t(w_h, dtype)).sum()
    if w_c is not None:
        loss = loss + (t_c * _t(w_c, dtype)).sum()
    loss.backward()

    # rnnkit, loaded from torch's own state_dict (tensors, as is)
    m = make_module(spec, dtype, params=tm.state_dict())
    x_in = inp["x"].astype(dtype)
    h0_in = None if inp["h0"] is None else inp["h0"].astype(dtype)
    c0_in = None if inp["c0"] is None else inp["c0"].astype(dtype)
    out, h_n, c_n = run_forward(m, spec, x_in, h0_in, c0_in, inp["lengths"])
    assert out.dtype == dtype and h_n.dtype == dtype
    assert out.shape == tuple(t_out.shape) and h_n.shape == tuple(t_h.shape)
    close(out, t_out.detach().numpy(), tol, "out")
    close(h_n, t_h.detach().numpy(), tol, "h_n")
    if spec.mode == "LSTM":
        assert c_n.shape == tuple(t_c.shape)
        close(c_n, t_c.detach().numpy(), tol, "c_n")

    gx, gh0, gc0 = run_backward(m, spec, w_out, w_h, w_c)
    assert gx.shape == x.shape
    close(gx, x.grad.numpy(), tol, "grad_x")
    if case.state:
        close(gh0, h0.grad.numpy(), tol, "grad_h0")
        if spec.mode == "LSTM":
            close(gc0, c0.grad.numpy(), tol, "grad_c0")

    grads = m.grads()
    t_grads = {k: p.grad for k, p in tm.named_parameters()}
    assert set(grads) == set(t_grads)
    for k, g in t_grads.items():
        assert grads[k].shape == tuple(g.shape), k
        close(grads[k], g.numpy(), tol, f"grad {k}")


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "len"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell_name", ["rnn_tanh", "lstm", "lstm_proj", "gru"])
def test_reference_dropout_matches_torch_layer_by_layer(
    cell_name, bidirectional, lengths, make_inputs, make_torch, run_torch
):
    """The reference's dropout placement: 3 single-layer torch modules chained by hand, each
    layer's output multiplied by its mask before it enters the next layer."""
    spec = reference.spec_for(cell_name, num_layers=3, bidirectional=bidirectional, dropout=0.5)
    rng = np.random.default_rng(5)
    params = reference.init_params(spec, rng)
    T, B = 5, 3
    inp = make_inputs(spec, rng, T, B, state=True, lengths="random" if lengths else None)
    masks = reference.draw_dropout_masks(spec, rng, T, B)
    D = spec.num_directions
    t_len = None if inp["lengths"] is None else torch.as_tensor(inp["lengths"])

    layer_in = torch.as_tensor(inp["x"])
    hs, cs = [], []
    for layer in range(spec.num_layers):
        one = dataclasses.replace(spec, num_layers=1, dropout=0.0, input_size=spec.layer_input_size(layer))
        sfx = f"_l{layer}"
        p1 = {k.replace(sfx, "_l0"): v for k, v in params.items() if k.endswith(sfx) or (sfx + "_") in k}
        tm = make_torch(one, p1, np.float64)
        h0 = torch.as_tensor(inp["h0"][layer * D : (layer + 1) * D])
        c0 = None if inp["c0"] is None else torch.as_tensor(inp["c0"][layer * D : (layer + 1) * D])
        with torch.no_grad():
            out, h, c = run_torch(tm, one, layer_in, h0, c0, t_len)
        hs.append(h)
        cs.append(c)
        layer_in = out * torch.as_tensor(masks[layer]) if layer < spec.num_layers - 1 else out

    out, h_n, c_n = reference.forward(spec, params, inp["x"], inp["h0"], inp["c0"], inp["lengths"], masks)
    np.testing.assert_allclose(out, layer_in.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(h_n, torch.cat(hs).numpy(), rtol=0, atol=1e-12)
    if spec.mode == "LSTM":
        np.testing.assert_allclose(c_n, torch.cat(cs).numpy(), rtol=0, atol=1e-12)
    # the masks do matter
    assert not np.allclose(out, reference.forward(spec, params, inp["x"], inp["h0"], inp["c0"], inp["lengths"])[0])
