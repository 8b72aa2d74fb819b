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
from typing import Any, Optional

import numpy as np

from . import _core
from .module import (
    Module, as_lengths, as_real_array, check_allocatable, check_bool, check_dtype, check_int, check_probability, gib,
    got, shape_str,
)

class _RNNBase(Module):
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
        peepholes: bool = False,
    ) -> None:
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.proj_size = check_int("proj_size", proj_size, 0)
        self.reset_after = check_bool("reset_after", reset_after)
        self.peepholes = check_bool("peepholes", peepholes)
        self.dropout = check_probability("dropout", dropout)
        if self.proj_size and self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size must be smaller than hidden_size ({self.hidden_size}), got {self.proj_size}")
        dt = check_dtype(dtype)
        # The count in closed form, in Python ints, before the C++ spec (whose Index arithmetic
        # would wrap around for absurd sizes) and before the layout (a list entry per tensor).
        elements, tensors = self._count_params()
        check_allocatable(self._describe(), elements, tensors, dt)
        self._spec = _core.StackSpec(
            self._mode, self.input_size, self.hidden_size, self.num_layers, self.bias,
            self.bidirectional, self.proj_size, self.reset_after, self.peepholes,
        )
        self._setup(dtype, seed)
        self._cache: Any = None  # what the last training forward kept for backward
        # The last cache whose backward is done: the next training forward refills its buffers
        # (tens of MB for a large layer) instead of allocating and faulting in fresh pages.
        self._spare_cache: Any = None

    def _describe(self) -> str:
        sizes = f"input_size={self.input_size}, hidden_size={self.hidden_size}, num_layers={self.num_layers}"
        sizes += ", bidirectional=True" if self.bidirectional else ""
        sizes += f", proj_size={self.proj_size}" if self.proj_size else ""
        return f"{type(self).__name__}({sizes})"

    def _count_params(self) -> tuple[int, int]:
        """(elements, tensors) of the parameters, as laid out in cpp/include/rnnkit/spec.h, in Python ints.
        The cell's gate blocks and per-unit weight rows come from its declaration, read off a spec of size 1."""
        unit = _core.StackSpec(self._mode, 1, 1, peepholes=self.peepholes)
        GH, H, P, D = unit.gates * self.hidden_size, self.hidden_size, self._out_size, self._directions
        rows = unit.unit_weight_rows
        extra = (2 * GH if self.bias else 0) + (P * H if self.proj_size else 0) + rows * H

        def per_direction(inputs: int) -> int:
            return GH * (inputs + P) + extra

        elements = D * (per_direction(self.input_size) + (self.num_layers - 1) * per_direction(D * P))
        tensors = D * self.num_layers * (2 + 2 * self.bias + bool(self.proj_size) + bool(rows))
        return elements, tensors

    def _param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(name, tuple(shape)) for name, _, shape in self._spec.param_layout()]

    def _lowp_matrices(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(name, (rows, cols)) for name, rows, cols in _core.lowp_matrices(self._spec)]

    def _init_params(self, rng: np.random.Generator) -> None:
        # PyTorch's initialisation: every weight and bias U(-1/sqrt(H), 1/sqrt(H)) (peephole weights too).
        k = 1.0 / math.sqrt(self.hidden_size)
        for name, shape in self._param_shapes():
            self._params[name][...] = rng.uniform(-k, k, size=shape)

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = dict(
            input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers, bias=self.bias,
            batch_first=self.batch_first, dropout=self.dropout, bidirectional=self.bidirectional,
            dtype=self.dtype.name,
        )
        if self.precision != "float32":
            cfg["precision"] = self.precision
        return cfg

    def stream(self, batch: int = 1) -> Any:
        """A streaming runner in the C++ runtime: ``y_t = s.step(x_t)`` per step, x_t (batch, input_size)."""
        from . import runtime

        return runtime.stream(self, batch)

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _out_size(self) -> int:
        return self.proj_size or self.hidden_size

    def _out_shape(self, shape: tuple) -> tuple:
        """The output shape for an input shape (for Sequential.summary)."""
        return (*shape[:-1], self._directions * self._out_size)

    # ---- forward / backward ---------------------------------------------------------
    def _state_shape(self, size: int, batch: Optional[int]) -> tuple[int, ...]:
        rows = self._directions * self.num_layers
        return (rows, size) if batch is None else (rows, batch, size)

    def _as_state(self, name: str, value: Any, size: int, batch: Optional[int]) -> Optional[np.ndarray]:
        if value is None:
            return None
        arr = as_real_array(name, value)
        expected = self._state_shape(size, batch)
        if arr.shape != expected:
            raise ValueError(f"{name} has shape {shape_str(arr.shape)}, expected {shape_str(expected)}")
        if batch is None:
            arr = arr[:, None, :]
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _run(self, x: Any, h0: Any, c0: Any, lengths: Any, infer: bool = False) -> tuple:
        """The forward; ``infer``: in eval mode whatever ``self.training``, keeping and changing nothing
        (Sequential.predict, which may run while another thread trains this module)."""
        x = as_real_array("x", x)
        shape = x.shape  # the caller's, for messages
        if x.ndim not in (2, 3):
            raise ValueError(
                f"x has shape {shape_str(x.shape)}, expected (T, B, {self.input_size})"
                + (" with batch_first=True: (B, T, I)" if self.batch_first else "")
                + f" or unbatched (T, {self.input_size})"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {shape_str(x.shape)}: its last axis must be input_size={self.input_size}")
        unbatched = x.ndim == 2
        batch_first = self.batch_first and not unbatched
        if unbatched:
            x = x[:, None, :]
        T, B = (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])
        if T == 0 or B == 0:
            raise ValueError(f"x has shape {shape_str(shape)}: sequence length and batch must be >= 1")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        batch = None if unbatched else B
        h0 = self._as_state("h0", h0, self._out_size, batch)
        c0 = self._as_state("c0", c0, self.hidden_size, batch)
        if unbatched and lengths is not None and np.ndim(lengths) == 0:
            lengths = np.reshape(lengths, 1)
        lengths = as_lengths(lengths, B, T)

        training = self.training and not infer
        if training and self._lowp is not None:
            raise RuntimeError(f"{self!r} has {self.precision} weights: it runs inference only")
        masks = []
        if training and self.dropout > 0 and self.num_layers > 1:
            keep = 1.0 / (1.0 - self.dropout)
            for _ in range(self.num_layers - 1):
                m = (self._rng.random((T, B, self._directions * self._out_size)) >= self.dropout) * keep
                masks.append(np.ascontiguousarray(m.transpose(1, 0, 2) if batch_first else m, dtype=self.dtype))

        reuse = None
        if not infer:
            reuse, self._spare_cache = (self._spare_cache if training else None), None
        try:
            out, h_n, c_n, cache = _core.forward(
                self._spec, self._flat, x, batch_first, h0, c0, lengths, masks, training, reuse, self._lowp
            )
        except MemoryError as e:
            raise self._out_of_memory(shape, T, B, training) from e
        if not infer:
            self._cache = (cache, unbatched, out.shape) if training else None
        if unbatched:
            out, h_n = out[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        return out, h_n, c_n

    def _out_of_memory(self, shape: tuple, T: int, B: int, training: bool) -> MemoryError:
        out_bytes = T * B * self._directions * self._out_size * self.dtype.itemsize
        kept = "; a training forward also keeps every layer's activations for backward" if training else ""
        return MemoryError(
            f"{self!r} ran out of memory on x of shape {shape_str(shape)} ({self.dtype.name}): its output alone, "
            f"{T} steps x {B} sequences x {self._directions * self._out_size} features, needs {gib(out_bytes)}"
            f"{kept}. Pass fewer sequences at a time (e.g. Sequential.predict's batch_size)"
        )

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
            grad_out = as_real_array("grad_out", grad_out)
            if grad_out.shape != user_out_shape:
                raise ValueError(
                    f"grad_out has shape {shape_str(grad_out.shape)}, expected {shape_str(user_out_shape)} (the shape of out)"
                )
            if unbatched:
                grad_out = grad_out[:, None, :]
            grad_out = np.ascontiguousarray(grad_out, dtype=self.dtype)
        gh = self._as_state("grad_h_n", grad_h_n, self._out_size, batch)
        gc = self._as_state("grad_c_n", grad_c_n, self.hidden_size, batch)
        grad_x, grad_h0, grad_c0 = _core.backward(self._spec, self._flat, self._grad, cache, grad_out, gh, gc)
        self._cache, self._spare_cache = None, cache
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
        if self.precision != "float32":
            extra += f", precision='{self.precision}'"
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
        if not isinstance(nonlinearity, str):
            raise TypeError(f"nonlinearity must be 'tanh' or 'relu', got {got(nonlinearity)}")
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

    def _infer(self, x: Any, h0: Any = None, lengths: Any = None) -> tuple[np.ndarray, np.ndarray]:
        out, h_n, _ = self._run(x, h0, None, lengths, infer=True)
        return out, h_n

    def backward(self, grad_out: Any, grad_h_n: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of the input and of h0; parameter gradients accumulate into ``grads()``."""
        grad_x, grad_h0, _ = self._run_backward(grad_out, grad_h_n, None)
        return grad_x, grad_h0

    def _extra_repr(self) -> str:
        s = super()._extra_repr()
        return s + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "nonlinearity": self.nonlinearity}


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
    _infer = RNN._infer
    backward = RNN.backward

    def _extra_repr(self) -> str:
        return super()._extra_repr() + ("" if self.reset_after else ", reset_after=False")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reset_after": self.reset_after}


class LSTM(_RNNBase):
    """LSTM, gates i, f, g, o as PyTorch, with optional ``proj_size`` and ``peepholes``.

    ``peepholes=True`` adds ONNX's peephole connections: ``p_i * c_{t-1}`` in the input gate,
    ``p_f * c_{t-1}`` in the forget gate and ``p_o * c_t`` in the output gate, with one parameter
    per layer and direction, ``weight_peephole_l{k}`` (and ``..._reverse``), shape (3, hidden_size),
    rows p_i, p_f, p_o.

    ``out, (h_n, c_n) = lstm(x, hx=None, lengths=None)`` with ``hx = (h0, c0)``;
    ``grad_x, (grad_h0, grad_c0) = lstm.backward(grad_out, grad_h_n=None)`` where
    ``grad_h_n`` is ``None``, ``dL/dh_n`` or ``(dL/dh_n, dL/dc_n)``.
    """

    _mode = "LSTM"

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
        batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
        dtype: Any = np.float32, seed: Optional[int] = None, peepholes: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, True, dtype, seed, peepholes)

    def forward(
        self, x: Any, hx: Any = None, lengths: Any = None
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        return self._lstm(x, hx, lengths, False)

    __call__ = forward

    def _infer(self, x: Any, hx: Any = None, lengths: Any = None) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        return self._lstm(x, hx, lengths, True)

    def _lstm(self, x: Any, hx: Any, lengths: Any, infer: bool) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        h0 = c0 = None
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx must be a tuple (h0, c0) or None, got {got(hx)}")
            h0, c0 = hx
        out, h_n, c_n = self._run(x, h0, c0, lengths, infer)
        return out, (h_n, c_n)

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

    def _extra_repr(self) -> str:
        return super()._extra_repr() + (", peepholes=True" if self.peepholes else "")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "proj_size": self.proj_size, "peepholes": self.peepholes}
