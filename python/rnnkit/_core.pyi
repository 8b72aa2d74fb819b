"""rnnkit's C++ core: recurrent stacks forward and backward through time.

Arrays are C-contiguous and of exactly the stack's dtype (float32 or float64);
``rnnkit.layers`` converts and validates before calling in.
"""

from typing import Optional, Sequence

import numpy as np

def get_num_threads() -> int:
    """Threads the core uses for its loops and GEMMs."""

def set_num_threads(n: int) -> None:
    """Set the threads the core uses (n >= 1), for every later call from any thread."""

def has_openmp() -> bool: ...

class StackSpec:
    """A recurrent stack's cell type, sizes and options."""

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        bidirectional: bool = False,
        proj_size: int = 0,
        reset_after: bool = True,
    ) -> None: ...
    @property
    def num_params(self) -> int: ...
    def param_layout(self) -> list[tuple[str, int, tuple[int, ...]]]:
        """[(name, offset, shape)] of every parameter, in buffer order."""

class _Cache32:
    """What a training forward keeps for backward (opaque)."""

class _Cache64:
    """What a training forward keeps for backward (opaque)."""

def forward(
    spec: StackSpec,
    params: np.ndarray,
    x: np.ndarray,
    batch_first: bool,
    h0: Optional[np.ndarray] = None,
    c0: Optional[np.ndarray] = None,
    lengths: Optional[np.ndarray] = None,
    dropout: Sequence[np.ndarray] = (),
    training: bool = False,
) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[_Cache32 | _Cache64]]:
    """(out, h_n, c_n, cache): c_n only for LSTM, cache only when training."""

def backward(
    spec: StackSpec,
    params: np.ndarray,
    grads: np.ndarray,
    cache: _Cache32 | _Cache64,
    grad_out: Optional[np.ndarray] = None,
    grad_h_n: Optional[np.ndarray] = None,
    grad_c_n: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """(grad_x, grad_h0, grad_c0); accumulates the parameter gradients into grads."""
