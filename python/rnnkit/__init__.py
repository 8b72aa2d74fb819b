"""rnnkit: fast CPU recurrent neural networks (RNN, LSTM, GRU).

The maths lives in an Eigen-based C++ core (``rnnkit._core``); this package
gives it PyTorch's module API over NumPy arrays, and a thin training stack.
"""

from __future__ import annotations

from . import _core, losses, runtime, text
from ._core import get_num_threads, set_num_threads
from .generate import generate
from .io import load, save
from .layers import GRU, LSTM, RNN
from .module import Module
from .nn import Dropout, Embedding, LastStep, Linear, MeanPool
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR, clip_grad_norm
from .quantization import quantize
from .sequential import Sequential
from .trainer import Trainer

__all__ = [
    "RNN", "LSTM", "GRU", "Embedding", "Linear", "LastStep", "MeanPool", "Dropout", "Sequential", "Module",
    "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "clip_grad_norm", "Trainer", "losses", "text",
    "save", "load", "generate", "runtime", "blas_library", "get_num_threads", "set_num_threads", "quantize",
    "cpu_features",
]
__version__ = "0.1.0"


def _plug_in_blas() -> None:
    """Hand large products to scipy-openblas32's OpenBLAS when it is installed (``rnnkit[blas]``).

    Eigen's own GEMM is the fallback; ``RNNKIT_BLAS=0`` in the environment keeps it.
    ``rk.blas_library()`` says which is in use.
    """
    import os

    if os.environ.get("RNNKIT_BLAS", "1") == "0":
        return
    try:
        import scipy_openblas32
    except ImportError:
        return
    lib = os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
    try:
        _core.use_blas(lib, "scipy_")
    except RuntimeError as e:  # a broken install must not break the import: Eigen still works
        import warnings

        warnings.warn(f"rnnkit: not using OpenBLAS ({e}); products run on Eigen", RuntimeWarning, stacklevel=2)


def cpu_features() -> dict:
    """What the CPU has (AVX2, AVX-512 and its VNNI / BF16 extensions), the instruction-set level in use
    (``RNNKIT_ISA=baseline|avx2|avx512`` caps it) and the int8 / bfloat16 kernels it chose."""
    return dict(_core.cpu_features())


def blas_library() -> str:
    """The BLAS library rnnkit's large products run on, or '' for Eigen's own GEMM."""
    return _core.blas_library()


_plug_in_blas()
