"""Optimizers, gradient clipping and learning-rate schedules against torch.optim.

The same float64 parameters start in an rnnkit module and in plain torch tensors; at every
step the same random gradients are written into both (rnnkit through the live views of
m.grads(), torch into p.grad), both optimizers step, and after every step the parameters
must agree to 1e-12.  Half-way the learning rate is changed on both (opt.lr is mutable).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

F64 = np.float64
STEPS = 6

# name -> (rnnkit factory, torch factory, keyword arguments shared by both)
OPTIMIZERS = {
    "sgd": ("SGD", "SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", "SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_nesterov": ("SGD", "SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    "sgd_weight_decay": ("SGD", "SGD", dict(lr=0.1, weight_decay=0.1)),
    "sgd_momentum_weight_decay": ("SGD", "SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.05)),
    "sgd_nesterov_weight_decay": ("SGD", "SGD", dict(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.05)),
    "adam": ("Adam", "Adam", dict(lr=0.01)),
    "adam_betas_eps": ("Adam", "Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6)),
    "adam_weight_decay": ("Adam", "Adam", dict(lr=0.01, weight_decay=0.1)),
    "adamw": ("AdamW", "AdamW", dict(lr=0.01)),
    "adamw_weight_decay": ("AdamW", "AdamW", dict(lr=0.02, betas=(0.85, 0.995), eps=1e-7, weight_decay=0.3)),
}


def build_model(rk, kind):
    if kind == "linear":
        return rk.Linear(4, 3, dtype=F64, seed=1)
    if kind == "lstm":
        return rk.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, dtype=F64, seed=2)
    if kind == "sequential":
        return rk.Sequential(
            rk.Embedding(7, 3, padding_idx=0, dtype=F64, seed=3),
            rk.GRU(3, 4, batch_first=True, dtype=F64, seed=4),
            rk.LastStep(),
            rk.Linear(4, 2, dtype=F64, seed=5),
        )
    raise AssertionError(kind)


def torch_params(model):
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in model.state_dict().items()}


def set_grads(model, tparams, rng, scale=1.0):
    """The same random gradients into the rnnkit module (live views) and the torch tensors."""
    grads = model.grads()
    for k, p in tparams.items():
        g = scale * rng.standard_normal(p.shape)
        grads[k][...] = g
        p.grad = torch.tensor(g)


def assert_same_params(model, tparams, tol=1e-12, what=""):
    params = model.parameters()
    assert set(params) == set(tparams)
    for k, p in tparams.items():
        np.testing.assert_allclose(params[k], p.detach().numpy(), rtol=tol, atol=tol, err_msg=f"{what} {k}")


@pytest.mark.parametrize("kind", ["linear", "lstm", "sequential"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_matches_torch(rk, rng, name, kind):
    rk_name, torch_name, kw = OPTIMIZERS[name]
    model = build_model(rk, kind)
    tparams = torch_params(model)
    opt = getattr(rk, rk_name)(**kw)
    topt = getattr(torch.optim, torch_name)(list(tparams.values()), **kw, foreach=False)
    assert opt.lr == kw["lr"]
    for step in range(STEPS):
        if step == STEPS // 2:  # a mutable learning rate, as a scheduler would set it
            opt.lr = kw["lr"] * 0.3
            for group in topt.param_groups:
                group["lr"] = kw["lr"] * 0.3
        set_grads(model, tparams, rng)
        opt.step(model)
        topt.step()
        assert_same_params(model, tparams, what=f"step {step}")


def test_step_leaves_gradients_alone_and_updates_views_in_place(rk, rng):
    model = build_model(rk, "sequential")
    views = model.parameters()
    before = model.state_dict()
    tparams = torch_params(model)
    set_grads(model, tparams, rng)
    grads_before = {k: v.copy() for k, v in model.grads().items()}
    rk.SGD(lr=0.1).step(model)
    for k, g in model.grads().items():
        np.testing.assert_array_equal(g, grads_before[k])
        # the views handed out before the step see the update (no reallocation)
        np.testing.assert_allclose(views[k], before[k] - 0.1 * grads_before[k], rtol=1e-14, atol=1e-15)


def test_optimizer_on_float32_model(rk, rng):
    """float32 parameters are updated in float32, close to torch's float32 Adam."""
    model = rk.LSTM(3, 4, dtype=np.float32, seed=0)
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in model.state_dict().items()}
    opt, topt = rk.Adam(lr=0.01), torch.optim.Adam(list(tparams.values()), lr=0.01)
    for _ in range(3):
        grads = model.grads()
        for k, p in tparams.items():
            g = rng.standard_normal(p.shape).astype(np.float32)
            grads[k][...] = g
            p.grad = torch.tensor(g)
        opt.step(model)
        topt.step()
    for k, v in model.parameters().items():
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, tparams[k].detach().numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- clipping
@pytest.mark.parametrize("max_norm", [0.5, 3.0, 1e6], ids=["max0.5", "max3", "max1e6"])
@pytest.mark.parametrize("kind", ["linear", "sequential"])
def test_clip_grad_norm_matches_torch(rk, rng, kind, max_norm):
    model = build_model(rk, kind)
    tparams = torch_params(model)
    set_grads(model, tparams, rng, scale=0.3)
    norm = rk.clip_grad_norm(model, max_norm)
    t_norm = torch.nn.utils.clip_grad_norm_(list(tparams.values()), max_norm)
    np.testing.assert_allclose(float(norm), float(t_norm), rtol=1e-13)
    grads = model.grads()
    for k, p in tparams.items():
        np.testing.assert_allclose(grads[k], p.grad.numpy(), rtol=1e-13, atol=1e-15, err_msg=k)
    after = np.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    assert after <= max_norm * (1 + 1e-12)
    if max_norm > float(t_norm):
        assert after == pytest.approx(float(t_norm), rel=1e-14)


def test_clip_grad_norm_returns_norm_before_clipping(rk):
    model = rk.Linear(2, 2, dtype=F64)
    grads = model.grads()
    grads["weight"][...] = [[3.0, 0.0], [0.0, 0.0]]
    grads["bias"][...] = [0.0, 4.0]
    assert float(rk.clip_grad_norm(model, 1.0)) == pytest.approx(5.0, rel=1e-15)
    np.testing.assert_allclose(grads["weight"], [[0.6, 0.0], [0.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(grads["bias"], [0.0, 0.8], rtol=1e-6)


# ----------------------------------------------------------------------------- schedulers
def lr_sequences(rk, rk_sched, torch_sched, epochs, lr=0.1):
    opt = rk.SGD(lr=lr, momentum=0.9)
    sched = rk_sched(opt)
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    topt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    tsched = torch_sched(topt)
    got, want = [opt.lr], [topt.param_groups[0]["lr"]]
    for _ in range(epochs):
        topt.step()  # torch warns when the scheduler steps before the optimizer ever has
        sched.step()
        tsched.step()
        got.append(opt.lr)
        want.append(topt.param_groups[0]["lr"])
    return np.array(got), np.array(want)


@pytest.mark.parametrize("step_size, gamma", [(1, 0.5), (3, 0.1), (4, 0.7)])
def test_steplr_matches_torch(rk, step_size, gamma):
    got, want = lr_sequences(
        rk,
        lambda o: rk.StepLR(o, step_size, gamma=gamma),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma=gamma),
        epochs=13,
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)


def test_steplr_default_gamma(rk):
    opt = rk.SGD(lr=1.0)
    sched = rk.StepLR(opt, 2)
    lrs = []
    for _ in range(5):
        sched.step()
        lrs.append(opt.lr)
    np.testing.assert_allclose(lrs, [1.0, 0.1, 0.1, 0.01, 0.01], rtol=1e-12)


@pytest.mark.parametrize("T_max, eta_min", [(5, 0.0), (4, 0.01), (10, 1e-3)])
def test_cosine_annealing_matches_torch(rk, T_max, eta_min):
    got, want = lr_sequences(
        rk,
        lambda o: rk.CosineAnnealingLR(o, T_max, eta_min=eta_min),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max, eta_min=eta_min),
        epochs=3 * T_max + 1,  # past T_max the schedule goes back up, as torch's does
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    assert got[T_max] == pytest.approx(eta_min, abs=1e-14)


def test_scheduler_drives_adam(rk):
    opt = rk.Adam(lr=0.01)
    sched = rk.StepLR(opt, 1, gamma=0.5)
    sched.step()
    sched.step()
    assert opt.lr == pytest.approx(0.0025, rel=1e-15)


def test_clip_grad_norm_of_several_modules_matches_torch(rk):
    enc, dec = rk.LSTM(3, 4, dtype=np.float64, seed=0), rk.Linear(4, 2, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    for m in (enc, dec):
        m._grad[...] = rng.standard_normal(m._grad.shape)
    tensors = [torch.nn.Parameter(torch.zeros(m._grad.shape, dtype=torch.float64)) for m in (enc, dec)]
    for t, m in zip(tensors, (enc, dec)):
        t.grad = torch.tensor(m._grad.copy())
    expected = torch.nn.utils.clip_grad_norm_(tensors, 0.5).item()
    assert rk.clip_grad_norm([enc, dec], 0.5) == pytest.approx(expected, rel=1e-12)
    for t, m in zip(tensors, (enc, dec)):
        np.testing.assert_allclose(m._grad, t.grad.numpy(), rtol=1e-12, atol=0)
    with pytest.raises(TypeError, match="model"):
        rk.clip_grad_norm([enc, "decoder"], 1.0)
