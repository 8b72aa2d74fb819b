"""Training: rnnkit's Trainer against the same model trained in PyTorch, and the Trainer's contract.

Parity: a model is built in rnnkit (float64), its state_dict is copied into the equivalent
torch module (whose submodules are named "0", "1", "3" like nn.Sequential, so the keys are
the same), and both are trained on the same batches in the same order (shuffle=False) for
20 steps.  The final weights must agree to 1e-8.  Lengths go through torch's packed
sequences; the classifier's head reads h_n of the last layer.

Then the Trainer itself: history keys, reproducibility, early stopping with restored
weights, non-finite losses, evaluate()'s accuracy, and two small learning problems.
"""

from __future__ import annotations

import numpy as np
import pytest

F64 = np.float64


# ============================================================================= torch twins
def torch_twin(rk_model, kind):
    """The torch module with rk_model's weights and the same state_dict keys."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    from torch.nn.utils.rnn import pack_padded_sequence

    class Classifier(nn.Module):  # Embedding + LSTM + LastStep + Linear
        def __init__(self, V, E, H, C):
            super().__init__()
            self.add_module("0", nn.Embedding(V, E, padding_idx=0))
            self.add_module("1", nn.LSTM(E, H, batch_first=True))
            self.add_module("3", nn.Linear(H, C))

        def forward(self, x, lengths):
            e = self._modules["0"](x)
            packed = pack_padded_sequence(e, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self._modules["1"](packed)
            return self._modules["3"](h_n[-1])

    class Regressor(nn.Module):  # LSTM + Linear per step
        def __init__(self, I, H, O):  # noqa: E741
            super().__init__()
            self.add_module("0", nn.LSTM(I, H, batch_first=True))
            self.add_module("1", nn.Linear(H, O))

        def forward(self, x, lengths=None):
            out, _ = self._modules["0"](x)
            return self._modules["1"](out)

    sd = rk_model.state_dict()
    if kind == "classifier":
        (V, E), (C, H) = sd["0.weight"].shape, sd["3.weight"].shape
        tm = Classifier(V, E, H, C)
    else:
        (O, H), I = sd["1.weight"].shape, sd["0.weight_ih_l0"].shape[1]  # noqa: E741
        tm = Regressor(I, H, O)
    tm = tm.double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=True)
    return tm


def classifier(rk, V=8, E=4, H=5, C=3, seed=0, dtype=F64):
    return rk.Sequential(
        rk.Embedding(V, E, padding_idx=0, dtype=dtype, seed=seed),
        rk.LSTM(E, H, batch_first=True, dtype=dtype, seed=seed + 1),
        rk.LastStep(),
        rk.Linear(H, C, dtype=dtype, seed=seed + 2),
    )


def regressor(rk, I=2, H=5, O=1, seed=0, dtype=F64):  # noqa: E741
    return rk.Sequential(
        rk.LSTM(I, H, batch_first=True, dtype=dtype, seed=seed),
        rk.Linear(H, O, dtype=dtype, seed=seed + 1),
    )


def token_data(rng, N, T, V, C):
    lengths = rng.integers(1, T + 1, size=N)
    x = rng.integers(1, V, size=(N, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, C, size=N)
    return x, y, lengths


def regression_data(rng, N, T, I, O):  # noqa: E741
    return rng.standard_normal((N, T, I)), rng.standard_normal((N, T, O))


# name -> (model kind, loss, rnnkit optimizer, torch optimizer (name, kwargs), clip, StepLR step size)
PARITY = {
    "classifier_sgd_momentum": ("classifier", "cross_entropy", ("SGD", dict(lr=0.5, momentum=0.9)), None, None),
    "classifier_adam": ("classifier", "cross_entropy", ("Adam", dict(lr=0.05)), None, None),
    "classifier_adamw_clip_steplr": (
        "classifier", "cross_entropy", ("AdamW", dict(lr=0.05, weight_decay=0.1)), 0.3, 2,
    ),
    "regressor_sgd_momentum": ("regressor", "mse", ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)), None, None),
    "regressor_adam": ("regressor", "mse", ("Adam", dict(lr=0.02, weight_decay=0.01)), None, None),
}


@pytest.mark.parametrize("name", list(PARITY))
def test_training_matches_pytorch(rk, rng, name):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    kind, loss_name, (opt_name, opt_kw), clip, step_size = PARITY[name]
    N, bs, epochs = 40, 8, 4  # 5 batches x 4 epochs = 20 steps
    if kind == "classifier":
        model = classifier(rk)
        x, y, lengths = token_data(rng, N, 6, 8, 3)
    else:
        model = regressor(rk)
        (x, y), lengths = regression_data(rng, N, 5, 2, 1), None
    tm = torch_twin(model, kind)

    trainer = rk.Trainer(
        model,
        loss=loss_name,
        optimizer=getattr(rk, opt_name)(**opt_kw),
        clip_grad_norm=clip,
        lr_scheduler=None if step_size is None else (lambda opt: rk.StepLR(opt, step_size, gamma=0.5)),
    )
    history = trainer.fit(x, y, lengths=lengths, epochs=epochs, batch_size=bs, shuffle=False, progress=False)

    topt = getattr(torch.optim, opt_name)(tm.parameters(), **opt_kw)
    tsched = None if step_size is None else torch.optim.lr_scheduler.StepLR(topt, step_size, gamma=0.5)
    tloss = F.cross_entropy if loss_name == "cross_entropy" else F.mse_loss
    t_epoch_loss = []
    for _ in range(epochs):
        losses = []
        for i in range(0, N, bs):
            xb = torch.tensor(x[i : i + bs])
            yb = torch.tensor(y[i : i + bs])
            topt.zero_grad()
            loss = tloss(tm(xb, None if lengths is None else lengths[i : i + bs]), yb)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(tm.parameters(), clip)
            topt.step()
            losses.append(float(loss.detach()))
        t_epoch_loss.append(np.mean(losses))
        if tsched is not None:
            tsched.step()

    want = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    got = model.state_dict()
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-8, atol=1e-8, err_msg=k)
    # the epoch loss is the mean of the batch losses (equal batch sizes here)
    np.testing.assert_allclose(history["loss"], t_epoch_loss, rtol=1e-8)


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_torch_state_dict_loads_and_predicts_the_same(rk, rng, kind):
    """The other direction: a torch module's state_dict (tensors) loads into the Sequential as
    it is, and both give the same outputs (padding ids past the lengths included)."""
    torch = pytest.importorskip("torch")
    model = classifier(rk) if kind == "classifier" else regressor(rk)
    tm = torch_twin(model, kind)
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(0.3 * torch.randn(p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    model.load_state_dict(tm.state_dict())
    if kind == "classifier":
        x, _, lengths = token_data(rng, 9, 6, 8, 3)
    else:
        (x, _), lengths = regression_data(rng, 9, 5, 2, 1), None
    with torch.no_grad():
        want = tm(torch.tensor(x), lengths).numpy()
    np.testing.assert_allclose(model.predict(x, lengths=lengths), want, rtol=1e-12, atol=1e-13)


def test_manual_loop_matches_trainer(rk, rng):
    """forward / loss / backward / clip / step by hand gives the Trainer's weights exactly."""
    x, y, lengths = token_data(rng, 24, 5, 8, 3)
    a, b = classifier(rk, seed=3), classifier(rk, seed=3)
    rk.Trainer(a, loss="cross_entropy", optimizer=rk.Adam(lr=0.03), clip_grad_norm=0.5).fit(
        x, y, lengths=lengths, epochs=2, batch_size=6, shuffle=False, progress=False
    )
    opt = rk.Adam(lr=0.03)
    for _ in range(2):
        for i in range(0, 24, 6):
            b.zero_grad()
            logits = b(x[i : i + 6], lengths=lengths[i : i + 6])
            _, grad = rk.losses.cross_entropy(logits, y[i : i + 6])
            b.backward(grad)
            rk.clip_grad_norm(b, 0.5)
            opt.step(b)
    for k, v in b.state_dict().items():
        np.testing.assert_allclose(a.state_dict()[k], v, rtol=1e-12, atol=1e-13, err_msg=k)


def test_shuffled_batches_follow_default_rng_permutation(rk, rng):
    """shuffle=True: each epoch's order is np.random.default_rng(seed).permutation(N) (one
    generator per fit), cut into batches in that order; the last batch may be short."""
    N, bs, seed = 26, 6, 42
    x, y, lengths = token_data(rng, N, 5, 8, 3)
    a, b = classifier(rk, seed=8), classifier(rk, seed=8)
    rk.Trainer(a, loss="cross_entropy", optimizer=rk.SGD(lr=0.2, momentum=0.5)).fit(
        x, y, lengths=lengths, epochs=3, batch_size=bs, shuffle=True, seed=seed, progress=False
    )
    opt, order_rng = rk.SGD(lr=0.2, momentum=0.5), np.random.default_rng(seed)
    for _ in range(3):
        order = order_rng.permutation(N)
        for i in range(0, N, bs):
            idx = order[i : i + bs]
            b.zero_grad()
            _, grad = rk.losses.cross_entropy(b(x[idx], lengths=lengths[idx]), y[idx])
            b.backward(grad)
            opt.step(b)
    for k, v in b.state_dict().items():
        np.testing.assert_allclose(a.state_dict()[k], v, rtol=1e-12, atol=1e-13, err_msg=k)


# ============================================================================= Trainer contract
@pytest.mark.parametrize(
    "loss, validation, keys",
    [
        ("cross_entropy", False, {"loss", "accuracy"}),
        ("cross_entropy", True, {"loss", "accuracy", "val_loss", "val_accuracy"}),
        ("mse", False, {"loss"}),
        ("mse", True, {"loss", "val_loss"}),
    ],
    ids=["ce", "ce_val", "mse", "mse_val"],
)
def test_history_keys(rk, rng, loss, validation, keys):
    if loss == "cross_entropy":
        model = classifier(rk, dtype=np.float32)
        x, y, lengths = token_data(rng, 20, 4, 8, 3)
        val = (x[:6], y[:6], lengths[:6])
    else:
        model = regressor(rk, dtype=np.float32)
        (x, y), lengths = regression_data(rng, 20, 4, 2, 1), None
        val = (x[:6], y[:6])
    trainer = rk.Trainer(model, loss=loss, optimizer=rk.SGD(lr=0.01))
    history = trainer.fit(
        x, y, lengths=lengths, epochs=3, batch_size=5, validation_data=val if validation else None, progress=False
    )
    assert set(history) == keys
    for k in keys:
        assert len(history[k]) == 3 and all(np.isfinite(v) for v in history[k]), k
    metric_keys = {"loss", "accuracy"} if loss == "cross_entropy" else {"loss"}
    assert set(trainer.evaluate(x, y, lengths=lengths)) == metric_keys
    if validation:
        # the last val_loss is evaluate() on the final weights
        np.testing.assert_allclose(history["val_loss"][-1], trainer.evaluate(*val[:2], *val[2:])["loss"], rtol=1e-5)


def test_epoch_metrics_without_updates_equal_evaluate(rk, rng):
    """With lr=0 the weights never change, so the epoch loss/accuracy are those of evaluate()."""
    model = classifier(rk, seed=5)
    x, y, lengths = token_data(rng, 30, 5, 8, 3)
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.SGD(lr=0.0))
    history = trainer.fit(x, y, lengths=lengths, epochs=2, batch_size=10, progress=False)
    metrics = trainer.evaluate(x, y, lengths=lengths)
    np.testing.assert_allclose(history["loss"], [metrics["loss"]] * 2, rtol=1e-12)
    np.testing.assert_allclose(history["accuracy"], [metrics["accuracy"]] * 2, rtol=1e-12)


def test_same_seed_same_weights(rk, rng):
    x, y, lengths = token_data(rng, 30, 5, 8, 3)

    def train(fit_seed):
        model = rk.Sequential(
            rk.Embedding(8, 4, padding_idx=0, seed=0),
            rk.GRU(4, 5, batch_first=True, dropout=0.0, seed=1),
            rk.LastStep(),
            rk.Dropout(0.3, seed=2),
            rk.Linear(5, 3, seed=3),
        )
        trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.Adam(lr=0.01))
        h = trainer.fit(x, y, lengths=lengths, epochs=3, batch_size=7, shuffle=True, seed=fit_seed, progress=False)
        return model.state_dict(), h

    (w1, h1), (w2, h2), (w3, _) = train(0), train(0), train(1)
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)
    assert h1 == h2
    assert any(not np.array_equal(w1[k], w3[k]) for k in w1)  # the seed does drive the shuffle


@pytest.mark.parametrize("restore", [True, False], ids=["restore", "no_restore"])
def test_early_stopping(rk, rng, restore):
    """Random labels: the model overfits, val_loss rises, training stops `patience` epochs after
    the best epoch, and the restored weights give exactly the best val_loss."""
    x, y, lengths = token_data(rng, 40, 6, 8, 3)
    xv, yv, lv = token_data(rng, 30, 6, 8, 3)
    model = classifier(rk, H=12, seed=7)
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.Adam(lr=0.05))
    patience, epochs = 3, 60
    history = trainer.fit(
        x, y, lengths=lengths, epochs=epochs, batch_size=8, validation_data=(xv, yv, lv),
        early_stopping=patience, restore_best_weights=restore, progress=False,
    )
    val = history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < epochs, "expected early stopping on random labels"
    assert len(val) == best + 1 + patience
    assert all(len(v) == len(val) for v in history.values())
    got = trainer.evaluate(xv, yv, lengths=lv)["loss"]
    np.testing.assert_allclose(got, val[best] if restore else val[-1], rtol=1e-12)


def test_non_finite_loss_raises(rk, rng):
    x, y = regression_data(rng, 16, 3, 2, 1)
    model = regressor(rk, dtype=np.float32)
    trainer = rk.Trainer(model, loss="mse", optimizer=rk.SGD(lr=1e30))
    with pytest.raises(FloatingPointError, match="(?i)epoch") as e:
        trainer.fit(x, y, epochs=10, batch_size=4, shuffle=False, progress=False)
    assert "batch" in str(e.value).lower()


def test_nan_target_is_refused_before_training(rk, rng):
    x, y = regression_data(rng, 16, 3, 2, 1)
    y[9, 1, 0] = np.nan  # sample 9: batch 3 of epoch 1 with batch_size 4
    model = regressor(rk, dtype=np.float32)
    trainer = rk.Trainer(model, loss="mse", optimizer=rk.SGD(lr=0.01))
    with pytest.raises(ValueError, match=r"\by\b.*NaN.*\(9, 1, 0\)"):
        trainer.fit(x, y, epochs=10, batch_size=4, shuffle=False, progress=False)


@pytest.mark.parametrize("batch_size", [7, 256])
def test_evaluate_classifier_by_hand(rk, rng, batch_size):
    model = classifier(rk, seed=2)
    x, y, lengths = token_data(rng, 25, 5, 8, 3)
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.SGD(lr=0.1))
    metrics = trainer.evaluate(x, y, lengths=lengths, batch_size=batch_size)
    logits = model.predict(x, lengths=lengths)
    assert metrics["accuracy"] == pytest.approx(np.mean(np.argmax(logits, axis=1) == y), abs=1e-12)
    m = logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits - m).sum(axis=1)) + m[:, 0]
    np.testing.assert_allclose(metrics["loss"], np.mean(lse - logits[np.arange(25), y]), rtol=1e-10)


def test_evaluate_per_step_classifier_counts_valid_steps(rk, rng):
    model = rk.Sequential(
        rk.Embedding(8, 4, dtype=F64, seed=0),
        rk.GRU(4, 5, batch_first=True, dtype=F64, seed=1),
        rk.Linear(5, 8, dtype=F64, seed=2),
    )
    N, T = 12, 6
    x = rng.integers(0, 8, size=(N, T))
    y = rng.integers(0, 8, size=(N, T))
    lengths = rng.integers(1, T + 1, size=N)
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.SGD(lr=0.1))
    metrics = trainer.evaluate(x, y, lengths=lengths, batch_size=256)
    logits = model.predict(x, lengths=lengths)
    valid = np.arange(T)[None, :] < lengths[:, None]
    acc = np.mean((np.argmax(logits, axis=-1) == y)[valid])
    assert metrics["accuracy"] == pytest.approx(acc, abs=1e-12)
    loss, _ = rk.losses.cross_entropy(logits, y, lengths=lengths)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-10)


# ============================================================================= it learns
def test_lstm_learns_next_value_of_a_sine(rk):
    rng = np.random.default_rng(0)
    N, T = 256, 20
    t = np.arange(T + 1)
    freq = rng.uniform(0.2, 0.5, size=(N, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(N, 1))
    wave = np.sin(freq * t + phase)
    x, y = wave[:, :T, None], wave[:, T:]
    xv, yv = x[-64:], y[-64:]
    x, y = x[:-64], y[:-64]
    model = rk.Sequential(rk.LSTM(1, 16, batch_first=True, seed=0), rk.LastStep(), rk.Linear(16, 1, seed=1))
    trainer = rk.Trainer(model, loss="mse", optimizer=rk.Adam(lr=0.01))
    trainer.fit(x, y, epochs=40, batch_size=32, seed=0, progress=False)
    mse = trainer.evaluate(xv, yv)["loss"]
    assert mse < 0.02 * np.var(yv), (mse, np.var(yv))


def test_gru_learns_whether_token_5_appears(rk):
    rng = np.random.default_rng(1)
    N, T, V = 800, 8, 10
    lengths = rng.integers(3, T + 1, size=N)
    x = rng.integers(1, V, size=(N, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    y = np.any(x == 5, axis=1).astype(np.int64)
    assert 0.3 < y.mean() < 0.7
    model = rk.Sequential(
        rk.Embedding(V, 8, padding_idx=0, seed=0),
        rk.GRU(8, 16, batch_first=True, seed=1),
        rk.LastStep(),
        rk.Linear(16, 2, seed=2),
    )
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.Adam(lr=0.01))
    history = trainer.fit(
        x[:600], y[:600], lengths=lengths[:600], epochs=15, batch_size=32,
        validation_data=(x[600:], y[600:], lengths[600:]), progress=False,
    )
    assert history["val_accuracy"][-1] >= 0.9, history["val_accuracy"]
    assert trainer.evaluate(x[600:], y[600:], lengths=lengths[600:])["accuracy"] >= 0.9
