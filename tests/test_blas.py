"""The optional BLAS (rnnkit[blas]: scipy-openblas32's OpenBLAS, plugged in at
import) gives the same numbers, to rounding, as rnnkit without it: a recurrent
stack hands it the weight gradients wider than gemm.h's kTnBlasCols (256)
columns, which without it run on rnnkit's own kernel (gemm_tn); both dtypes,
with lengths and bidirectional stacks, on 1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import rnnkit as rk
from rnnkit import _core

pytest.importorskip("scipy_openblas32")


@pytest.fixture
def blas_and_eigen():
    """Run a function with the BLAS plugged in, then with Eigen alone; restore the BLAS after."""
    lib = rk.blas_library()
    assert lib, "scipy_openblas32 is installed, so rnnkit should have plugged it in at import"

    def both(fn):
        _core.use_blas(lib, "scipy_")
        with_blas = fn()
        _core.use_blas("")
        try:
            with_eigen = fn()
        finally:
            _core.use_blas(lib, "scipy_")
        return with_blas, with_eigen

    return both


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cls", [rk.RNN, rk.LSTM, rk.GRU])
def test_blas_matches_eigen(blas_and_eigen, cls, dtype, threads) -> None:
    rng = np.random.default_rng(0)
    # well above the BLAS threshold; layer 1's W_ih gradient is 2H = 272 columns wide
    T, B, I, H = 12, 40, 48, 136
    x = rng.standard_normal((T, B, I)).astype(dtype)
    lengths = rng.integers(1, T + 1, B)
    g = rng.standard_normal((T, B, 2 * H)).astype(dtype)

    def run():
        m = cls(I, H, num_layers=2, bidirectional=True, dtype=dtype, seed=1)
        out, _ = m(x, lengths=lengths)
        grad_x, _ = m.backward(g)
        grads = m.grads()
        names = ("weight_ih_l1", "weight_hh_l1", "weight_ih_l0_reverse")
        return (out, grad_x, *(grads[k].copy() for k in names))

    old = rk.get_num_threads()
    rk.set_num_threads(threads)
    try:
        with_blas, with_eigen = blas_and_eigen(run)
    finally:
        rk.set_num_threads(old)
    tol = 1e-10 if dtype == np.float64 else 2e-4
    for a, b in zip(with_blas, with_eigen):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_use_blas_refuses_a_bad_library_and_keeps_the_current_one() -> None:
    lib = rk.blas_library()
    with pytest.raises(RuntimeError, match="cannot load"):
        _core.use_blas("/no/such/libblas.so")
    with pytest.raises(RuntimeError, match="cblas_sgemm"):
        _core.use_blas(lib, "no_such_prefix_")
    assert rk.blas_library() == lib
