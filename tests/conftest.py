"""Shared fixtures for the rnnkit core tests.

Every test builds a module from a `reference.Spec`, feeds it inputs from `make_inputs`, and
compares against an independent oracle: `reference.forward` (NumPy, float64), central
finite differences, or torch autograd.  The helpers here hide the small API differences
between cells (LSTM takes and returns (h, c) pairs; RNN and GRU a single h).
"""

from __future__ import annotations

import os
import sys
import warnings
import zlib

import numpy as np
import pytest

# `import reference` works under any --import-mode (rootdir/prepend or importlib).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference import CELLS, Spec  # noqa: E402


def pytest_report_header(config):
    """Which compiled core the tests run on (RNNKIT_ISA=baseline|avx2|avx512 forces a level)."""
    import rnnkit
    from rnnkit._dispatch import LEVELS  # widest first

    f = rnnkit.cpu_features()
    isa = os.environ.get("RNNKIT_ISA")
    if isa in LEVELS and f["module"] != "_core_native":
        expected = max(isa, f["best"], key=LEVELS.index)
        if f["chosen"] != expected:  # a forced run that silently ran another level would prove nothing
            raise pytest.UsageError(f"RNNKIT_ISA={isa}: expected the {expected} core, got {f['module']}")
    return f"rnnkit core: {f['module']} (built for {f['build']}, running {f['chosen']}; CPU's best {f['best']})"

@pytest.fixture(params=list(CELLS))
def cell(request) -> str:
    """Each cell variant: RNN tanh/relu, LSTM with/without proj and peepholes, GRU both reset_after."""
    return request.param


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test id: reproducible, different for each test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def rk():
    import rnnkit

    return rnnkit


# ----------------------------------------------------------------------------- rnnkit side
@pytest.fixture
def make_module(rk):
    """make_module(spec, dtype=np.float64, params=None, seed=0) -> an rnnkit module
    (in training mode); params (a dict with PyTorch's keys) is loaded when given."""

    def make(spec: Spec, dtype=np.float64, params=None, seed=0):
        cls = getattr(rk, spec.mode)
        m = cls(spec.input_size, spec.hidden_size, dtype=dtype, seed=seed, **spec.kwargs())
        if params is not None:
            m.load_state_dict(params)
        return m

    return make


def rk_forward(m, spec: Spec, x, h0=None, c0=None, lengths=None):
    """Call the module; returns (out, h_n, c_n) with c_n None except for LSTM."""
    if spec.mode == "LSTM":
        hx = None if h0 is None else (h0, c0)
        out, (h_n, c_n) = m(x, hx, lengths=lengths)
        return out, h_n, c_n
    out, h_n = m(x, h0, lengths=lengths)
    return out, h_n, None


def rk_backward(m, spec: Spec, grad_out, grad_h=None, grad_c=None):
    """Call backward; returns (grad_x, grad_h0, grad_c0) with grad_c0 None except for LSTM."""
    if spec.mode == "LSTM":
        g = None if grad_h is None else (grad_h, grad_c)
        grad_x, (grad_h0, grad_c0) = m.backward(grad_out, g)
        return grad_x, grad_h0, grad_c0
    grad_x, grad_h0 = m.backward(grad_out, grad_h)
    return grad_x, grad_h0, None


@pytest.fixture
def run_forward():
    return rk_forward


@pytest.fixture
def run_backward():
    return rk_backward


# ----------------------------------------------------------------------------- inputs
def random_inputs(spec: Spec, rng, T: int, B: int, *, unbatched=False, state=True, lengths=None):
    """Random float64 inputs in the caller's layout: dict(x, h0, c0, lengths).

    lengths: None, "random" (each in 1..T, at least one of length T and one of length 1
    when B > 1), or an explicit sequence."""
    D, L = spec.num_directions, spec.num_layers
    if unbatched:
        x = rng.standard_normal((T, spec.input_size))
        hshape, cshape = (D * L, spec.out_size), (D * L, spec.hidden_size)
    else:
        x = rng.standard_normal((B, T, spec.input_size) if spec.batch_first else (T, B, spec.input_size))
        hshape, cshape = (D * L, B, spec.out_size), (D * L, B, spec.hidden_size)
    h0 = 0.5 * rng.standard_normal(hshape) if state else None
    c0 = 0.5 * rng.standard_normal(cshape) if (state and spec.mode == "LSTM") else None
    if isinstance(lengths, str):
        assert lengths == "random"
        lengths = rng.integers(1, T + 1, size=B)
        if B > 1:
            lengths[rng.permutation(B)[:2]] = [T, 1]
    if lengths is not None:
        lengths = np.asarray(lengths, dtype=np.int64)
    return dict(x=x, h0=h0, c0=c0, lengths=lengths)


@pytest.fixture
def make_inputs():
    return random_inputs


# ----------------------------------------------------------------------------- torch side
def torch_module(spec: Spec, params=None, dtype=np.float64):
    """The equivalent torch.nn module (torch has no GRU reset_after=False), with params.
    A peephole LSTM has none: the test is skipped (test_peephole.py checks it against ONNX)."""
    import torch

    assert not (spec.mode == "GRU" and not spec.reset_after), "torch has no reset_after=False GRU"
    if spec.peepholes:
        pytest.skip("torch.nn.LSTM has no peephole connections (ONNX's P input)")
    kw = spec.kwargs()
    kw.pop("reset_after", None)
    m = getattr(torch.nn, spec.mode)(spec.input_size, spec.hidden_size, **kw)
    m = m.double() if dtype == np.float64 else m.float()
    if params is not None:
        tdt = torch.float64 if dtype == np.float64 else torch.float32
        m.load_state_dict({k: torch.as_tensor(np.asarray(v), dtype=tdt) for k, v in params.items()})
    return m


def torch_forward(tm, spec: Spec, x, h0=None, c0=None, lengths=None):
    """Run a torch module on tensors in the caller's layout; lengths via packed sequences
    (enforce_sorted=False). Returns (out, h_n, c_n) as tensors (c_n None except for LSTM)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    hx = h0 if spec.mode != "LSTM" or h0 is None else (h0, c0)
    with warnings.catch_warnings():
        # torch's float32 LSTM with proj_size warns that it falls back from oneDNN
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported")
        if lengths is None:
            out, hn = tm(x, hx)
        else:
            T = x.shape[1] if spec.batch_first else x.shape[0]
            packed = pack_padded_sequence(x, lengths, batch_first=spec.batch_first, enforce_sorted=False)
            out, hn = tm(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=spec.batch_first, total_length=T)
    if spec.mode == "LSTM":
        return out, hn[0], hn[1]
    return out, hn, None


@pytest.fixture
def make_torch():
    pytest.importorskip("torch")
    return torch_module


@pytest.fixture
def run_torch():
    pytest.importorskip("torch")
    return torch_forward


@pytest.fixture(scope="session")
def cpp_build():
    """The CMake build directory of the C++ tests and the runtime driver, built once per session."""
    from cpp_build import build_tests

    return build_tests()
