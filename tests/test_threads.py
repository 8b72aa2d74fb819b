"""Thread safety and the thread-count switch.

One module in eval mode is called from 4 Python threads at once (started together at a
barrier), each thread on its own inputs; every result must equal, bit for bit, the same call
made from a single thread.  rk.set_num_threads / rk.get_num_threads round-trip, and the
result does not depend on the number of threads beyond rounding.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import reference
from reference import spec_for

N_THREADS = 4
T, B = 200, 4


@pytest.fixture
def num_threads(rk, request):
    """Set rk's thread count for one test and restore it afterwards."""
    before = rk.get_num_threads()
    rk.set_num_threads(request.param)
    yield request.param
    rk.set_num_threads(before)


@pytest.mark.parametrize("num_threads", [1, 2], indirect=True, ids=["omp1", "omp2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell_name", ["lstm", "gru", "lstm_proj"])
def test_concurrent_eval_calls_equal_serial_calls(
    num_threads, cell_name, dtype, rng, make_module, make_inputs, run_forward
):
    spec = spec_for(cell_name, input_size=16, hidden_size=32, num_layers=2, bidirectional=True)
    m = make_module(spec, dtype, seed=0).eval()
    inputs = [
        make_inputs(spec, rng, T, B, state=True, lengths="random" if i % 2 else None)
        for i in range(2 * N_THREADS)
    ]
    call = lambda inp: run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])  # noqa: E731
    serial = [call(inp) for inp in inputs]

    barrier = threading.Barrier(N_THREADS)

    def worker(k):
        barrier.wait()  # all threads enter the core together
        return [(i, call(inputs[i])) for _ in range(2) for i in range(k, len(inputs), N_THREADS)]

    with ThreadPoolExecutor(max_workers=N_THREADS) as ex:
        results = [r for chunk in ex.map(worker, range(N_THREADS)) for r in chunk]

    assert len(results) == 2 * len(inputs)
    for i, got in results:
        for a, b in zip(got, serial[i]):
            if b is not None:
                assert a.dtype == dtype
                np.testing.assert_array_equal(a, b)


def test_set_get_num_threads_round_trip(rk):
    before = rk.get_num_threads()
    assert isinstance(before, int) and before >= 1
    try:
        for n in (1, 2, 3, 1):
            rk.set_num_threads(n)
            assert rk.get_num_threads() == n
    finally:
        rk.set_num_threads(before)
    assert rk.get_num_threads() == before
    for bad in (0, -1):
        with pytest.raises(ValueError, match="threads"):
            rk.set_num_threads(bad)
        assert rk.get_num_threads() == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cell_name", ["lstm", "gru"])
def test_result_does_not_depend_on_thread_count(
    rk, cell_name, dtype, rng, make_module, make_inputs, run_forward, run_backward
):
    spec = spec_for(cell_name, input_size=8, hidden_size=16, num_layers=2, bidirectional=True)
    m = make_module(spec, dtype, seed=0)
    inp = make_inputs(spec, rng, 50, 8, state=True, lengths="random")
    g = None
    results = []
    before = rk.get_num_threads()
    try:
        for n in (1, 2):
            rk.set_num_threads(n)
            m.zero_grad()
            out, h_n, c_n = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
            if g is None:
                g = np.random.default_rng(0).standard_normal(out.shape)
            gx, gh0, _ = run_backward(m, spec, g)
            grads = m.grads()
            results.append([out, h_n, gx, gh0] + [np.array(grads[k]) for k in sorted(grads)])
    finally:
        rk.set_num_threads(before)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(*results):
        scale = max(1.0, float(np.abs(a).max()))
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * scale)


# How the recurrent driver splits its work among threads, and shapes that make it
# (batch, steps, hidden size, RNN's hidden size, lengths): each thread its own part
# of the batch where there are 16 rows per thread and at least kPartWork multiply-adds
# (every step's rows in length order, dealt out in boustrophedon order: "parts", with
# lengths, where each part keeps its own copy of its input rows; "parts-even": no lengths
# and a batch that 2 and 3 divide, rows k, k + threads, ..., where training's backward
# reads each part's rows of X, dY and dX in place, at a stride; "parts-small": on 3
# threads, 3 parts of fewer than 16 rows, as two parts of 16 fit), else a thread team
# over the time loop, each thread a block of hidden units, where a step has at least
# kTeamStepWork multiply-adds (RNN needs 88 units for that at a batch of 24). 56 and
# 88 units: a partial block of SIMD panels in float32.
LAYOUTS = {
    "parts": (128, 16, 56, 56, "random"),
    "parts-even": (96, 12, 56, 56, None),
    "parts-small": (40, 16, 56, 56, "random"),
    "team": (24, 9, 56, 88, "random"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("num_threads", [2, 3], indirect=True, ids=["omp2", "omp3"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_thread_team_matches_reference(
    layout, num_threads, cell, dtype, rng, make_module, make_inputs, run_forward, run_backward, rk
):
    """Shapes large enough for the recurrent driver to use its threads (LAYOUTS), in eval
    and training mode, in both directions, with lengths (rows join the reverse direction as
    t falls) and initial states: forward against the NumPy reference, the eval forward bit
    for bit the one-thread eval forward, and backward (with the parts: each part's own
    gradients, added in part order) equal to the same backward on one thread."""
    B, T, hidden, rnn_hidden, lengths = LAYOUTS[layout]
    hidden = rnn_hidden if cell.startswith("rnn") else hidden
    spec = spec_for(cell, input_size=40, hidden_size=hidden, num_layers=2, bidirectional=True)
    scale = 0.3 * (56 / hidden) ** 0.5  # the same spread of pre-activations at 88 units as at 56
    m = make_module(spec, dtype, params=reference.init_params(spec, rng, scale=scale))
    inp = make_inputs(spec, rng, T, B, state=True, lengths=lengths)
    as_dtype = lambda a: None if a is None else np.asarray(a).astype(dtype).astype(np.float64)  # noqa: E731
    want = reference.forward(
        spec, {k: np.asarray(v, np.float64) for k, v in m.state_dict().items()},
        as_dtype(inp["x"]), as_dtype(inp["h0"]), as_dtype(inp["c0"]), inp["lengths"],
    )
    tol = 1e-10 if dtype == np.float64 else 2e-5
    grad_out = rng.standard_normal(want[0].shape)
    results, evals = [], []
    for threads, mode in ((num_threads, "eval"), (1, "eval"), (num_threads, "train"), (1, "train")):
        rk.set_num_threads(threads)
        getattr(m, mode)()
        m.zero_grad()
        got = run_forward(m, spec, inp["x"], inp["h0"], inp["c0"], inp["lengths"])
        for name, a, b in zip(["out", "h_n", "c_n"], got, want):
            if b is not None and (spec.mode == "LSTM" or name != "c_n"):
                np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=f"{name}, {threads} threads, {mode}")
        if mode == "eval":
            evals.append(got)
        else:
            back = list(run_backward(m, spec, grad_out.astype(dtype)))
            grads = m.grads()
            results.append(back + [np.array(grads[k]) for k in sorted(grads)])
    rk.set_num_threads(num_threads)
    for a, b in zip(*evals):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    for a, b in zip(*results):
        if a is not None:
            scale = max(1.0, float(np.abs(b).max()))
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)
