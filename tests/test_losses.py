"""Losses (rk.losses) against torch.nn.functional and central finite differences.

Each loss returns (loss, grad) with grad = dL/dpred.  In float64 the value and the
gradient must equal PyTorch's (reduction='mean') to 1e-10, the gradient also matches
(L(p+ε) - L(p-ε)) / 2ε, and float32 inputs give float32 gradients close to float64.
Per-step cross entropy masks padded steps (t >= lengths[b]) and targets == ignore_index:
the torch oracle gets the same mask by setting those targets to ignore_index.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_gradcheck import assert_grad, numerical_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def losses(rk):
    return rk.losses


def torch_value_and_grad(fn, pred, *args, **kwargs):
    """fn(pred_tensor, *args) in float64 with autograd: (loss float, dL/dpred array)."""
    p = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    loss = fn(p, *args, **kwargs)
    loss.backward()
    return float(loss.detach()), p.grad.numpy()


def check_against_torch(got, want):
    (loss, grad), (t_loss, t_grad) = got, want
    assert isinstance(loss, float)
    np.testing.assert_allclose(loss, t_loss, **TOL)
    np.testing.assert_allclose(grad, t_grad, **TOL)


def check_finite_differences(fn, pred):
    """grad from fn(pred) equals central differences of the loss (pred is float64)."""
    _, grad = fn(pred)
    assert_grad(grad, numerical_grad(pred, lambda: fn(pred)[0]), "dL/dpred")


# ----------------------------------------------------------------------------- mse
@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)], ids=str)
def test_mse_matches_torch_and_finite_differences(losses, rng, shape):
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    got = losses.mse(pred, target)
    assert got[1].shape == shape and got[1].dtype == np.float64
    check_against_torch(got, torch_value_and_grad(F.mse_loss, pred, torch.tensor(target)))
    np.testing.assert_allclose(got[0], np.mean((pred - target) ** 2), **TOL)
    check_finite_differences(lambda p: losses.mse(p, target), pred)


# ----------------------------------------------------------------------------- cross entropy
def torch_ce_masked(logits, target, lengths, ignore_index, batch_first):
    """Torch's cross entropy with padded steps turned into ignore_index targets."""
    target = np.array(target)
    if target.ndim == 2 and lengths is not None:
        tm = target if batch_first else target.T  # (B, T) view
        for b, n in enumerate(lengths):
            tm[b, n:] = ignore_index
    C = logits.shape[-1]

    def fn(p):
        return F.cross_entropy(p.reshape(-1, C), torch.tensor(target.reshape(-1)), ignore_index=ignore_index)

    return torch_value_and_grad(fn, logits)


def test_cross_entropy_2d_matches_torch(losses, rng):
    logits = 2.0 * rng.standard_normal((6, 4))
    target = rng.integers(0, 4, size=6)
    got = losses.cross_entropy(logits, target)
    assert got[1].shape == logits.shape and got[1].dtype == np.float64
    check_against_torch(got, torch_value_and_grad(F.cross_entropy, logits, torch.tensor(target)))
    # and by hand: mean of logsumexp - picked logit
    lse = np.log(np.sum(np.exp(logits), axis=1))
    np.testing.assert_allclose(got[0], np.mean(lse - logits[np.arange(6), target]), **TOL)
    check_finite_differences(lambda p: losses.cross_entropy(p, target), logits)


def test_cross_entropy_2d_ignore_index(losses, rng):
    logits = rng.standard_normal((7, 3))
    target = rng.integers(0, 3, size=7)
    target[[1, 4]] = -1
    got = losses.cross_entropy(logits, target, ignore_index=-1)
    check_against_torch(got, torch_value_and_grad(F.cross_entropy, logits, torch.tensor(target), ignore_index=-1))
    assert np.all(got[1][[1, 4]] == 0.0)


# name -> (batch_first, lengths, ignore_index, positions set to ignore_index as (b, t))
PER_STEP = {
    "bf": (True, None, -100, []),
    "tm": (False, None, -100, []),
    "bf_lengths": (True, [5, 2, 1, 4], -100, []),
    "tm_lengths": (False, [3, 5, 1, 5], -100, []),
    "bf_ignore": (True, None, -100, [(0, 1), (2, 4), (3, 0)]),
    "tm_lengths_ignore_valid_class": (False, [5, 2, 4, 3], 2, [(0, 4), (1, 0), (2, 2)]),
    "bf_lengths_ignore_neg1": (True, [4, 5, 2, 1], -1, [(0, 0), (1, 3)]),
}


@pytest.mark.parametrize("case", list(PER_STEP))
def test_cross_entropy_per_step_matches_torch(losses, rng, case):
    batch_first, lengths, ignore_index, ignored = PER_STEP[case]
    B, T, C = 4, 5, 3
    logits = 1.5 * rng.standard_normal((B, T, C) if batch_first else (T, B, C))
    target = rng.integers(0, C, size=(B, T) if batch_first else (T, B))
    tgt_bt = target if batch_first else target.T  # (B, T) view
    for b, t in ignored:
        tgt_bt[b, t] = ignore_index
    lengths_arr = None if lengths is None else np.array(lengths, dtype=np.int64)

    def fn(p):
        return losses.cross_entropy(p, target, lengths=lengths_arr, ignore_index=ignore_index, batch_first=batch_first)

    got = fn(logits)
    assert got[1].shape == logits.shape and got[1].dtype == np.float64
    check_against_torch(got, torch_ce_masked(logits, target, lengths, ignore_index, batch_first))
    check_finite_differences(fn, logits)

    # padded steps and ignored targets get exactly zero gradient
    g_bt = got[1] if batch_first else got[1].transpose(1, 0, 2)
    counted = tgt_bt != ignore_index
    if lengths is not None:
        counted &= np.arange(T)[None, :] < np.array(lengths)[:, None]
    assert np.all(g_bt[~counted] == 0.0)
    assert np.all(np.any(g_bt[counted] != 0.0, axis=-1))


def test_cross_entropy_padded_logits_do_not_matter(losses, rng):
    """Changing logits at padded steps changes neither the loss nor the gradient elsewhere."""
    B, T, C = 3, 4, 5
    lengths = np.array([4, 1, 2])
    logits = rng.standard_normal((B, T, C))
    target = rng.integers(0, C, size=(B, T))
    loss, grad = losses.cross_entropy(logits, target, lengths=lengths)
    logits2 = logits.copy()
    for b, n in enumerate(lengths):
        logits2[b, n:] = 50.0 * rng.standard_normal((T - n, C))
    loss2, grad2 = losses.cross_entropy(logits2, target, lengths=lengths)
    assert loss2 == pytest.approx(loss, rel=1e-14)
    np.testing.assert_array_equal(grad2, grad)


# ----------------------------------------------------------------------------- bce with logits
@pytest.mark.parametrize("soft", [False, True], ids=["hard", "soft"])
@pytest.mark.parametrize("shape", [(6,), (4, 3), (2, 3, 2)], ids=str)
def test_bce_with_logits_matches_torch(losses, rng, shape, soft):
    logits = 2.0 * rng.standard_normal(shape)
    target = rng.random(shape) if soft else rng.integers(0, 2, size=shape).astype(np.float64)
    got = losses.bce_with_logits(logits, target)
    assert got[1].shape == shape and got[1].dtype == np.float64
    check_against_torch(
        got, torch_value_and_grad(F.binary_cross_entropy_with_logits, logits, torch.tensor(target))
    )
    sig = 1.0 / (1.0 + np.exp(-logits))
    want = -np.mean(target * np.log(sig) + (1 - target) * np.log(1 - sig))
    np.testing.assert_allclose(got[0], want, rtol=1e-9)
    check_finite_differences(lambda p: losses.bce_with_logits(p, target), logits)


# ----------------------------------------------------------------------------- extremes
def test_extreme_logits_stay_finite(losses):
    logits = np.array([[1e4, -1e4, 0.0], [-800.0, 800.0, 3.0], [1e300, 0.0, -1e300]])
    target = np.array([1, 1, 0])
    loss, grad = losses.cross_entropy(logits, target)
    t_loss, t_grad = torch_value_and_grad(F.cross_entropy, logits, torch.tensor(target))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, t_loss, **TOL)
    np.testing.assert_allclose(grad, t_grad, **TOL)

    z = np.array([1e4, -1e4, 800.0, -800.0, 40.0, -40.0])
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.3, 0.7])
    loss, grad = losses.bce_with_logits(z, y)
    t_loss, t_grad = torch_value_and_grad(F.binary_cross_entropy_with_logits, z, torch.tensor(y))
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, t_loss, **TOL)
    np.testing.assert_allclose(grad, t_grad, **TOL)

    loss, grad = losses.cross_entropy(np.array([[1e4, -1e4]], dtype=np.float32), np.array([0]))
    assert loss == 0.0 and np.all(np.isfinite(grad))
    loss, grad = losses.bce_with_logits(np.array([1e4, -1e4], dtype=np.float32), np.array([0.0, 1.0]))
    assert np.isfinite(loss) and loss == pytest.approx(1e4, rel=1e-6) and np.all(np.isfinite(grad))


# ----------------------------------------------------------------------------- float32
@pytest.mark.parametrize("name", ["mse", "cross_entropy", "cross_entropy_steps", "bce_with_logits"])
def test_float32_gives_float32_grad_close_to_float64(losses, rng, name):
    pred = rng.standard_normal((3, 4, 5))
    lengths = np.array([4, 2, 3])
    if name == "mse":
        target = rng.standard_normal(pred.shape)
        call = lambda p: losses.mse(p, target)  # noqa: E731
    elif name == "cross_entropy":
        pred, target = pred[0], rng.integers(0, 5, size=4)
        call = lambda p: losses.cross_entropy(p, target)  # noqa: E731
    elif name == "cross_entropy_steps":
        target = rng.integers(0, 5, size=(3, 4))
        call = lambda p: losses.cross_entropy(p, target, lengths=lengths)  # noqa: E731
    else:
        target = rng.random(pred.shape)
        call = lambda p: losses.bce_with_logits(p, target)  # noqa: E731
    l64, g64 = call(pred)
    l32, g32 = call(pred.astype(np.float32))
    assert isinstance(l32, float)
    assert g32.dtype == np.float32 and g32.shape == pred.shape
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- get()
@pytest.mark.parametrize("name", ["mse", "cross_entropy", "bce_with_logits"])
def test_get_by_name(losses, name):
    assert losses.get(name) is getattr(losses, name)


def test_get_unknown_name_lists_the_known_ones(losses):
    with pytest.raises(ValueError, match="hinge") as e:
        losses.get("hinge")
    for known in ("mse", "cross_entropy", "bce_with_logits"):
        assert known in str(e.value)
