"""The base of every rnnkit module: parameters in one flat buffer, modes, state dicts.

A module's parameters are named views into one contiguous 1-D buffer
(``_flat``), and their gradients views into a twin buffer (``_grad``), in the
order ``_param_shapes()`` gives. A standalone module owns its buffers; a
Sequential re-homes its layers' parameters into one buffer of its own
(``_bind``), so an optimizer step or gradient clipping is one pass over one array.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from . import _core

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Python objects held per named parameter tensor (its parameter and gradient views, its name, its
# layout entry): a layer with millions of small tensors needs these too, not only the buffers.
_TENSOR_OVERHEAD = 1024


# ---- argument checks shared by every module ---------------------------------------
def got(value: Any) -> str:
    """What an argument was, for an error message: its type and (shortened) repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 80 else text[:77] + '...'}"


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {got(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {got(value)}")
    return bool(value)


def is_number(value: Any) -> bool:
    """A real scalar (int or float, NumPy's too), not a bool."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def check_probability(name: str, value: Any) -> float:
    if not is_number(value):
        raise TypeError(f"{name} must be a number in [0, 1), got {got(value)}")
    if not 0.0 <= value < 1.0:  # NaN fails this too; an int compares exactly, however large
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def check_real(name: str, value: Any, minimum: float = 0.0, *, strict: bool = False) -> float:
    """A finite number >= minimum (> minimum with strict)."""
    if not is_number(value):
        raise TypeError(f"{name} must be a number, got {got(value)}")
    try:
        x = float(value)
    except OverflowError:  # an int past float's range
        x = math.inf
    bound = ">" if strict else ">="
    if not math.isfinite(x) or x < minimum or (strict and x == minimum):
        raise ValueError(f"{name} must be a finite number {bound} {minimum:g}, got {value}")
    return x


def check_seed(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"seed must be None or an int >= 0, got {got(value)}")
    if value < 0:
        raise ValueError(f"seed must be None or an int >= 0, got {value}")
    return int(value)


def check_dtype(dtype: Any) -> np.dtype:
    # np.dtype(None) is float64: a None (e.g. a config entry left empty) is refused, not read as float64
    if dtype is None:
        raise TypeError("dtype must be float32 or float64 (np.float32, np.float64 or their names), got None")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _memory_limit() -> tuple[int, str]:
    """The most memory this process could get, and what sets that bound."""
    limits = [(sys.maxsize, "the largest array NumPy can allocate")]
    try:
        limits.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "this machine's memory"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append((soft, "this process's address-space limit (RLIMIT_AS)"))
    except (ImportError, AttributeError, ValueError, OSError):
        pass
    return min(limits)


def gib(n_bytes: float) -> str:
    g = n_bytes / 2**30
    return f"{g:,.2f} GiB" if g < 1e6 else f"{g:.3g} GiB"


def check_allocatable(what: str, elements: int, tensors: int, dtype: np.dtype) -> None:
    """Refuse, before anything is allocated, parameters that cannot fit in memory.

    A module holds its parameters and their gradients (2 x elements) and a few Python objects
    per named tensor; past what the machine (or RLIMIT_AS) allows, building them would fail
    late or, where memory is overcommitted, run for hours filling pages.
    """
    need = 2 * elements * dtype.itemsize + tensors * _TENSOR_OVERHEAD
    limit, source = _memory_limit()
    if need > limit:
        raise MemoryError(
            f"{what} would need {elements:,} {dtype.name} parameters in {tensors:,} tensors: {gib(need)} "
            f"with their gradients, more than {source} ({gib(limit)})"
        )


def as_real_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:  # e.g. a torch tensor that requires grad
        raise TypeError(f"{name} could not be converted to a NumPy array: {e}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def as_lengths(value: Any, batch: int, steps: int) -> Optional[np.ndarray]:
    """Validate optional sequence lengths: int array (batch,), each in 1..steps."""
    if value is None:
        return None
    lengths = np.asarray(value)
    if lengths.dtype.kind not in "iu":
        raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths has shape {shape_str(lengths.shape)}, expected ({batch},)")
    if lengths.dtype == np.uint64:  # past int64's range is out of range anyway: keep it so through the cast
        lengths = np.minimum(lengths, np.iinfo(np.int64).max)
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    _core.check_lengths(lengths, steps)  # the range check and message every entry point shares (packing.h)
    return lengths


def shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Module:
    """Parameters, gradients, modes and state dicts; subclasses add forward/backward."""

    training: bool = True
    dtype: np.dtype = np.dtype(np.float32)
    _owner: Any = None  # a weak reference to the Sequential whose buffer holds this layer's parameters
    # The weight matrices' storage (rk.quantize): "float32", or "int8" / "bf16" with the stored
    # values in _lowp_stored and their C++ packing in _lowp (the parameter views hold their values).
    precision: str = "float32"
    _lowp: Any = None
    _lowp_stored: dict[str, np.ndarray] = {}

    # ---- what a subclass provides -------------------------------------------------
    def _param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every parameter, in buffer order."""
        return []

    def _init_params(self, rng: np.random.Generator) -> None:
        """Fill the parameter views with their initial values."""

    def _lowp_matrices(self) -> list[tuple[str, tuple[int, ...]]]:
        """The weight matrices rk.quantize stores in reduced precision (name, shape); none by default."""
        return []

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, JSON-serialisable (model files store it)."""
        return {}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def backward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def _infer(self, *args: Any, **kwargs: Any) -> Any:
        """The eval-mode forward whatever ``self.training``, keeping and changing nothing
        (no cache, no mode flip), so that it may run while another thread trains the module."""
        if self.training:
            raise NotImplementedError(f"{type(self).__name__} has no eval-mode forward; call .eval() on it first")
        return self.forward(*args, **kwargs)

    def _out_shape(self, shape: tuple) -> tuple:
        """The output shape for an input shape (for Sequential.summary)."""
        raise NotImplementedError(f"{type(self).__name__} has no _out_shape")

    def _describe(self) -> str:
        """The module with its sizes named, for messages about them."""
        return repr(self)

    # ---- buffers --------------------------------------------------------------------
    def _setup(self, dtype: Any, seed: Optional[int]) -> None:
        """Own buffers, named views, initial values; a generator for dropout masks."""
        dt = check_dtype(dtype)
        seed = check_seed(seed)
        shapes = self._param_shapes()
        n = sum(math.prod(shape) for _, shape in shapes)  # Python ints: np.prod wraps around past 2**63
        what = self._describe()
        check_allocatable(what, n, len(shapes), dt)
        try:
            flat, grad = np.empty(n, dtype=dt), np.zeros(n, dtype=dt)
        except MemoryError as e:
            raise MemoryError(f"{what}: out of memory allocating its {n:,} {dt.name} parameters and their gradients "
                              f"({gib(2 * n * dt.itemsize)}): {e}") from e
        self.dtype, self.seed = dt, seed
        self._bind(flat, grad)
        self._rng = np.random.default_rng(seed)
        self._init_params(self._rng)
        self.training = True

    def _bind(self, flat: np.ndarray, grad: np.ndarray) -> None:
        """Point the parameter and gradient views at new buffers (values are not copied)."""
        self._flat, self._grad = flat, grad
        self._params, self._grads = {}, {}
        offset = 0
        for name, shape in self._param_shapes():
            n = int(np.prod(shape))
            self._params[name] = flat[offset : offset + n].reshape(shape)
            self._grads[name] = grad[offset : offset + n].reshape(shape)
            offset += n

    # ---- parameters -----------------------------------------------------------------
    def parameters(self) -> dict[str, np.ndarray]:
        """Live views of every parameter, by PyTorch's names."""
        return dict(self._params)

    def grads(self) -> dict[str, np.ndarray]:
        """Live views of every parameter's accumulated gradient, by PyTorch's names."""
        return dict(self._grads)

    def num_parameters(self) -> int:
        return int(self._flat.size)

    def zero_grad(self) -> None:
        self._grad.fill(0)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter, with PyTorch's keys and shapes. A quantized layer's
        (rk.quantize) holds its matrices as stored: int8 values with their row scales
        (``name + "_scale"``), or bfloat16 bits as uint16."""
        if self._lowp is None:
            return {name: v.copy() for name, v in self._params.items()}
        matrices = dict(self._lowp_matrices())
        out: dict[str, np.ndarray] = {}
        for name, v in self._params.items():
            if name not in matrices:
                out[name] = v.copy()
            else:
                out.update({k: a.copy() for k, a in self._lowp_stored.items() if k in (name, name + "_scale")})
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy parameters in (anything np.asarray takes, torch tensors too).

        Everything is checked before anything is written, so a failed load
        leaves the module as it was.
        """
        self._stage_state_dict(state_dict, strict)()

    def _stage_state_dict(self, state_dict: Mapping[str, Any], strict: bool) -> Any:
        """Check ``state_dict`` whole and return what writes it (load_state_dict's two halves)."""
        strict = check_bool("strict", strict)
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
        if self._lowp is not None:
            from . import quantization

            return quantization.stage_state_dict(self, state_dict, strict)
        return self._stage_float_state_dict(state_dict, strict)

    def _stage_float_state_dict(self, state_dict: Mapping[str, Any], strict: bool) -> Any:
        names = set(self._params)
        missing = sorted(names - set(state_dict))
        unexpected = sorted(set(state_dict) - names)
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        staged = {}
        for name in sorted(names & set(state_dict)):
            value = as_real_array(f"state_dict key '{name}'", state_dict[name])
            expected = self._params[name].shape
            if value.shape != expected:
                raise ValueError(f"state_dict key '{name}' has shape {shape_str(value.shape)}, expected {shape_str(expected)}")
            dtype = self._params[name].dtype
            # checked after the cast: a float64 1e39 is finite, but becomes inf in float32
            with np.errstate(over="ignore", invalid="ignore"):
                value = value.astype(dtype, copy=False)
            if not np.all(np.isfinite(value)):
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise ValueError(
                    f"state_dict key '{name}' contains NaN or infinite values as {dtype.name} "
                    f"(at index {bad}; {dtype.name} holds magnitudes up to {np.finfo(dtype).max:.3g})"
                )
            staged[name] = value

        def commit() -> None:
            for name, value in staged.items():
                self._params[name][...] = value

        return commit

    # ---- modes ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        mode = check_bool("mode", mode)
        if mode and self._lowp is not None:
            raise RuntimeError(f"{self!r} has {self.precision} weights: it runs inference only. Train the float32 "
                               "model, then rk.quantize it again")
        self.training = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def __repr__(self) -> str:
        extra = self._extra_repr()
        if self.precision != "float32":
            extra += f", precision='{self.precision}'"
        return f"{type(self).__name__}({extra})"

    def _extra_repr(self) -> str:
        return ""
