"""Model files: rk.save / rk.load.

Round trips are bit for bit (state_dict, dtype, repr, predictions) for every layer kind and
option, as single layers and inside a Sequential, in float32 and float64; a loaded model is
in eval mode.  The file is a plain safetensors file (read back with safetensors.numpy) with
the rnnkit metadata.  Damaged or foreign files raise ValueError, a missing one
FileNotFoundError, and saving is atomic: no temp file is left behind, and a failed save
leaves nothing.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors = pytest.importorskip("safetensors")

DTYPES = [np.float32, np.float64]


# name -> builder(rk, dtype) -> (model, input maker(rng) -> (x, lengths) or x)
def _tokens(rng, V=10, B=3, T=5):
    lengths = np.array([5, 2, 4])
    x = rng.integers(1, V, size=(B, T))
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0
    return x, lengths


MODELS = {
    "embedding_padding": lambda rk, dt: (rk.Embedding(10, 4, padding_idx=0, dtype=dt, seed=1), "ids"),
    "linear_nobias": lambda rk, dt: (rk.Linear(3, 2, bias=False, dtype=dt, seed=1), "feat"),
    "linear": lambda rk, dt: (rk.Linear(3, 2, dtype=dt, seed=1), "feat"),
    "rnn_relu_L2": lambda rk, dt: (rk.RNN(3, 4, num_layers=2, nonlinearity="relu", dtype=dt, seed=1), "seq_tm"),
    "lstm_proj_bi_L2": lambda rk, dt: (
        rk.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True, dropout=0.2, dtype=dt, seed=1),
        "seq_bf",
    ),
    "lstm_peephole_proj_bi_L2": lambda rk, dt: (
        rk.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True, peepholes=True, dtype=dt,
                seed=1),
        "seq_bf",
    ),
    "gru_v1_nobias": lambda rk, dt: (rk.GRU(3, 4, reset_after=False, bias=False, dtype=dt, seed=1), "seq_tm"),
    "dropout": lambda rk, dt: (rk.Dropout(0.3, seed=1), "feat"),
    "laststep_bi_tm": lambda rk, dt: (rk.LastStep(batch_first=False, bidirectional=True), "seq_tm_wide"),
    "meanpool": lambda rk, dt: (rk.MeanPool(), "seq_bf_wide"),
    "seq_emb_lstm_last": lambda rk, dt: (
        rk.Sequential(
            rk.Embedding(10, 4, padding_idx=0, dtype=dt, seed=1),
            rk.LSTM(4, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True, dropout=0.1, dtype=dt,
                    seed=2),
            rk.LastStep(),
            rk.Dropout(0.2),
            rk.Linear(4, 3, bias=False, dtype=dt, seed=3),
        ),
        "tokens",
    ),
    "seq_rnn_relu_meanpool_tm": lambda rk, dt: (
        rk.Sequential(
            rk.Linear(3, 4, dtype=dt, seed=1),
            rk.RNN(4, 5, nonlinearity="relu", bidirectional=True, dtype=dt, seed=2),
            rk.MeanPool(),
            rk.Linear(10, 2, dtype=dt, seed=3),
        ),
        "seq_tm_lengths",
    ),
    "seq_gru_v1_per_step": lambda rk, dt: (
        rk.Sequential(
            rk.Embedding(10, 3, dtype=dt, seed=1),
            rk.GRU(3, 4, reset_after=False, batch_first=True, dtype=dt, seed=2),
            rk.GRU(4, 4, num_layers=2, batch_first=True, dtype=dt, seed=3),
            rk.Linear(4, 10, dtype=dt, seed=4),
        ),
        "tokens",
    ),
}


def make_input(rng, kind):
    """(positional args, keyword args) for a forward of that input kind."""
    if kind == "ids":
        return (rng.integers(0, 10, size=(3, 4)),), {}
    if kind == "feat":
        return (rng.standard_normal((3, 3)),), {}
    if kind == "seq_tm":
        return (rng.standard_normal((5, 2, 3)),), {}
    if kind == "seq_bf":
        return (rng.standard_normal((2, 5, 3)),), {"lengths": np.array([5, 3])}
    if kind == "seq_tm_wide":
        return (rng.standard_normal((5, 3, 6)),), {"lengths": np.array([5, 1, 3])}
    if kind == "seq_bf_wide":
        return (rng.standard_normal((3, 5, 6)),), {"lengths": np.array([2, 5, 3])}
    if kind == "tokens":
        x, lengths = _tokens(rng)
        return (x,), {"lengths": lengths}
    if kind == "seq_tm_lengths":
        return (rng.standard_normal((5, 3, 3)),), {"lengths": np.array([5, 1, 3])}
    raise AssertionError(kind)


def predict(model, args, kwargs):
    """Eval-mode output (recurrent layers return (out, state): as_arrays flattens it)."""
    return model.eval()(*args, **kwargs)


def as_arrays(y):
    if isinstance(y, tuple):
        out = []
        for v in y:
            out.extend(as_arrays(v))
        return out
    return [y]


def is_sequential(model):
    return hasattr(model, "layers")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_bit_for_bit(rk, rng, tmp_path, name, dtype):
    model, kind = MODELS[name](rk, dtype)
    # make the weights not the initial ones (and the padding row of an Embedding stays 0)
    for k, v in model.parameters().items():
        v[...] = v + 0.01 * rng.standard_normal(v.shape)
    for layer in model.layers if is_sequential(model) else [model]:
        if getattr(layer, "padding_idx", None) is not None:
            layer.parameters()["weight"][layer.padding_idx] = 0.0
    path = tmp_path / "model.safetensors"
    model.train()
    rk.save(model, str(path))
    loaded = rk.load(str(path))

    assert type(loaded) is type(model)
    assert repr(loaded) == repr(model)
    assert loaded.training is False
    if is_sequential(model):
        assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
        assert all(layer.training is False for layer in loaded.layers)
    sd, sd2 = model.state_dict(), loaded.state_dict()
    assert list(sd2) == list(sd)
    for k in sd:
        assert sd2[k].dtype == sd[k].dtype == np.dtype(dtype)
        assert sd2[k].shape == sd[k].shape
        np.testing.assert_array_equal(sd2[k], sd[k], err_msg=k)
    if sd:
        assert loaded.dtype == model.dtype
    args, kwargs = make_input(rng, kind)
    for a, b in zip(as_arrays(predict(model, args, kwargs)), as_arrays(predict(loaded, args, kwargs))):
        np.testing.assert_array_equal(b, a)
    if is_sequential(model):
        np.testing.assert_array_equal(loaded.predict(*args, **kwargs), model.predict(*args, **kwargs))


def test_pathlike_and_training_after_load(rk, rng, tmp_path):
    """A pathlib.Path works, and a loaded model can be trained further (buffers are its own)."""
    model, _ = MODELS["seq_emb_lstm_last"](rk, np.float64)
    path = tmp_path / "m.safetensors"
    rk.save(model, path)
    loaded = rk.load(path)
    assert np.shares_memory(next(iter(loaded.parameters().values())), loaded._flat)
    x, lengths = _tokens(rng)
    loaded.train()
    y = loaded(x, lengths=lengths)
    loaded.backward(np.ones_like(y))
    rk.SGD(lr=0.1).step(loaded)
    assert not np.array_equal(loaded.state_dict()["4.weight"], model.state_dict()["4.weight"])


def test_file_is_plain_safetensors_with_metadata(rk, tmp_path):
    model, _ = MODELS["seq_emb_lstm_last"](rk, np.float32)
    path = tmp_path / "m.safetensors"
    rk.save(model, str(path))
    tensors = safetensors_numpy.load_file(str(path))
    sd = model.state_dict()
    assert set(tensors) == set(sd)
    for k in sd:
        assert tensors[k].dtype == np.float32
        np.testing.assert_array_equal(tensors[k], sd[k])
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "rnnkit"
    assert meta["format_version"] == "3"
    arch = json.loads(meta["architecture"])
    assert arch  # some JSON description of the layers
    assert "LSTM" in meta["architecture"] and "Embedding" in meta["architecture"]


def test_atomic_write_leaves_no_temp_file(rk, tmp_path):
    model = rk.Linear(3, 2, seed=0)
    path = tmp_path / "m.safetensors"
    rk.save(model, str(path))
    assert os.listdir(tmp_path) == ["m.safetensors"]
    # overwriting an existing file replaces it, again with nothing left over
    other = rk.Linear(3, 2, seed=1)
    rk.save(other, str(path))
    assert os.listdir(tmp_path) == ["m.safetensors"]
    np.testing.assert_array_equal(rk.load(str(path)).state_dict()["weight"], other.state_dict()["weight"])


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_saved_file_mode_follows_the_umask(rk, tmp_path):
    """As open() (and np.save, torch.save): 0666 less the umask, not the 0600 of a private temp file."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "m.safetensors"
        rk.save(rk.Linear(3, 2, seed=0), str(path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
        os.umask(0o077)
        rk.save(rk.Linear(3, 2, seed=1), str(path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)


def test_failed_save_leaves_no_partial_file(rk, tmp_path):
    model = rk.Linear(3, 2, seed=0)
    with pytest.raises(Exception):  # noqa: B017 - the API names no type; what matters is what is left
        rk.save(model, str(tmp_path / "no_such_dir" / "m.safetensors"))
    assert os.listdir(tmp_path) == []
    # the target is a directory: the rename fails, and the temp file is cleaned up
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        rk.save(model, str(tmp_path / "adir"))
    assert os.listdir(tmp_path) == ["adir"] and os.listdir(tmp_path / "adir") == []


def test_failed_save_keeps_the_previous_file(rk, tmp_path):
    """A save that fails before writing (a model that cannot be saved) leaves the old file as it was."""
    path = tmp_path / "m.safetensors"
    rk.save(rk.Linear(3, 2, seed=0), str(path))
    before = path.read_bytes()
    with pytest.raises((TypeError, ValueError)):
        rk.save("not a model", str(path))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]


# ----------------------------------------------------------------------------- bad files
@pytest.fixture
def saved(rk, tmp_path):
    model, _ = MODELS["seq_emb_lstm_last"](rk, np.float32)
    path = tmp_path / "good.safetensors"
    rk.save(model, str(path))
    return path.read_bytes()


def header_size(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


@pytest.mark.parametrize("cut", ["empty", "4", "8", "mid_header", "end_header", "mid_data", "minus1"])
def test_truncated_file(rk, tmp_path, saved, cut):
    n = {
        "empty": 0,
        "4": 4,
        "8": 8,
        "mid_header": header_size(saved) // 2,
        "end_header": header_size(saved),
        "mid_data": (header_size(saved) + len(saved)) // 2,
        "minus1": len(saved) - 1,
    }[cut]
    path = tmp_path / "cut.safetensors"
    path.write_bytes(saved[:n])
    with pytest.raises(ValueError):
        rk.load(str(path))


@pytest.mark.parametrize("where", ["length", "open_brace", "quarter", "middle", "last"])
def test_flipped_header_byte(rk, tmp_path, saved, where):
    hs = header_size(saved)
    pos = {"length": 2, "open_brace": 8, "quarter": 8 + (hs - 8) // 4, "middle": 8 + (hs - 8) // 2, "last": hs - 2}[
        where
    ]
    data = bytearray(saved)
    data[pos] ^= 0xFF
    path = tmp_path / "flipped.safetensors"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        rk.load(str(path))


def test_random_bytes(rk, tmp_path):
    path = tmp_path / "random.safetensors"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError):
        rk.load(str(path))


def test_text_file(rk, tmp_path):
    path = tmp_path / "text.safetensors"
    path.write_text("this is not a model\n" * 20)
    with pytest.raises(ValueError):
        rk.load(str(path))


def rewrite(tmp_path, saved, metadata):
    """The same tensors written by safetensors itself, with other metadata."""
    src = tmp_path / "src.safetensors"
    src.write_bytes(saved)
    tensors = safetensors_numpy.load_file(str(src))
    path = tmp_path / "other.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata=metadata)
    return path


def saved_metadata(tmp_path, saved):
    src = tmp_path / "meta.safetensors"
    src.write_bytes(saved)
    with safetensors.safe_open(str(src), framework="np") as f:
        return dict(f.metadata())


def test_rewrite_with_same_metadata_loads(rk, tmp_path, saved):
    """Sanity check of the helper: safetensors' own writer with rnnkit's metadata loads."""
    path = rewrite(tmp_path, saved, saved_metadata(tmp_path, saved))
    assert rk.load(str(path)).num_parameters() > 0


@pytest.mark.parametrize(
    "change",
    ["no_metadata", "other_format", "version_999", "no_version", "architecture_not_json", "no_architecture"],
)
def test_foreign_or_unknown_safetensors(rk, tmp_path, saved, change):
    meta = saved_metadata(tmp_path, saved)
    if change == "no_metadata":
        meta = None
    elif change == "other_format":
        meta["format"] = "pt"
    elif change == "version_999":
        meta["format_version"] = "999"
    elif change == "no_version":
        del meta["format_version"]
    elif change == "architecture_not_json":
        meta["architecture"] = "{not json"
    elif change == "no_architecture":
        del meta["architecture"]
    path = rewrite(tmp_path, saved, meta)
    match = "999" if change == "version_999" else None
    with pytest.raises(ValueError, match=match):
        rk.load(str(path))


def test_tensors_not_matching_architecture(rk, tmp_path, saved):
    """Valid rnnkit metadata but a tensor missing: a ValueError, not a half-built model."""
    src = tmp_path / "src.safetensors"
    src.write_bytes(saved)
    tensors = safetensors_numpy.load_file(str(src))
    del tensors["4.weight"]
    path = tmp_path / "missing.safetensors"
    safetensors_numpy.save_file(tensors, str(path), metadata=saved_metadata(tmp_path, saved))
    with pytest.raises(ValueError):
        rk.load(str(path))


def test_missing_path(rk, tmp_path):
    with pytest.raises(FileNotFoundError):
        rk.load(str(tmp_path / "nope.safetensors"))
