"""Recurrent layers with PyTorch's API: RNN, LSTM and GRU.

Each module owns one flat parameter buffer and a twin gradient buffer, laid out
as PyTorch's ``_flat_weights`` (see ``cpp/include/rnnkit/spec.h``); the named
parameters are views into them. Forward and backward are one call each into
the C++ core, which releases the GIL while it computes. Validation happens
here, in the caller's terms (unbatched input, ``hx`` tuples), before anything
is changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from . import _core

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _as_real_array(name: str, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as e:  # e.g. a torch tensor that requires grad
        raise TypeError(f"{name} could not be converted to a NumPy array: {e}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class _RNNBase:
    """What RNN, LSTM and GRU share: parameters, modes, forward/backward plumbing."""

    _mode = ""  # "RNN_TANH", "RNN_RELU", "LSTM", "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        reset_after: bool,
        dtype: Any,
        seed: Optional[int],
    ) -> None:
        self.input_size = _check_int("input_size", input_size, 1)
        self.hidden_size = _check_int("hidden_size", hidden_size, 1)
        self.num_layers = _check_int("num_layers", num_layers, 1)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.bidirectional = _check_bool("bidirectional", bidirectional)
        self.proj_size = _check_int("proj_size", proj_size, 0)
        self.reset_after = _check_bool("reset_after", reset_after)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating, np.integer)):
            raise TypeError(f"dropout must be a number in [0, 1), got {type(dropout).__name__}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({self.hidden_size}), got {self.proj_size}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
        if dt not in _FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        self.dtype = dt

        self._spec = _core.StackSpec(
            self._mode, self.input_size, self.hidden_size, self.num_layers, self.bias,
            self.bidirectional, self.proj_size, self.reset_after,
        )
        self._layout = [(name, offset, tuple(shape)) for name, offset, shape in self._spec.param_layout()]
        self._flat = np.empty(self._spec.num_params, dtype=self.dtype)  # every parameter, PyTorch's order
        self._grad = np.zeros_like(self._flat)                          # their gradients, same layout
        self._params = self._views(self._flat)
        self._grads = self._views(self._grad)

        # PyTorch's initialisation: every weight and bias U(-1/sqrt(H), 1/sqrt(H)).
        self._rng = np.random.default_rng(seed)
        k = 1.0 / math.sqrt(self.hidden_size)
        for name, _, shape in self._layout:
            self._params[name][...] = self._rng.uniform(-k, k, size=shape)
        self.training = True
        self._cache: Any = None  # what the last training forward kept for backward

    # ---- parameters -----------------------------------------------------------------
    def _views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {
            name: flat[offset : offset + int(np.prod(shape))].reshape(shape)
            for name, offset, shape in self._layout
        }

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self) -> int:
        return self.proj_size or self.hidden_size

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
        """Copies of every parameter, with exactly PyTorch's keys and shapes."""
        return {name: v.copy() for name, v in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> None:
        """Copy parameters in (anything np.asarray takes, torch tensors too).

        Everything is checked before anything is written, so a failed load
        leaves the module as it was.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
        names = set(self._params)
        missing = sorted(names - set(state_dict))
        unexpected = sorted(set(state_dict) - names)
        if strict and (missing or unexpected):
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        staged = {}
        for name in sorted(names & set(state_dict)):
            value = _as_real_array(f"state_dict key '{name}'", state_dict[name])
            expected = self._params[name].shape
            if value.shape != expected:
                raise ValueError(f"state_dict key '{name}' has shape {_shape(value.shape)}, expected {_shape(expected)}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"state_dict key '{name}' contains NaN or infinite values")
            staged[name] = value
        for name, value in staged.items():
            self._params[name][...] = value

    # ---- modes ----------------------------------------------------------------------
    def train(self, mode: bool = True) -> "_RNNBase":
        self.training = _check_bool("mode", mode)
        return self

    def eval(self) -> "_RNNBase":
        return self.train(False)

    # ---- forward / backward ---------------------------------------------------------
    def _state_shape(self, size: int, batch: Optional[int]) -> tuple[int, ...]:
        rows = self._directions * self.num_layers
        return (rows, size) if batch is None else (rows, batch, size)

    def _as_state(self, name: str, value: Any, size: int, batch: Optional[int]) -> Optional[np.ndarray]:
        if value is None:
            return None
        arr = _as_real_array(name, value)
        expected = self._state_shape(size, batch)
        if arr.shape != expected:
            raise ValueError(f"{name} has shape {_shape(arr.shape)}, expected {_shape(expected)}")
        if batch is None:
            arr = arr[:, None, :]
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _run(self, x: Any, h0: Any, c0: Any, lengths: Any) -> tuple:
        x = _as_real_array("x", x)
        if x.ndim not in (2, 3):
            raise ValueError(
                f"x has shape {_shape(x.shape)}, expected (T, B, {self.input_size})"
                + (" with batch_first=True: (B, T, I)" if self.batch_first else "")
                + f" or unbatched (T, {self.input_size})"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {_shape(x.shape)}: its last axis must be input_size={self.input_size}")
        unbatched = x.ndim == 2
        batch_first = self.batch_first and not unbatched
        if unbatched:
            x = x[:, None, :]
        T, B = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
        if T == 0 or B == 0:
            raise ValueError(f"x has shape {_shape(x.shape)}: sequence length and batch must be >= 1")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        batch = None if unbatched else B
        h0 = self._as_state("h0", h0, self._out_size, batch)
        c0 = self._as_state("c0", c0, self.hidden_size, batch)
        if lengths is not None:
            lengths = np.asarray(lengths)
            if unbatched and lengths.ndim == 0:
                lengths = lengths.reshape(1)
            if lengths.dtype.kind not in "iu":
                raise TypeError(f"lengths must be an integer array, got dtype {lengths.dtype}")
            if lengths.shape != (B,):
                raise ValueError(f"lengths has shape {_shape(lengths.shape)}, expected ({B},)")
            bad = (lengths < 1) | (lengths > T)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"lengths[{i}] = {int(lengths[i])} is out of range: each length must be in 1..{T}")
            lengths = np.ascontiguousarray(lengths, dtype=np.int64)

        masks = []
        if self.training and self.dropout > 0 and self.num_layers > 1:
            keep = 1.0 / (1.0 - self.dropout)
            for _ in range(self.num_layers - 1):
                m = (self._rng.random((T, B, self._directions * self._out_size)) >= self.dropout) * keep
                masks.append(np.ascontiguousarray(m.transpose(1, 0, 2) if batch_first else m, dtype=self.dtype))

        out, h_n, c_n, cache = _core.forward(
            self._spec, self._flat, x, batch_first, h0, c0, lengths, masks, self.training
        )
        self._cache = (cache, unbatched, out.shape) if self.training else None
        if unbatched:
            out, h_n = out[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return out, h_n, c_n

    def _run_backward(self, grad_out: Any, grad_h_n: Any, grad_c_n: Any) -> tuple:
        if self._cache is None:
            raise RuntimeError(
                "backward() needs a forward in training mode first (call m.train() before the forward); "
                "each forward supports one backward"
            )
        cache, unbatched, out_shape = self._cache
        batch = None if unbatched else out_shape[0 if self.batch_first else 1]
        user_out_shape = (out_shape[0], out_shape[2]) if unbatched else out_shape
        if grad_out is not None:
            grad_out = _as_real_array("grad_out", grad_out)
            if grad_out.shape != user_out_shape:
                raise ValueError(
                    f"grad_out has shape {_shape(grad_out.shape)}, expected {_shape(user_out_shape)} (the shape of out)"
                )
            if unbatched:
                grad_out = grad_out[:, None, :]
            grad_out = np.ascontiguousarray(grad_out, dtype=self.dtype)
        gh = self._as_state("grad_h_n", grad_h_n, self._out_size, batch)
        gc = self._as_state("grad_c_n", grad_c_n, self.hidden_size, batch)
        grad_x, grad_h0, grad_c0 = _core.backward(self._spec, self._flat, self._grad, cache, grad_out, gh, gc)
        self._cache = None
        if unbatched:
            grad_x, grad_h0 = grad_x[:, 0], grad_h0[:, 0]
            grad_c0 = None if grad_c0 is None else grad_c0[:, 0]
        return grad_x, grad_h0, grad_c0

    # ---- repr -----------------------------------------------------------------------
    def _extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def __repr__(self) -> str:
        extra = self._extra_repr()
        if self.dtype != np.float32:
            extra += f", dtype={self.dtype.name}"
        return f"{type(self).__name__}({extra})"


class RNN(_RNNBase):
    """Elman RNN: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, act = tanh or relu.

    ``out, h_n = rnn(x, h0=None, lengths=None)``; ``grad_x, grad_h0 = rnn.backward(grad_out, grad_h_n=None)``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
        bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
        dtype: Any = np.float32, seed: Optional[int] = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, True, dtype, seed)

    def forward(self, x: Any, h0: Any = None, lengths: Any = None) -> tuple[np.ndarray, np.ndarray]:
        out, h_n, _ = self._run(x, h0, None, lengths)
        return out, h_n

    __call__ = forward

    def backward(self, grad_out: Any, grad_h_n: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of the input and of h0; parameter gradients accumulate into ``grads()``."""
        grad_x, grad_h0, _ = self._run_backward(grad_out, grad_h_n, None)
        return grad_x, grad_h0

    def _extra_repr(self) -> str:
        s = super()._extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class GRU(_RNNBase):
    """GRU, gates r, z, n as PyTorch; ``reset_after=False`` gives the textbook
    ``n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)`` form.

    ``out, h_n = gru(x, h0=None, lengths=None)``; ``grad_x, grad_h0 = gru.backward(grad_out, grad_h_n=None)``.
    """

    _mode = "GRU"

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
        reset_after: bool = True, dtype: Any = np.float32, seed: Optional[int] = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, reset_after, dtype, seed)

    forward = RNN.forward
    __call__ = RNN.forward
    backward = RNN.backward

    def _extra_repr(self) -> str:
        return super()._extra_repr() + ("" if self.reset_after else ", reset_after=False")


class LSTM(_RNNBase):
    """LSTM, gates i, f, g, o as PyTorch, with optional ``proj_size``.

    ``out, (h_n, c_n) = lstm(x, hx=None, lengths=None)`` with ``hx = (h0, c0)``;
    ``grad_x, (grad_h0, grad_c0) = lstm.backward(grad_out, grad_h_n=None)`` where
    ``grad_h_n`` is ``None``, ``dL/dh_n`` or ``(dL/dh_n, dL/dc_n)``.
    """

    _mode = "LSTM"

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
        dtype: Any = np.float32, seed: Optional[int] = None,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, True, dtype, seed)

    def forward(
        self, x: Any, hx: Any = None, lengths: Any = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError("hx must be a tuple (h0, c0) or None")
            h0, c0 = hx
        out, h_n, c_n = self._run(x, h0, c0, lengths)
        return out, (h_n, c_n)

    __call__ = forward

    def backward(
        self, grad_out: Any, grad_h_n: Any = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Gradients of the input and of (h0, c0); parameter gradients accumulate into ``grads()``."""
        grad_c_n = None
        if isinstance(grad_h_n, (tuple, list)):
            if len(grad_h_n) != 2:
                raise TypeError("grad_h_n must be None, an array, or a tuple (grad_h_n, grad_c_n)")
            grad_h_n, grad_c_n = grad_h_n
        grad_x, grad_h0, grad_c0 = self._run_backward(grad_out, grad_h_n, grad_c_n)
        return grad_x, (grad_h0, grad_c0)
