"""Hardening (DESIGN.md section 5): out of memory, absurd sizes, values past float32's range,
layers shared between models, scalar ids, concurrent saves and predicts, bad arguments, and
fits that fail. Cases that could abort or hang the interpreter run in a child process."""

from __future__ import annotations

import gc
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

LINUX = sys.platform.startswith("linux")
GIB = 1 << 30


def run_child(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=timeout)


def child_report(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"


# ----------------------------------------------------------------------------- 1. out of memory
# What the child has mapped once imported grows with the core count (thread stacks, BLAS buffers):
# the limits leave at least a set room past it, so that every machine runs the same case.
ADDRESS_SPACE = """
import os
def address_space():
    return int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
"""

# The case: 1.5 GiB of address space, 2 threads (an allocation can fail inside a thread
# team); x is 240 MB and the LSTM's output alone 640 MB.
OOM_MODELS = {
    "lstm_eval": "model = rk.LSTM(3, 8, batch_first=True).eval()\ncall = lambda: model(x)",
    "gru_train_bidirectional_2_layers": (
        "model = rk.GRU(3, 8, num_layers=2, bidirectional=True, batch_first=True)\n"
        "call = lambda: model(x, lengths=np.full(20000, 1000))"
    ),
    "sequential_predict": (
        "model = rk.Sequential(rk.LSTM(3, 8, batch_first=True), rk.Linear(8, 2))\n"
        "call = lambda: model.predict(x, batch_size=20000)"
    ),
    "runtime_predict": (
        "rk.save(rk.Sequential(rk.LSTM(3, 8, batch_first=True), rk.Linear(8, 2)), path)\n"
        "rt = rk.runtime.load(path)\n"
        "call = lambda: rt.predict(x)"
    ),
}


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS bounds allocations on Linux only")
@pytest.mark.parametrize("case", list(OOM_MODELS))
def test_out_of_memory_on_two_threads_is_a_memory_error(case, tmp_path):
    prelude = """
        import resource, sys
        import numpy as np
        import rnnkit as rk
        rk.set_num_threads(2)
        path = sys.argv[1]
        x = np.zeros((20000, 1000, 3), np.float32)
    """
    call = """
        limit = max(1536 << 20, address_space() + (512 << 20))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            call()
        except MemoryError as e:
            print("MEMORYERROR:", e)
        else:
            print("NO ERROR")
    """
    code = ADDRESS_SPACE + textwrap.dedent(prelude) + OOM_MODELS[case] + "\n" + textwrap.dedent(call)
    proc = run_child(code, str(tmp_path / "m.safetensors"))
    assert proc.returncode == 0 and "MEMORYERROR:" in proc.stdout, child_report(proc)
    # the message says what ran out: the input's shape, as the caller gave it, and a size
    assert "(20000, 1000, 3)" in proc.stdout and ("GiB" in proc.stdout or "MiB" in proc.stdout), proc.stdout


# ----------------------------------------------------------------------------- 2. absurd sizes
ABSURD = {
    "lstm_1e9_layers": ("rk.LSTM(1, 8, num_layers=10**9)", "num_layers=1000000000"),
    "gru_1e9_layers_bidirectional": ("rk.GRU(1, 8, num_layers=10**9, bidirectional=True)", "num_layers=1000000000"),
    "rnn_sizes_past_int64": ("rk.RNN(2**62, 2**62)", f"input_size={2**62}"),
    "lstm_hidden_2_40": ("rk.LSTM(4, 2**40, proj_size=3)", f"hidden_size={2**40}"),
    "linear_1e10": ("rk.Linear(10**10, 10**10)", "in_features=10000000000"),
    "embedding_2_62": ("rk.Embedding(2**62, 2**62)", f"num_embeddings={2**62}"),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_sizes_are_refused_before_anything_is_allocated(case):
    ctor, named = ABSURD[case]
    code = f"""
        import rnnkit as rk
        try:
            {ctor}
        except MemoryError as e:
            print("MEMORYERROR:", e)
        else:
            print("BUILT")
    """
    proc = run_child(code, timeout=120)  # the refusal is immediate; building would take hours
    assert proc.returncode == 0 and "MEMORYERROR:" in proc.stdout, child_report(proc)
    assert named in proc.stdout and "GiB" in proc.stdout, proc.stdout


@pytest.mark.skipif(not LINUX, reason="RLIMIT_AS bounds allocations on Linux only")
def test_parameters_past_the_address_space_limit_are_refused_naming_it():
    code = """
        import resource
        import rnnkit as rk
        limit = address_space() + (1536 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            rk.LSTM(1, 8, num_layers=10**6)  # 576 M parameters: 4.3 GiB with gradients
        except MemoryError as e:
            print("MEMORYERROR:", e)
    """
    proc = run_child(ADDRESS_SPACE + textwrap.dedent(code), timeout=120)
    assert proc.returncode == 0 and "MEMORYERROR:" in proc.stdout, child_report(proc)
    assert "num_layers=1000000" in proc.stdout and "RLIMIT_AS" in proc.stdout, proc.stdout


@pytest.mark.parametrize("mode,kwargs", [
    ("RNN", {}), ("RNN", dict(nonlinearity="relu", num_layers=3, bidirectional=True, bias=False)),
    ("GRU", dict(num_layers=2)), ("GRU", dict(bidirectional=True, reset_after=False, num_layers=3)),
    ("LSTM", {}), ("LSTM", dict(proj_size=2, num_layers=3, bidirectional=True)),
    ("LSTM", dict(peepholes=True, num_layers=2, bias=False)),
    ("LSTM", dict(peepholes=True, proj_size=3, bidirectional=True, num_layers=2)),
])
def test_closed_form_parameter_count_matches_the_layout(rk, mode, kwargs):
    """The count checked before building is the one the C++ layout then gives."""
    m = getattr(rk, mode)(3, 5, **kwargs)
    params = m.parameters()
    assert m._count_params() == (m.num_parameters(), len(params))
    assert m.num_parameters() == sum(v.size for v in params.values()) == m._spec.num_params


# ----------------------------------------------------------------------------- 3. past float32's range
def _modules(rk):
    return {
        "RNN": rk.RNN(2, 3), "LSTM": rk.LSTM(2, 3, proj_size=2), "GRU": rk.GRU(2, 3), "Embedding": rk.Embedding(5, 3),
        "Linear": rk.Linear(2, 3), "Sequential": rk.Sequential(rk.Embedding(5, 2), rk.GRU(2, 3), rk.Linear(3, 2)),
    }


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "Embedding", "Linear", "Sequential"])
@pytest.mark.parametrize("value", [1e39, -1e300])
def test_load_state_dict_refuses_values_past_float32s_range(rk, kind, value):
    m = _modules(rk)[kind]
    before = m._flat.copy()
    sd = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    key = sorted(sd)[-1]
    sd[key].flat[1] = value  # finite as float64, inf as float32
    with pytest.raises(ValueError, match=re.escape(f"'{key}'")):
        m.load_state_dict(sd)
    np.testing.assert_array_equal(m._flat, before)
    assert np.isfinite(m._flat).all()


def test_float64_module_keeps_values_past_float32s_range(rk):
    m = rk.Linear(2, 3, dtype=np.float64)
    sd = m.state_dict()
    sd["weight"][0, 1] = 1e39
    m.load_state_dict(sd)
    assert m.parameters()["weight"][0, 1] == 1e39


# ----------------------------------------------------------------------------- 4. one layer, one Sequential
def test_a_layer_twice_in_one_sequential_is_refused(rk):
    lin = rk.Linear(3, 3, seed=0)
    before = lin._flat.copy()
    with pytest.raises(ValueError, match=r"layer 2 \(Linear\(in_features=3.*same object as layer 0"):
        rk.Sequential(lin, rk.Dropout(0.1), lin)
    drop = rk.Dropout(0.5)
    with pytest.raises(ValueError, match=r"layer 1 \(Dropout\(p=0.5\)\).*layer 0"):  # one cache for two slots
        rk.Sequential(drop, drop)
    # nothing was adopted: the layer still owns its buffer, and can go into a Sequential
    assert lin._flat.base is None and lin._owner is None
    np.testing.assert_array_equal(lin._flat, before)
    rk.Sequential(lin)


def test_a_layer_of_a_live_sequential_cannot_join_another(rk, rng):
    lstm, head = rk.LSTM(2, 4, batch_first=True, dtype=np.float64, seed=1), rk.Linear(4, 1, dtype=np.float64, seed=2)
    pool = rk.LastStep()
    first = rk.Sequential(lstm, pool, head)
    with pytest.raises(ValueError, match=r"layer 1 \(Linear.*already belongs to another Sequential"):
        rk.Sequential(rk.Linear(1, 4, dtype=np.float64), head)
    with pytest.raises(ValueError, match=r"layer 0 \(LastStep"):
        rk.Sequential(pool)
    # the first model still trains its layers: its buffer is still theirs
    for k, v in head.parameters().items():
        assert np.shares_memory(v, first._flat), k
    x, y = rng.standard_normal((6, 3, 2)), rng.standard_normal((6, 1))
    before = head.parameters()["weight"].copy()
    rk.Trainer(first, loss="mse", optimizer=rk.SGD(lr=0.1)).fit(x, y, epochs=1, progress=False)
    assert not np.array_equal(head.parameters()["weight"], before)
    # once the first model is gone, its layers are free again
    del first
    gc.collect()
    second = rk.Sequential(lstm, pool, head)
    assert np.shares_memory(head.parameters()["weight"], second._flat)


# ----------------------------------------------------------------------------- 5. scalar ids
@pytest.mark.parametrize("make", [np.int64, int, np.array, np.uint8], ids=["np.int64", "int", "0-d array", "uint8"])
def test_embedding_of_a_scalar_id_is_unbatched(rk, rng, make):
    emb = rk.Embedding(10, 4, dtype=np.float64, seed=0)
    weight = emb.parameters()["weight"].copy()
    y = emb(make(3))
    assert y.shape == (4,)  # torch.nn.Embedding(10, 4)(torch.tensor(3)).shape
    np.testing.assert_array_equal(y, weight[3])
    g = rng.standard_normal(4)
    emb.zero_grad()
    emb.backward(g)
    want = np.zeros_like(weight)
    want[3] = g
    np.testing.assert_array_equal(emb.grads()["weight"], want)
    emb(make(3))
    with pytest.raises(ValueError, match=r"grad has shape \(1, 4\), expected \(4,\)"):
        emb.backward(g[None])


# ----------------------------------------------------------------------------- 6. concurrent and killed saves
def _o_tmpfile_works(folder) -> bool:
    if not hasattr(os, "O_TMPFILE"):
        return False
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_WRONLY, 0o600))
    except OSError:
        return False
    return True


@pytest.fixture(params=["o_tmpfile", "named_temporary"])
def temporaries(request, monkeypatch, tmp_path):
    """Each way save makes its temporary: Linux's unnamed O_TMPFILE, or (elsewhere) a unique name."""
    if request.param == "o_tmpfile" and not _o_tmpfile_works(tmp_path):
        pytest.skip("no O_TMPFILE here")
    if request.param == "named_temporary":
        monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    return request.param


@pytest.mark.parametrize("threads", [2, 8])
def test_concurrent_saves_to_one_path_never_fail_nor_show_a_partial_file(rk, tmp_path, temporaries, threads):
    path = tmp_path / "m.safetensors"
    models = [rk.Linear(32, 64, seed=i) for i in range(threads)]
    weights = [m.state_dict()["weight"] for m in models]
    rk.save(models[0], path)
    errors: list[BaseException] = []
    loaded: list[np.ndarray] = []
    done = threading.Event()

    def save(i: int) -> None:
        try:
            for _ in range(60):
                rk.save(models[i], path)
        except BaseException as e:  # noqa: BLE001 - any failure is the finding
            errors.append(e)

    def load() -> None:
        while True:
            stop = done.is_set()
            try:
                loaded.append(rk.load(path).state_dict()["weight"])
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            if stop:
                return

    savers = [threading.Thread(target=save, args=(i,)) for i in range(threads)]
    loaders = [threading.Thread(target=load) for _ in range(2)]
    for t in savers + loaders:
        t.start()
    for t in savers:
        t.join()
    done.set()
    for t in loaders:
        t.join()
    assert errors == []
    assert loaded and all(any(np.array_equal(w, k) for k in weights) for w in loaded)
    assert os.listdir(tmp_path) == ["m.safetensors"]


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_named_temporary_mode_follows_the_umask(rk, tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    old = os.umask(0o027)
    try:
        rk.save(rk.Linear(3, 2), tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "m.safetensors").st_mode & 0o777 == 0o640


@pytest.mark.skipif(not LINUX, reason="/proc/self/fd and O_TMPFILE are Linux's")
def test_a_save_killed_mid_write_leaves_no_temporary(tmp_path):
    if not _o_tmpfile_works(tmp_path):
        pytest.skip("no O_TMPFILE here: a killed save leaves its named temporary")
    code = """
        import os, signal, sys, threading
        import rnnkit as rk
        folder = os.path.realpath(sys.argv[1]) + os.sep
        model = rk.Linear(2000, 4000, seed=0)  # 32 MB: the write is long next to everything else

        def watch():
            # SIGKILL this process as soon as it writes a temporary in the folder: an unnamed
            # O_TMPFILE (no link yet) or a named one (not shown as deleted)
            while True:
                for fd in os.listdir("/proc/self/fd"):
                    try:
                        target, links = os.readlink(f"/proc/self/fd/{fd}"), os.stat(f"/proc/self/fd/{fd}").st_nlink
                    except OSError:
                        continue
                    if target.startswith(folder) and (links == 0 or not target.endswith(" (deleted)")):
                        os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()
        for _ in range(200):
            rk.save(model, os.path.join(folder, "m.safetensors"))
        print("NOT KILLED")
    """
    proc = run_child(code, str(tmp_path))
    assert proc.returncode == -signal.SIGKILL, child_report(proc)
    assert set(os.listdir(tmp_path)) <= {"m.safetensors"}, os.listdir(tmp_path)


# ----------------------------------------------------------------------------- 7. predict leaves the mode alone
def _dropout_model(rk):
    return rk.Sequential(
        rk.LSTM(4, 8, num_layers=2, dropout=0.5, batch_first=True, dtype=np.float64, seed=0),
        rk.Dropout(0.5, seed=1), rk.LastStep(), rk.Linear(8, 3, dtype=np.float64, seed=2),
    )


def test_concurrent_predicts_on_a_training_model_are_eval_mode_and_keep_its_mode(rk, rng):
    model = _dropout_model(rk)
    x = rng.standard_normal((16, 5, 4))
    model.eval()
    want = model.predict(x, batch_size=5)
    model.train()
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                results.append(model.predict(x, batch_size=5))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 400
    assert all(np.array_equal(r, want) for r in results)
    assert model.training and all(layer.training for layer in model.layers)


def test_predict_between_a_training_forward_and_its_backward_keeps_the_cache(rk, rng):
    model, twin = _dropout_model(rk), _dropout_model(rk)
    x = rng.standard_normal((6, 5, 4))
    out, out_twin = model(x), twin(x)
    np.testing.assert_array_equal(out, out_twin)
    model.predict(x)
    g = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(model.backward(g), twin.backward(g))
    np.testing.assert_array_equal(model._grad, twin._grad)


def test_evaluate_leaves_the_mode_alone(rk, rng):
    model = _dropout_model(rk)
    x, y = rng.standard_normal((6, 5, 4)), rng.integers(0, 3, 6)
    trainer = rk.Trainer(model, loss="cross_entropy")
    got = trainer.evaluate(x, y)
    assert model.training and all(layer.training for layer in model.layers)
    model.eval()
    assert got["loss"] == rk.losses.cross_entropy(model(x), y)[0]


# ----------------------------------------------------------------------------- 8. clear errors
def test_fit_and_evaluate_with_no_samples(rk):
    trainer = rk.Trainer(rk.Sequential(rk.LSTM(4, 8, batch_first=True), rk.LastStep(), rk.Linear(8, 2)))
    x, y = np.zeros((0, 5, 4)), np.zeros((0, 2))
    for call in (lambda: trainer.fit(x, y, progress=False), lambda: trainer.evaluate(x, y),
                 lambda: trainer.fit(np.zeros((3, 5, 4)), np.zeros((3, 2)), validation_data=(x, y), progress=False)):
        with pytest.raises(ValueError, match=r"x has shape \(0, 5, 4\): it has no samples"):
            call()


def test_an_empty_unbatched_input_is_reported_in_the_callers_shape(rk):
    with pytest.raises(ValueError, match=r"x has shape \(0, 4\):"):
        rk.GRU(4, 3)(np.zeros((0, 4)))


INT_BAD = [(2.5, TypeError), (True, TypeError), (math.nan, TypeError), (math.inf, TypeError), ("3", TypeError),
           (None, TypeError)]
POS_INT_BAD = INT_BAD + [(0, ValueError), (-1, ValueError)]
SIZE_BAD = POS_INT_BAD + [(10**30, MemoryError)]
NONNEG_INT_BAD = INT_BAD + [(-1, ValueError)]
BOOL_BAD = [("yes", TypeError), (1, TypeError), (0.0, TypeError), (None, TypeError)]
PROB_BAD = [(-0.1, ValueError), (1.0, ValueError), (1.5, ValueError), (math.nan, ValueError), (math.inf, ValueError),
            (10**400, ValueError), ("0.5", TypeError), (None, TypeError), (True, TypeError)]
REAL_BAD = [(-1.0, ValueError), (math.nan, ValueError), (math.inf, ValueError), (-math.inf, ValueError),
            (10**400, ValueError), ("0.1", TypeError), (None, TypeError), (True, TypeError), ([0.1], TypeError)]
DTYPE_BAD = [(None, TypeError), ("int32", TypeError), (np.int64, TypeError), ("abc", TypeError), (3, TypeError),
             (np.complex64, TypeError), (bool, TypeError)]
SEED_BAD = [(-1, ValueError), (1.5, TypeError), ("1", TypeError), (True, TypeError), (math.nan, TypeError)]
BETAS_BAD = [(0.9, TypeError), ((0.9,), TypeError), ((0.9, 0.99, 0.5), TypeError), ((1.0, 0.9), ValueError),
             ((0.9, math.nan), ValueError), ((0.9, -0.1), ValueError), (("a", 0.9), TypeError), (None, TypeError),
             ((True, 0.9), TypeError), ("ab", TypeError)]


@dataclass
class Case:
    id: str
    call: Callable[[Any, Any], Any]  # (rk, bad value) -> the call
    value: Any
    exc: type
    name: str  # the argument the message must name
    shown: str = ""  # what the message shows of the value, when not its repr or str


def _shown(value: Any) -> set[str]:
    """How a message may show the value it got."""
    if isinstance(value, type):
        return {value.__name__}
    return {repr(value), str(value)}


def _sweep() -> list[Case]:
    cases: list[Case] = []

    def add(ctor: str, build: Callable[[Any, dict], Any], base: dict, args: dict[str, list]) -> None:
        for arg, bad in args.items():
            for value, exc in bad:
                cases.append(Case(f"{ctor}-{arg}={value!r:.24}", lambda rk, v, arg=arg: build(rk, {**base, arg: v}),
                                  value, exc, arg))

    recurrent = dict(input_size=SIZE_BAD, hidden_size=SIZE_BAD, num_layers=SIZE_BAD, bias=BOOL_BAD,
                     batch_first=BOOL_BAD, dropout=PROB_BAD, bidirectional=BOOL_BAD, dtype=DTYPE_BAD, seed=SEED_BAD)
    rnn_base = dict(input_size=3, hidden_size=8)
    add("RNN", lambda rk, kw: rk.RNN(**kw), rnn_base,
        {**recurrent, "nonlinearity": [("sigmoid", ValueError), ("TANH", ValueError), (None, TypeError),
                                       (3, TypeError)]})
    add("GRU", lambda rk, kw: rk.GRU(**kw), rnn_base, {**recurrent, "reset_after": BOOL_BAD})
    add("LSTM", lambda rk, kw: rk.LSTM(**kw), rnn_base,
        {**recurrent, "proj_size": NONNEG_INT_BAD + [(8, ValueError), (10**30, ValueError)], "peepholes": BOOL_BAD})
    add("Embedding", lambda rk, kw: rk.Embedding(**kw), dict(num_embeddings=10, embedding_dim=4),
        dict(num_embeddings=SIZE_BAD, embedding_dim=SIZE_BAD, dtype=DTYPE_BAD, seed=SEED_BAD,
             padding_idx=[v for v in INT_BAD if v[0] is not None] + [(10, ValueError), (-11, ValueError)]))
    add("Linear", lambda rk, kw: rk.Linear(**kw), dict(in_features=3, out_features=2),
        dict(in_features=SIZE_BAD, out_features=SIZE_BAD, bias=BOOL_BAD, dtype=DTYPE_BAD, seed=SEED_BAD))
    add("Dropout", lambda rk, kw: rk.Dropout(**kw), {}, dict(p=PROB_BAD, seed=SEED_BAD))
    add("LastStep", lambda rk, kw: rk.LastStep(**kw), {}, dict(batch_first=BOOL_BAD, bidirectional=BOOL_BAD))
    add("MeanPool", lambda rk, kw: rk.MeanPool(**kw), {}, dict(batch_first=BOOL_BAD, bidirectional=BOOL_BAD))
    add("SGD", lambda rk, kw: rk.SGD(**kw), dict(lr=0.1, momentum=0.9),
        dict(lr=REAL_BAD, momentum=REAL_BAD, weight_decay=REAL_BAD, nesterov=BOOL_BAD))
    for opt in ("Adam", "AdamW"):
        add(opt, lambda rk, kw, opt=opt: getattr(rk, opt)(**kw), {},
            dict(lr=REAL_BAD, eps=REAL_BAD, weight_decay=REAL_BAD, betas=BETAS_BAD))
    add("StepLR", lambda rk, kw: rk.StepLR(rk.SGD(lr=0.1), **kw), dict(step_size=2),
        dict(step_size=POS_INT_BAD, gamma=REAL_BAD))
    add("CosineAnnealingLR", lambda rk, kw: rk.CosineAnnealingLR(rk.SGD(lr=0.1), **kw), dict(T_max=5),
        dict(T_max=POS_INT_BAD, eta_min=REAL_BAD))
    for sched in ("StepLR", "CosineAnnealingLR"):
        cases += [Case(f"{sched}-optimizer={v!r}", lambda rk, v, s=sched: getattr(rk, s)(v, 3), v, TypeError,
                       "optimizer") for v in ("adam", None)]

    def trainer(rk: Any, kw: dict) -> Any:
        return rk.Trainer(**{"model": rk.Sequential(rk.Linear(3, 2)), **kw})

    add("Trainer", trainer, {}, dict(
        loss=[("hinge", ValueError), (None, TypeError), (["mse"], TypeError), (3, TypeError)],
        optimizer=[("adam", TypeError), (3, TypeError)],
        clip_grad_norm=[v for v in REAL_BAD if v[0] is not None],
        lr_scheduler=[(3, TypeError), ("StepLR", TypeError)],
    ))
    cases += [Case(f"Trainer-model={v!r}", lambda rk, v: rk.Trainer(v), v, TypeError, "model")
              for v in ("model", None, 3)]
    cases.append(Case("Trainer-lr_scheduler=no step", lambda rk, v: trainer(rk, dict(lr_scheduler=v)),
                      lambda opt: "a scheduler", TypeError, "lr_scheduler"))

    def fit(rk: Any, kw: dict) -> Any:
        x, y = np.zeros((4, 3)), np.zeros((4, 2))
        return trainer(rk, {}).fit(x, y, **{"progress": False, "epochs": 1, **kw})

    add("Trainer.fit", fit, {}, dict(
        epochs=POS_INT_BAD, batch_size=POS_INT_BAD, early_stopping=[v for v in POS_INT_BAD if v[0] is not None],
        shuffle=BOOL_BAD, progress=BOOL_BAD, restore_best_weights=BOOL_BAD,
        seed=SEED_BAD, validation_data=[("xy", ValueError), (3, ValueError)],
    ))
    cases.append(Case("Trainer.fit-validation_data=1-tuple", lambda rk, v: fit(rk, dict(validation_data=v)),
                      (np.zeros((2, 3)),), ValueError, "validation_data", shown="a tuple of 1 items"))
    add("Trainer.evaluate", lambda rk, kw: trainer(rk, {}).evaluate(np.zeros((4, 3)), np.zeros((4, 2)), **kw), {},
        dict(batch_size=POS_INT_BAD))
    add("Sequential.predict", lambda rk, kw: rk.Sequential(rk.Linear(3, 2)).predict(np.zeros((4, 3)), **kw), {},
        dict(batch_size=POS_INT_BAD))
    add("stream", lambda rk, kw: rk.GRU(3, 4, batch_first=True).stream(**kw), {}, dict(batch=POS_INT_BAD))
    add("runtime.from_model", lambda rk, kw: rk.runtime._runtime_class(**kw), {}, dict(dtype=DTYPE_BAD))
    add("clip_grad_norm", lambda rk, kw: rk.clip_grad_norm(rk.Linear(3, 2), **kw), {}, dict(max_norm=REAL_BAD))
    add("losses.cross_entropy", lambda rk, kw: rk.losses.cross_entropy(np.zeros((2, 3)), np.zeros(2, int), **kw),
        {}, dict(ignore_index=INT_BAD, batch_first=BOOL_BAD))
    cases += [Case(f"losses.get-name={v!r}", lambda rk, v: rk.losses.get(v), v, exc, "loss")
              for v, exc in [("l1", ValueError), (None, TypeError), (["mse"], TypeError)]]
    cases += [Case(f"Sequential-layer={v!r}", lambda rk, v: rk.Sequential(rk.Linear(3, 3), v), v, TypeError,
                   "layer 1") for v in ("linear", None, 3)]
    return cases


SWEEP = _sweep()


@pytest.mark.parametrize("case", SWEEP, ids=[c.id for c in SWEEP])
def test_bad_argument_names_itself_and_what_it_got(rk, case):
    with pytest.raises(case.exc) as err:
        case.call(rk, case.value)
    msg = str(err.value)
    assert re.search(rf"(?<![\w.]){re.escape(case.name)}\b", msg), msg
    if case.shown:
        assert case.shown in msg, msg
    elif not callable(case.value):
        assert any(s in msg for s in _shown(case.value)), msg
    assert re.search(r"must|expected|known|would need", msg), msg


def test_dtype_none_is_refused_by_every_constructor_taking_dtype(rk, tmp_path):
    path = tmp_path / "m.safetensors"
    rk.save(rk.Linear(3, 2), path)
    calls = [lambda: rk.RNN(3, 4, dtype=None), lambda: rk.LSTM(3, 4, dtype=None), lambda: rk.GRU(3, 4, dtype=None),
             lambda: rk.Embedding(5, 4, dtype=None), lambda: rk.Linear(3, 2, dtype=None),
             lambda: rk.runtime.load(path, dtype=None)]
    for call in calls:
        with pytest.raises(TypeError, match=r"dtype must be float32 or float64.*got None"):
            call()


# ----------------------------------------------------------------------------- 9. a failed fit changes nothing
def _classifier(rk):
    return rk.Sequential(rk.Embedding(6, 3, seed=0), rk.LSTM(3, 5, batch_first=True, seed=1), rk.LastStep(),
                         rk.Linear(5, 3, seed=2))


def _regressor(rk, dtype=np.float32):
    return rk.Sequential(rk.GRU(2, 4, batch_first=True, dtype=dtype, seed=0), rk.LastStep(),
                         rk.Linear(4, 1, dtype=dtype, seed=1))


def _token_data(rng, n=16):
    x = rng.integers(1, 6, size=(n, 5))
    y = rng.integers(0, 3, size=n)
    return x, y, np.full(n, 5)


class _FailingScheduler:
    """Halves the rate each epoch; raises at a step while ``failures`` (outside its own state) is non-zero."""

    def __init__(self, optimizer: Any, failures: list[int]) -> None:
        self.optimizer, self.failures, self.steps = optimizer, failures, 0

    def step(self) -> None:
        self.steps += 1
        self.optimizer.lr *= 0.5
        if self.failures[0]:
            self.failures[0] -= 1
            raise RuntimeError("scheduler failed")


def _failed_fits(rk, rng):
    """(id, trainer, fit kwargs, expected error, message pattern): each fails after (or, checked first,
    instead of) optimizer steps."""
    out = []

    def add(case, model, fit_kw, exc, pattern, loss="cross_entropy", **trainer_kw):
        trainer = rk.Trainer(model, loss=loss, optimizer=rk.Adam(lr=0.01), **trainer_kw)
        out.append((case, trainer, dict(epochs=3, batch_size=4, shuffle=False, progress=False, **fit_kw), exc,
                    pattern))

    x, y, lengths = _token_data(rng)
    bad = y.copy()
    bad[9] = 3  # batch 3: only 3 classes
    add("label_out_of_range", _classifier(rk), dict(x=x, y=bad, lengths=lengths), ValueError,
        r"y\[9\] = 3 is out of range.*0\.\.2")
    bad = y.copy()
    bad[10] = -1
    add("negative_label", _classifier(rk), dict(x=x, y=bad), ValueError, r"y\[10\] = -1")
    bad_x = x.copy()
    bad_x[11, 2] = 6
    add("token_id_out_of_range", _classifier(rk), dict(x=bad_x, y=y), ValueError, r"x\[11, 2\] = 6.*0\.\.5")
    xv, yv, _ = _token_data(rng, 8)
    bad = yv.copy()
    bad[5] = 7
    add("validation_label_out_of_range", _classifier(rk), dict(x=x, y=y, validation_data=(xv, bad)), ValueError,
        r"validation y\[5\] = 7")
    add("validation_labels_misshapen", _classifier(rk), dict(x=x, y=y, validation_data=(xv, yv[:, None])),
        ValueError, r"validation y has shape \(8, 1\), expected \(8,\)")

    xr, yr = rng.standard_normal((16, 5, 2)), rng.standard_normal((16, 1))
    bad = yr.copy()
    bad[9, 0] = np.nan
    add("nan_target", _regressor(rk), dict(x=xr, y=bad), ValueError, r"y contains NaN.*\(9, 0\)", loss="mse")
    bad = xr.copy()
    bad[10, 3, 1] = np.inf
    add("inf_input", _regressor(rk), dict(x=bad, y=yr), ValueError, r"x contains NaN.*\(10, 3, 1\)", loss="mse")
    add("validation_x_misshapen", _regressor(rk), dict(x=xr, y=yr, validation_data=(xr[:, :, :1], yr)),
        ValueError, r"validation x has shape \(16, 5, 1\): its last axis must be 2", loss="mse")
    add("validation_targets_misshapen", _regressor(rk), dict(x=xr, y=yr, validation_data=(xr, yr[:, 0])),
        ValueError, r"validation y has shape \(16,\), expected \(16, 1\)", loss="mse")
    add("scheduler_fails_after_epoch_1", _regressor(rk), dict(x=xr, y=yr), RuntimeError, "scheduler failed",
        loss="mse", lr_scheduler=lambda opt: _FailingScheduler(opt, [1]))
    huge = rk.Trainer(_regressor(rk), loss="mse", optimizer=rk.SGD(lr=1e30))
    out.append(("loss_diverges", huge, dict(x=xr, y=yr, epochs=5, batch_size=4, progress=False),
                FloatingPointError, r"loss became .* at epoch \d+, batch \d+"))

    # float32 inf - inf: the validation inputs overflow the first layer, the second subtracts its outputs
    model = rk.Sequential(rk.Linear(2, 2), rk.Linear(2, 1))
    model.load_state_dict({"0.weight": np.ones((2, 2)), "0.bias": np.zeros(2), "1.weight": np.array([[1.0, -1.0]]),
                           "1.bias": np.zeros(1)})
    xs, ys, xv = rng.standard_normal((8, 2)) * 0.01, rng.standard_normal((8, 1)) * 0.01, np.full((4, 2), 3e38)
    for patience in (None, 2):
        trainer = rk.Trainer(model, loss="mse", optimizer=rk.SGD(lr=1e-3))
        out.append((f"nan_validation_loss_early_stopping_{patience}", trainer,
                    dict(x=xs, y=ys, validation_data=(xv, np.zeros((4, 1))), epochs=3, early_stopping=patience,
                         progress=False), FloatingPointError, r"validation loss became nan at epoch 1"))
    return out


FAILED_FITS = [case[0] for case in _failed_fits(__import__("rnnkit"), np.random.default_rng(0))]


@pytest.mark.parametrize("case", FAILED_FITS)
def test_a_failed_fit_leaves_the_model_as_it_was(rk, case):
    _, trainer, kwargs, exc, pattern = next(c for c in _failed_fits(rk, np.random.default_rng(0)) if c[0] == case)
    model, opt = trainer.model, trainer.optimizer
    model._grad[...] = np.arange(model._grad.size)  # gradients too are left as they were
    flat, grad, lr = model._flat.copy(), model._grad.copy(), opt.lr
    with pytest.raises(exc) as err:
        trainer.fit(**kwargs)
    assert np.array_equal(model._flat, flat) and np.array_equal(model._grad, grad)
    assert model.training and all(layer.training for layer in model.layers)
    assert trainer.history == {} and opt.steps == 0 and opt.lr == lr
    assert re.search(pattern, str(err.value)), str(err.value)  # and it says what was wrong


def test_a_fit_after_a_failed_fit_trains_as_a_fresh_one(rk, rng):
    """The optimizer's state (Adam's moments, its step count) and the scheduler are put back too."""
    x, y = rng.standard_normal((16, 5, 2)), rng.standard_normal((16, 1))
    runs = []
    for failures in (1, 0):
        trainer = rk.Trainer(_regressor(rk, np.float64), loss="mse", optimizer=rk.Adam(lr=0.01),
                             lr_scheduler=lambda opt, n=failures: _FailingScheduler(opt, [n]))
        if failures:
            with pytest.raises(RuntimeError, match="scheduler failed"):
                trainer.fit(x, y, epochs=3, batch_size=4, progress=False)
            assert trainer.scheduler.steps == 0
        history = trainer.fit(x, y, epochs=3, batch_size=4, progress=False)
        runs.append((trainer.model._flat.copy(), history, trainer.optimizer.steps, trainer.optimizer.lr))
    (w1, h1, s1, lr1), (w2, h2, s2, lr2) = runs
    np.testing.assert_array_equal(w1, w2)
    assert h1 == h2 and s1 == s2 == 12 and lr1 == lr2 == 0.01 * 0.5**3


def test_an_lr_scheduler_without_step_is_refused_by_the_trainer(rk):
    with pytest.raises(TypeError, match=r"lr_scheduler\(optimizer\) must return a scheduler with a step\(\) method"):
        rk.Trainer(rk.Sequential(rk.Linear(3, 1)), lr_scheduler=lambda opt: object())
