"""Embedding, Linear, LastStep, MeanPool, Dropout and Sequential.

Forward passes are compared with plain NumPy; backward passes with central finite
differences in float64 (the loss is L = sum(y * W) for a fixed random W, so the upstream
gradient is W).  Sequential is checked end to end the same way, for every parameter, and
for its contract: one contiguous parameter buffer, PyTorch's names, the parameter counts,
predict in batches, LastStep == the recurrent layer's own h_n, and carrying the state.
"""

from __future__ import annotations

import numpy as np
import pytest

from test_gradcheck import assert_grad, numerical_grad

F64 = np.float64


def loss_weights(rng, shape):
    return rng.standard_normal(shape)


# ============================================================================= Embedding
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)], ids=str)
def test_embedding_forward_is_a_row_lookup(rk, rng, shape):
    emb = rk.Embedding(9, 4, dtype=F64, seed=0)
    ids = rng.integers(0, 9, size=shape)
    y = emb(ids)
    assert y.shape == shape + (4,) and y.dtype == F64
    np.testing.assert_array_equal(y, emb.parameters()["weight"][ids])
    np.testing.assert_array_equal(emb.forward(ids), y)


def test_embedding_init_and_padding_row(rk):
    emb = rk.Embedding(400, 50, padding_idx=3, seed=1)
    w = emb.parameters()["weight"]
    assert w.shape == (400, 50) and w.dtype == np.float32 and emb.dtype == np.float32
    assert np.all(w[3] == 0.0)
    rest = np.delete(w, 3, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1.0) < 0.02  # N(0, 1) as PyTorch
    assert emb.num_parameters() == 400 * 50
    same = rk.Embedding(400, 50, padding_idx=3, seed=1).parameters()["weight"]
    np.testing.assert_array_equal(same, w)


def test_embedding_backward_scatter_adds_and_skips_padding(rk, rng):
    emb = rk.Embedding(6, 3, padding_idx=0, dtype=F64, seed=0)
    ids = np.array([[1, 2, 1, 0], [5, 0, 2, 2]])
    g = rng.standard_normal((2, 4, 3))
    emb(ids)
    assert emb.backward(g) is None
    want = np.zeros((6, 3))
    np.add.at(want, ids, g)
    want[0] = 0.0
    np.testing.assert_allclose(emb.grads()["weight"], want, rtol=1e-14, atol=1e-15)
    # a second backward accumulates
    emb(ids)
    emb.backward(g)
    np.testing.assert_allclose(emb.grads()["weight"], 2 * want, rtol=1e-14, atol=1e-15)
    emb.zero_grad()
    assert np.all(emb.grads()["weight"] == 0.0)


def test_embedding_gradient_by_finite_differences(rk, rng):
    emb = rk.Embedding(5, 2, padding_idx=4, dtype=F64, seed=0)
    ids = rng.integers(0, 5, size=(3, 4))
    w = loss_weights(rng, (3, 4, 2))
    emb(ids)
    emb.backward(w)
    num = numerical_grad(emb.parameters()["weight"], lambda: float(np.sum(emb(ids) * w)))
    num[4] = 0.0  # the padding row never receives gradient (PyTorch)
    assert_grad(emb.grads()["weight"], num, "embedding weight")


@pytest.mark.parametrize("bad", [[0, 7], [-1, 2]], ids=["too_big", "negative"])
def test_embedding_ids_out_of_range(rk, bad):
    emb = rk.Embedding(7, 2, seed=0)
    with pytest.raises(ValueError, match="ids"):
        emb(np.array(bad))


# ============================================================================= Linear
@pytest.mark.parametrize("shape", [(3,), (4, 3), (2, 5, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_forward_and_backward(rk, rng, shape, bias):
    lin = rk.Linear(3, 2, bias=bias, dtype=F64, seed=0)
    params = lin.parameters()
    assert set(params) == ({"weight", "bias"} if bias else {"weight"})
    assert params["weight"].shape == (2, 3) and lin.num_parameters() == 6 + 2 * bias
    x = rng.standard_normal(shape)
    y = lin(x)
    want = x @ params["weight"].T + (params["bias"] if bias else 0.0)
    assert y.shape == shape[:-1] + (2,)
    np.testing.assert_allclose(y, want, rtol=1e-14, atol=1e-14)

    w = loss_weights(rng, y.shape)
    gx = lin.backward(w)
    loss = lambda: float(np.sum(lin(x) * w))  # noqa: E731
    assert_grad(gx, numerical_grad(x, loss), "grad_x")
    grads = {k: v.copy() for k, v in lin.grads().items()}
    for k, p in lin.parameters().items():
        assert_grad(grads[k], numerical_grad(p, loss), k)


def test_linear_init_bounds(rk):
    lin = rk.Linear(25, 40, seed=3)
    bound = 1 / np.sqrt(25)
    for v in lin.parameters().values():
        assert v.dtype == np.float32
        assert np.all(np.abs(v) <= bound) and np.abs(v).max() > 0.9 * bound


# ============================================================================= LastStep / MeanPool
def pool_oracle(kind, seq_bt, lengths, bidirectional):
    """seq_bt: (B, T, F) float64. LastStep: [fwd at len-1, rev at 0]; MeanPool: mean over valid steps."""
    B, T, Fdim = seq_bt.shape
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    out = np.zeros((B, Fdim))
    for b, n in enumerate(lengths):
        if kind == "MeanPool":
            out[b] = seq_bt[b, :n].mean(axis=0)
        elif bidirectional:
            half = Fdim // 2
            out[b] = np.concatenate([seq_bt[b, n - 1, :half], seq_bt[b, 0, half:]])
        else:
            out[b] = seq_bt[b, n - 1]
    return out


@pytest.mark.parametrize("lengths", [None, [4, 1, 3]], ids=["full", "lengths"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["bf", "tm"])
@pytest.mark.parametrize("kind", ["LastStep", "MeanPool"])
def test_pool_standalone_forward_and_backward(rk, rng, kind, batch_first, bidirectional, lengths):
    layer = getattr(rk, kind)(batch_first=batch_first, bidirectional=bidirectional)
    B, T, Fdim = 3, 4, 6
    seq = rng.standard_normal((B, T, Fdim) if batch_first else (T, B, Fdim))
    lens = None if lengths is None else np.array(lengths)
    y = layer(seq, lengths=lens)
    seq_bt = seq if batch_first else seq.transpose(1, 0, 2)
    np.testing.assert_allclose(y, pool_oracle(kind, seq_bt, lengths, bidirectional), rtol=1e-14, atol=1e-15)
    w = loss_weights(rng, y.shape)
    g = layer.backward(w)
    assert g.shape == seq.shape
    assert_grad(g, numerical_grad(seq, lambda: float(np.sum(layer(seq, lengths=lens) * w))), "grad_seq")
    assert layer.num_parameters() == 0 and layer.parameters() == {}


# ============================================================================= Dropout
def test_dropout_training_mask_and_backward(rk, rng):
    p = 0.3
    drop = rk.Dropout(p, seed=0)
    x = rng.standard_normal((4, 5, 6))
    drop._rng = np.random.default_rng(11)
    y = drop(x)
    keep = np.random.default_rng(11).random(x.shape) >= p
    np.testing.assert_allclose(y, x * keep / (1 - p), rtol=1e-15, atol=0)
    g = rng.standard_normal(x.shape)
    np.testing.assert_allclose(drop.backward(g), g * keep / (1 - p), rtol=1e-15, atol=0)
    assert 0.5 < keep.mean() < 0.9


def test_dropout_is_identity_in_eval_and_fresh_masks_in_training(rk, rng):
    drop = rk.Dropout(0.5, seed=1)
    x = rng.standard_normal((50, 8))
    assert drop.eval() is drop and not drop.training
    np.testing.assert_array_equal(drop(x), x)
    assert drop.train() is drop and drop.training
    y1, y2 = drop(x), drop(x)
    assert not np.array_equal(y1 == 0, y2 == 0)  # a new mask per forward
    a, b = rk.Dropout(0.5, seed=4), rk.Dropout(0.5, seed=4)
    np.testing.assert_array_equal(a(x), b(x))  # seeded


# ============================================================================= Sequential
def classifier(rk, dtype=F64):
    """Embedding + LSTM + LastStep + Linear, the many-to-one shape of DESIGN.md."""
    return rk.Sequential(
        rk.Embedding(6, 3, padding_idx=0, dtype=dtype, seed=1),
        rk.LSTM(3, 3, batch_first=True, dtype=dtype, seed=2),
        rk.LastStep(),
        rk.Linear(3, 2, dtype=dtype, seed=3),
    )


def bigru_meanpool(rk, dtype=F64):
    return rk.Sequential(
        rk.GRU(2, 3, bidirectional=True, dtype=dtype, seed=1),  # time-major
        rk.MeanPool(),
        rk.Linear(6, 2, dtype=dtype, seed=2),
    )


def per_step(rk, dtype=F64):
    return rk.Sequential(
        rk.Linear(2, 3, dtype=dtype, seed=1),
        rk.Dropout(0.25, seed=5),
        rk.RNN(3, 3, num_layers=2, batch_first=True, dtype=dtype, seed=2),
        rk.Linear(3, 2, bias=False, dtype=dtype, seed=3),
    )


def end_to_end_case(rk, rng, name):
    """(model, x, lengths, output shape) for the end-to-end gradient checks."""
    B, T = 3, 4
    if name == "emb_lstm_last_linear":
        lengths = np.array([4, 1, 3])
        x = rng.integers(1, 6, size=(B, T))
        x[1, 1:], x[2, 3:] = 0, 0  # padding ids past the lengths
        return classifier(rk), x, lengths, (B, 2)
    if name == "bigru_meanpool":
        return bigru_meanpool(rk), rng.standard_normal((T, B, 2)), np.array([2, 4, 1]), (B, 2)
    if name == "per_step_head":
        return per_step(rk), rng.standard_normal((B, T, 2)), None, (B, T, 2)
    raise AssertionError(name)


def run_fixed(model, x, lengths):
    """Forward with the same dropout masks every time."""
    for layer in model.layers:
        if hasattr(layer, "_rng"):
            layer._rng = np.random.default_rng(7)
    return model(x, lengths=lengths)


@pytest.mark.parametrize("name", ["emb_lstm_last_linear", "bigru_meanpool", "per_step_head"])
def test_sequential_gradients_by_finite_differences(rk, rng, name):
    model, x, lengths, out_shape = end_to_end_case(rk, rng, name)
    y = run_fixed(model, x, lengths)
    assert y.shape == out_shape and y.dtype == F64
    w = loss_weights(rng, out_shape)
    model.zero_grad()
    gx = model.backward(w)
    grads = {k: v.copy() for k, v in model.grads().items()}

    def loss():
        return float(np.sum(run_fixed(model, x, lengths) * w))

    if x.dtype.kind == "i":
        assert gx is None  # the first layer is an Embedding
    else:
        assert_grad(gx, numerical_grad(x, loss), "grad_x")
    params = model.parameters()
    assert set(grads) == set(params)
    for k, p in params.items():
        num = numerical_grad(p, loss)
        if k == "0.weight" and name == "emb_lstm_last_linear":
            num[0] = 0.0  # padding row
        assert_grad(grads[k], num, k)


def test_sequential_forward_equals_layers_composed(rk, rng):
    model = classifier(rk)
    x = rng.integers(0, 6, size=(3, 4))
    lengths = np.array([2, 4, 3])
    emb, lstm, _, lin = model.layers
    out, (h_n, _) = lstm(emb(x), lengths=lengths)
    want = lin(h_n[-1])
    np.testing.assert_allclose(model(x, lengths=lengths), want, rtol=1e-13, atol=1e-14)


def test_sequential_names_and_one_contiguous_buffer(rk):
    layers = [
        rk.Embedding(6, 3, padding_idx=0, dtype=F64, seed=1),
        rk.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=F64, seed=2),
        rk.LastStep(),
        rk.Dropout(0.1),
        rk.Linear(8, 2, dtype=F64, seed=3),
    ]
    before = [layer.state_dict() for layer in layers]
    model = rk.Sequential(*layers)
    assert list(model.layers) == layers
    names = set(model.parameters())
    want = {"0.weight", "4.weight", "4.bias"}
    for lay in range(2):
        for sfx in ("", "_reverse"):
            want |= {f"1.{w}_l{lay}{sfx}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert names == want
    assert "1.weight_ih_l0" in names and set(model.grads()) == names
    assert set(model.state_dict()) == names

    assert model._flat.ndim == 1 and model._flat.flags.c_contiguous
    assert model._flat.size == model.num_parameters() and model._grad.shape == model._flat.shape
    for k, v in model.parameters().items():
        assert np.shares_memory(v, model._flat), k
        assert np.shares_memory(model.grads()[k], model._grad), k
    for i, layer in enumerate(layers):
        # layers keep their values, and now live in the model's buffer
        for k, v in layer.parameters().items():
            np.testing.assert_array_equal(v, before[i][k])
            np.testing.assert_array_equal(model.parameters()[f"{i}.{k}"], before[i][k])
            assert np.shares_memory(v, model._flat), (i, k)
            assert np.shares_memory(layer.grads()[k], model._grad), (i, k)
    # writing the buffer is writing the layers
    model._flat[...] = 0.5
    assert np.all(layers[1].parameters()["weight_hh_l1_reverse"] == 0.5)
    # state_dict copies, parameters() views
    sd = model.state_dict()
    sd["4.bias"][...] = 9.0
    assert np.all(model.parameters()["4.bias"] == 0.5)


def lstm_count(I, H, layers=1, D=1):  # noqa: E741
    total = 0
    for layer in range(layers):
        inp = I if layer == 0 else D * H
        total += D * 4 * (H * inp + H * H + 2 * H)
    return total


def test_sequential_parameter_counts_and_summary(rk, capsys):
    model = rk.Sequential(
        rk.Embedding(20, 5, padding_idx=0),
        rk.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True),
        rk.MeanPool(),
        rk.Dropout(0.2),
        rk.Linear(14, 3),
        rk.Linear(3, 2, bias=False),
    )
    counts = [20 * 5, lstm_count(5, 7, layers=2, D=2), 0, 0, 14 * 3 + 3, 3 * 2]
    assert [layer.num_parameters() for layer in model.layers] == counts
    assert model.num_parameters() == sum(counts) == sum(v.size for v in model.parameters().values())
    gru = rk.GRU(4, 6, dtype=F64)
    assert gru.num_parameters() == 3 * (6 * 4 + 6 * 6 + 2 * 6)
    rnn = rk.RNN(4, 6, bias=False)
    assert rnn.num_parameters() == 6 * 4 + 6 * 6

    table = model.summary()
    printed = capsys.readouterr().out
    assert isinstance(table, str) and table.strip() in printed
    for n in counts[:2] + counts[4:] + [sum(counts)]:
        assert str(n) in table or f"{n:,}" in table, n
    for cls in ("Embedding", "LSTM", "MeanPool", "Dropout", "Linear"):
        assert cls in table


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_predict_in_batches_equals_one_forward(rk, rng, mode):
    model = classifier(rk)
    x = rng.integers(0, 6, size=(11, 5))
    lengths = rng.integers(1, 6, size=11)
    want = model.eval()(x, lengths=lengths)
    getattr(model, mode)()
    got = model.predict(x, lengths=lengths, batch_size=4)
    assert model.training == (mode == "train")  # predict restores the mode
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(model.predict(x, lengths=lengths), want, rtol=1e-13, atol=1e-14)


def test_predict_is_eval_mode(rk, rng):
    """Dropout is off in predict: repeated predictions are identical."""
    model = rk.Sequential(rk.Linear(3, 8, dtype=F64, seed=0), rk.Dropout(0.5), rk.Linear(8, 2, dtype=F64, seed=1))
    x = rng.standard_normal((6, 3))
    np.testing.assert_array_equal(model.predict(x), model.predict(x))
    lin0, _, lin1 = model.layers
    np.testing.assert_allclose(model.predict(x), lin1(lin0(x)), rtol=1e-14)


def test_padding_row_gets_no_gradient_in_sequential(rk, rng):
    model = classifier(rk)
    x = rng.integers(0, 6, size=(4, 5))
    x[:, 2] = 0  # padding ids at valid steps too
    y = model(x)
    model.backward(rng.standard_normal(y.shape))
    g = model.grads()["0.weight"]
    assert np.all(g[0] == 0.0) and np.any(g[1:] != 0.0)
    assert np.all(model.parameters()["0.weight"][0] == 0.0)


@pytest.mark.parametrize("batch_first", [True, False], ids=["bf", "tm"])
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_laststep_of_bidirectional_equals_h_n(rk, rng, mode, batch_first):
    rec = getattr(rk, mode)(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, dtype=F64, seed=0)
    model = rk.Sequential(rec, rk.LastStep())
    B, T = 4, 5
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    lengths = np.array([5, 2, 1, 4])
    for lens in (None, lengths):
        y = model(x, lengths=lens)
        out, h = rec(x, lengths=lens)
        h_n = h[0] if mode == "LSTM" else h
        np.testing.assert_allclose(y, np.concatenate([h_n[-2], h_n[-1]], axis=1), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("batch_first", [True, False], ids=["bf", "tm"])
def test_meanpool_in_sequential_uses_recurrent_layout(rk, rng, batch_first):
    rec = rk.GRU(2, 3, bidirectional=True, batch_first=batch_first, dtype=F64, seed=0)
    model = rk.Sequential(rec, rk.MeanPool())
    x = rng.standard_normal((3, 4, 2) if batch_first else (4, 3, 2))
    lengths = np.array([4, 1, 2])
    out, _ = rec(x, lengths=lengths)
    out_bt = out if batch_first else out.transpose(1, 0, 2)
    want = pool_oracle("MeanPool", out_bt, lengths, True)
    np.testing.assert_allclose(model(x, lengths=lengths), want, rtol=1e-13, atol=1e-14)


def stateful_model(rk, kind):
    if kind == "lstm2":
        return rk.Sequential(
            rk.Embedding(7, 3, dtype=F64, seed=0),
            rk.LSTM(3, 4, num_layers=2, batch_first=True, dtype=F64, seed=1),
            rk.Linear(4, 7, dtype=F64, seed=2),
        )
    if kind == "gru_then_lstm":
        return rk.Sequential(
            rk.Embedding(7, 3, dtype=F64, seed=0),
            rk.GRU(3, 4, batch_first=True, dtype=F64, seed=1),
            rk.LSTM(4, 3, proj_size=2, batch_first=True, dtype=F64, seed=2),
            rk.Linear(2, 7, dtype=F64, seed=3),
        )
    if kind == "rnn":
        return rk.Sequential(
            rk.Embedding(7, 3, dtype=F64, seed=0),
            rk.RNN(3, 5, batch_first=True, dtype=F64, seed=1),
            rk.Linear(5, 7, dtype=F64, seed=2),
        )
    raise AssertionError(kind)


def assert_same_state(a, b):
    assert len(a) == len(b)
    for sa, sb in zip(a, b):
        if isinstance(sa, tuple):
            assert isinstance(sb, tuple) and len(sa) == len(sb) == 2
            for u, v in zip(sa, sb):
                np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-14)
        else:
            np.testing.assert_allclose(sa, sb, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm2", "gru_then_lstm", "rnn"])
def test_state_continues_a_sequence(rk, rng, kind):
    model = stateful_model(rk, kind).eval()
    x = rng.integers(0, 7, size=(3, 7))
    y_all, st_all = model(x, return_state=True)
    n_rec = sum(type(layer).__name__ in ("RNN", "LSTM", "GRU") for layer in model.layers)
    assert isinstance(st_all, list) and len(st_all) == n_rec
    y1, st = model(x[:, :3], return_state=True)
    y2, st = model(x[:, 3:5], state=st, return_state=True)
    y3, st = model(x[:, 5:], state=st, return_state=True)
    np.testing.assert_allclose(np.concatenate([y1, y2, y3], axis=1), y_all, rtol=1e-13, atol=1e-14)
    assert_same_state(st, st_all)
    # the state is what the recurrent layers themselves return
    h = model.layers[0](x)
    for layer, s in zip(model.layers[1:], st_all):
        if type(layer).__name__ == "Linear":
            break
        h, hn = layer(h)
        assert_same_state([s], [hn])
    # without return_state the output alone
    np.testing.assert_allclose(model(x), y_all, rtol=1e-14, atol=0)


# ============================================================================= reproducibility
def at_offset(a, k):
    """A copy of a whose data starts k elements past a 64-byte boundary."""
    buf = np.empty(a.size + 64, dtype=a.dtype)
    start = (-buf.ctypes.data % 64) // a.itemsize
    view = buf[start + k : start + k + a.size].reshape(a.shape)
    view[...] = a
    return view


def reproducibility_model(rk, name, dtype):
    if name == "linear":
        return rk.Linear(37, 13, dtype=dtype, seed=0), (5, 7, 37)
    if name == "lstm":
        return rk.LSTM(37, 13, batch_first=True, dtype=dtype, seed=0), (5, 7, 37)
    if name == "sequential":
        return rk.Sequential(
            rk.Linear(37, 16, dtype=dtype, seed=0),
            rk.GRU(16, 13, batch_first=True, dtype=dtype, seed=1),
            rk.MeanPool(),
            rk.Linear(13, 5, dtype=dtype, seed=2),
        ), (5, 7, 37)
    raise AssertionError(name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["linear", "lstm", "sequential"])
def test_forward_backward_bitwise_reproducible(rk, rng, name, dtype):
    """The same model built twice, run forward/backward on the same values, gives the same
    bits wherever NumPy happened to allocate its buffers and the inputs (Trainer's "same seed,
    same weights" rests on this)."""
    shape = reproducibility_model(rk, name, dtype)[1]
    x = rng.standard_normal(shape).astype(dtype)
    results, keep = [], []
    for k in range(12):
        model = reproducibility_model(rk, name, dtype)[0]  # fresh buffers: a new place in memory
        keep.append(model)  # (kept alive so the allocator cannot hand back the same block)
        y = model(at_offset(x, k % 8))
        out = y[0] if isinstance(y, tuple) else y
        model.backward(at_offset(np.cos(np.arange(out.size)).reshape(out.shape).astype(dtype), k % 8))
        results.append((out.copy(), {n: g.copy() for n, g in model.grads().items()}))
    out0, grads0 = results[0]
    for k, (out, grads) in enumerate(results[1:], 1):
        np.testing.assert_array_equal(out, out0, err_msg=f"output, build {k}")
        for n in grads0:
            np.testing.assert_array_equal(grads[n], grads0[n], err_msg=f"grad {n}, build {k}")
