"""rnnkit: fast CPU recurrent neural networks (RNN, LSTM, GRU).

The maths lives in an Eigen-based C++ core (``rnnkit._core``); this package
gives it PyTorch's module API over NumPy arrays, and a thin training stack.
"""

from __future__ import annotations

from typing import Any

from ._dispatch import load_core as _load_core

_core = _load_core()  # the compiled core for this CPU, as rnnkit._core (before the modules that import it)

from . import losses, runtime, text  # noqa: E402
from ._core import get_num_threads, set_num_threads  # noqa: E402
from ._version import __version__  # noqa: E402
from .generate import generate  # noqa: E402
from .io import load, save  # noqa: E402
from .layers import GRU, LSTM, RNN  # noqa: E402
from .module import Module  # noqa: E402
from .nn import Dropout, Embedding, LastStep, Linear, MeanPool  # noqa: E402
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR, clip_grad_norm  # noqa: E402
from .quantization import quantize  # noqa: E402
from .sequential import Sequential  # noqa: E402
from .trainer import Trainer  # noqa: E402

__all__ = [
    "RNN", "LSTM", "GRU", "Embedding", "Linear", "LastStep", "MeanPool", "Dropout", "Sequential", "Module",
    "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "clip_grad_norm", "Trainer", "losses", "text",
    "save", "load", "generate", "runtime", "blas_library", "get_num_threads", "set_num_threads", "quantize",
    "cpu_features", "show_config", "__version__",
]


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
    """What the CPU has (AVX2, FMA, AVX-512 and its VNNI / BF16 extensions) and which kernels run.

    ``best`` is the widest instruction-set level the CPU has, ``build`` the level of the
    compiled core that was imported (``module``), ``chosen`` the level in use (``RNNKIT_ISA``,
    when set, caps it), ``int8_kernel`` / ``bf16_kernel`` the reduced-precision kernels.

    >>> rk.cpu_features()["chosen"] in ("baseline", "avx2", "avx512")
    True
    """
    features = dict(_core.cpu_features())
    features["module"] = _core.__name__.rsplit(".", 1)[-1]
    return features


def show_config(mode: str = "stdout") -> dict | None:
    """Print how rnnkit was built and what it runs on, as ``np.show_config()`` does.

    The version, the compiled core in use and the instruction-set level it was chosen at,
    the other cores the install holds, the CPU's features, the reduced-precision kernels,
    the compiler and flags, Eigen, OpenMP and the thread count, and the BLAS. ``mode="dicts"``
    returns the same as a dict instead of printing it. ``python -m rnnkit`` prints it too.
    """
    import platform

    import numpy as np

    from ._dispatch import available_modules

    if mode not in ("stdout", "dicts"):
        raise ValueError(f"show_config: mode must be 'stdout' or 'dicts', got {mode!r}")
    f = cpu_features()
    b = dict(_core.build_info())
    flags = [k for k in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd",
                         "avx512_vnni", "avx512_bf16") if f.get(k)]
    config: dict[str, Any] = {
        "version": __version__,
        "core": {"module": f"rnnkit.{f['module']}", "build": f["build"], "chosen": f["chosen"],
                 "available": available_modules(), "RNNKIT_ISA": f["RNNKIT_ISA"]},
        "cpu": {"machine": platform.machine(), "best": f["best"], "features": flags},
        "kernels": {"int8": f["int8_kernel"], "bf16": f["bf16_kernel"]},
        "build": {"compiler": b["compiler"], "flags": b["flags"] or "(the compiler's default)",
                  "eigen": b["eigen"], "eigen_simd": b["eigen_simd"],
                  "openmp": b["openmp_version"] if b["openmp"] else False},
        "threads": get_num_threads(),
        "blas": blas_library() or "Eigen's own GEMM",
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if "RNNKIT_ISA_error" in f:
        config["core"]["RNNKIT_ISA_error"] = f["RNNKIT_ISA_error"]
    if mode == "dicts":
        return config
    core, cpu, build = config["core"], config["cpu"], config["build"]
    lines = [
        f"rnnkit {config['version']}",
        f"  core      {core['module']} (built for {core['build']}; running {core['chosen']})",
        f"  cores     {', '.join(core['available'])}",
        f"  RNNKIT_ISA {core['RNNKIT_ISA'] or '(unset)'}" + (f": {core['RNNKIT_ISA_error']}"
                                                             if "RNNKIT_ISA_error" in core else ""),
        f"  cpu       {cpu['machine']}, best level {cpu['best']}: {' '.join(cpu['features']) or '-'}",
        f"  kernels   int8 {config['kernels']['int8']}, bf16 {config['kernels']['bf16']}",
        f"  compiler  {build['compiler']}, {build['flags']}",
        f"  eigen     {build['eigen']} ({build['eigen_simd']})",
        f"  openmp    {build['openmp'] or 'no'}; threads {config['threads']}",
        f"  blas      {config['blas']}",
        f"  python    {config['python']}, numpy {config['numpy']}",
    ]
    print("\n".join(lines))
    return None


def blas_library() -> str:
    """The BLAS library rnnkit's large products run on, or '' for Eigen's own GEMM."""
    return _core.blas_library()


_plug_in_blas()
