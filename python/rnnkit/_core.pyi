"""rnnkit's C++ core: recurrent stacks forward and backward through time.

Arrays are C-contiguous and of exactly the stack's dtype (float32 or float64);
``rnnkit.layers`` converts and validates before calling in.
"""

from typing import Any, Optional, Sequence

import numpy as np
from numpy.typing import ArrayLike

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
        peepholes: bool = False,
    ) -> None: ...
    @property
    def num_params(self) -> int: ...
    @property
    def gates(self) -> int:
        """Gate blocks of hidden_size rows in each weight (the cell's declaration)."""
    @property
    def unit_weight_rows(self) -> int:
        """Rows of the per-unit weight (LSTM peepholes: 3), 0 for none (the cell's declaration)."""
    @property
    def num_tensors(self) -> int:
        """len(param_layout()), in closed form: nothing is listed or allocated."""
    def param_layout(self) -> list[tuple[str, int, tuple[int, ...]]]:
        """[(name, offset, shape)] of every parameter, in buffer order."""
    def param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """[(name, shape)] of every parameter, in buffer order, with no product of sizes formed
        (for sizes whose buffer would not fit)."""

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
    reuse: Optional[_Cache32 | _Cache64] = None,
    lowp: Optional[LowpStack] = None,
) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[_Cache32 | _Cache64]]:
    """(out, h_n, c_n, cache): c_n only for LSTM, cache only when training (``reuse``, a cache
    whose backward is done, when given: the forward refills its buffers instead of allocating).
    ``lowp``: the stack's weight matrices in int8 / bfloat16 (float32 inference only)."""

# ---- reduced precision (register_lowp.cpp) ----
def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(q int8 (rows, cols), scale float32 (rows)): symmetric, one scale per row."""
def to_bf16(w: np.ndarray) -> np.ndarray:
    """w rounded to nearest even into bfloat16, as its uint16 bits."""
def from_bf16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) as float32."""
def lowp_matrices(spec: StackSpec) -> list[tuple[str, int, int]]:
    """[(name, rows, cols)] of the stack's weight matrices."""

class LowpStack:
    """A recurrent stack's weight matrices in int8 or bfloat16, packed for the products."""
    def __init__(self, spec: StackSpec, precision: str, tensors: dict[str, np.ndarray]) -> None: ...
    @property
    def precision(self) -> str: ...

class LowpLinear:
    """A Linear layer's weight in int8 or bfloat16, packed for y = x W^T + b."""
    def __init__(self, precision: str, weight: np.ndarray, scale: Optional[np.ndarray] = None) -> None: ...
    def forward(self, x: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray: ...

def cpu_features() -> dict[str, Any]:
    """What the CPU has, the instruction-set level chosen and the kernels in use."""

def build_info() -> dict[str, Any]:
    """How this copy of the core was built."""

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

# ---- layers (rnnkit/layers.h); x, weight etc. are C-contiguous arrays of one float dtype ----
def linear_forward(x: np.ndarray, weight: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """(M, out) = x (M, in) · weight^T + bias."""

def linear_backward(
    grad: np.ndarray, x: np.ndarray, weight: np.ndarray, weight_grad: np.ndarray,
    bias_grad: Optional[np.ndarray], need_dx: bool,
) -> Optional[np.ndarray]:
    """Accumulates weight_grad and bias_grad; returns dL/dx (M, in) if need_dx."""

def embedding_forward(ids: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(M, dim) rows of weight for int64 ids (M,); ids out of range raise ValueError."""

def embedding_backward(grad: np.ndarray, ids: np.ndarray, weight_grad: np.ndarray, padding_idx: int) -> None:
    """weight_grad[ids[i]] += grad[i], except the padding row (padding_idx < 0: none)."""

def last_step_forward(seq: np.ndarray, lengths: Optional[np.ndarray], batch_first: bool, directions: int) -> np.ndarray: ...
def last_step_backward(grad: np.ndarray, lengths: Optional[np.ndarray], batch_first: bool, directions: int, T: int) -> np.ndarray: ...
def mean_pool_forward(seq: np.ndarray, lengths: Optional[np.ndarray], batch_first: bool) -> np.ndarray: ...
def mean_pool_backward(grad: np.ndarray, lengths: Optional[np.ndarray], batch_first: bool, T: int) -> np.ndarray: ...
def check_lengths(lengths: np.ndarray, steps: int) -> None:
    """Raise ValueError unless every length (int64, C-contiguous) is in 1..steps: the check, and message,
    of every entry point that takes lengths."""

# ---- losses (rnnkit/losses.h): (loss, dL/dpred) ----
def mse_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]: ...
def cross_entropy_loss(
    logits: np.ndarray, target: np.ndarray, valid: Optional[np.ndarray], ignore_index: int
) -> tuple[float, np.ndarray]:
    """logits (..., C), int64 target (M,), optional uint8 valid (M,): rows that count."""
def bce_with_logits_loss(logits: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]: ...

# ---- optimizers (rnnkit/optim.h): in place over one flat buffer ----
def sgd_step(
    params: np.ndarray, grads: np.ndarray, buf: np.ndarray, lr: float, momentum: float, nesterov: bool,
    weight_decay: float, first_step: bool,
) -> None: ...
def adam_step(
    params: np.ndarray, grads: np.ndarray, exp_avg: np.ndarray, exp_avg_sq: np.ndarray, lr: float, beta1: float,
    beta2: float, eps: float, weight_decay: float, decoupled: bool, step: int,
) -> None: ...
def clip_grad_norm(grads: np.ndarray, max_norm: float) -> float:
    """Scales grads in place if their L2 norm exceeds max_norm; returns the norm before clipping."""

# ---- the optional BLAS (rnnkit/blas.h) ----
def use_blas(library: str, symbol_prefix: str = "") -> None:
    """Hand large products to this CBLAS shared library ('' goes back to Eigen); RuntimeError if unusable."""
def blas_library() -> str:
    """The BLAS library in use, '' for Eigen's own GEMM."""

# ---- the embedded runtime (rnnkit/model.h): Runtime32 computes in float32, Runtime64 in float64 ----
def architecture_table() -> dict[str, dict[str, Any]]:
    """The layer classes a model file may hold (rnnkit/architecture.h):
    {class: {"role", "options", "checks", "input"}}; each option {"key", "type", "required", "default",
    "minimum", "maximum", "allowed", "summary"}, as far as its type has them."""

class ModelFileError(ValueError):
    """A model file that cannot be used: missing, truncated, corrupt, foreign, another version, unknown layer."""

class Stream32:
    """Streaming runner: the state of a fixed batch, one time step per call."""

    def step(self, x_t: ArrayLike) -> np.ndarray:
        """x_t (batch, input_size), or token ids (batch,); with batch 1 also unbatched: (input_size,) or one id.
        Anything np.asarray takes (a list, a number). Returns (batch, output_size)."""
    def reset(self) -> None: ...
    @property
    def batch(self) -> int: ...
    @property
    def steps(self) -> int: ...

class Runtime32:
    """A model in the C++ runtime (rnnkit::Model): predict and stream."""

    @staticmethod
    def load(path: str) -> "Runtime32": ...
    @staticmethod
    def from_tensors(architecture: str, tensors: dict[str, ArrayLike]) -> "Runtime32": ...
    @property
    def takes_ids(self) -> bool: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def input_size(self) -> int: ...
    @property
    def output_size(self) -> int: ...
    @property
    def per_step(self) -> bool: ...
    @property
    def can_stream(self) -> bool: ...
    @property
    def num_parameters(self) -> int: ...
    def summary(self) -> str: ...
    def predict(self, x: ArrayLike, lengths: Optional[ArrayLike] = None) -> np.ndarray:
        """x (batch, steps, input_size) or ids (batch, steps) -> (batch, steps, out) or (batch, out)."""
    def stream(self, batch: int) -> Stream32: ...

class Stream64(Stream32): ...
class Runtime64(Runtime32): ...
