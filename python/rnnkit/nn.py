"""The non-recurrent layers: Embedding, Linear, LastStep, MeanPool, Dropout.

Each has forward and backward; the maths of Embedding, Linear, LastStep and
MeanPool is in the C++ core (``cpp/include/rnnkit/layers.h``). In training
mode a layer keeps what its backward needs; in eval mode it keeps nothing.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from . import _core
from .module import Module, as_lengths, as_real_array, check_bool, check_int, check_probability, shape_str

Shape = tuple[Optional[int], ...]


def _consumed(cache: Any, name: str) -> Any:
    if cache is None:
        raise RuntimeError(
            f"{name}.backward() needs a forward in training mode first (call .train() before the forward); "
            "each forward supports one backward"
        )
    return cache


class Embedding(Module):
    """A lookup table: token ids (any shape) -> vectors (ids.shape + (embedding_dim,)).

    ``weight`` is (num_embeddings, embedding_dim), initialised N(0, 1) as PyTorch;
    the ``padding_idx`` row starts at zero and never receives a gradient.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: Optional[int] = None,
        dtype: Any = np.float32, seed: Optional[int] = None,
    ) -> None:
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx, -self.num_embeddings)
            if padding_idx >= self.num_embeddings:
                raise ValueError(f"padding_idx must be < num_embeddings ({self.num_embeddings}), got {padding_idx}")
            padding_idx %= self.num_embeddings  # PyTorch: negative counts from the end
        self.padding_idx = padding_idx
        self._setup(dtype, seed)
        self._cache: Any = None

    def _param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return [("weight", (self.num_embeddings, self.embedding_dim))]

    def _init_params(self, rng: np.random.Generator) -> None:
        w = self._params["weight"]
        w[...] = rng.standard_normal(w.shape)
        if self.padding_idx is not None:
            w[self.padding_idx] = 0

    def get_config(self) -> dict[str, Any]:
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    padding_idx=self.padding_idx, dtype=self.dtype.name)

    def _out_shape(self, shape: Shape) -> Shape:
        return (*shape, self.embedding_dim)

    def forward(self, ids: Any) -> np.ndarray:
        return self._lookup(ids, False)

    __call__ = forward

    def _infer(self, ids: Any) -> np.ndarray:
        return self._lookup(ids, True)

    def _lookup(self, ids: Any, infer: bool) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be an integer array of token ids, got dtype {ids.dtype}")
        ids = np.asarray(ids, dtype=np.int64, order="C")  # not ascontiguousarray: it makes a scalar id 1-D
        y = _core.embedding_forward(ids.reshape(-1), self._params["weight"])
        if not infer:
            self._cache = ids if self.training else None
        return y.reshape(*ids.shape, self.embedding_dim)

    def backward(self, grad: Any) -> None:
        """Accumulate dL/dweight (scatter-add by id); ids have no gradient, so this returns None."""
        ids = _consumed(self._cache, "Embedding")
        grad = as_real_array("grad", grad)
        if grad.shape != (*ids.shape, self.embedding_dim):
            raise ValueError(f"grad has shape {shape_str(grad.shape)}, expected {shape_str((*ids.shape, self.embedding_dim))}")
        grad = np.ascontiguousarray(grad, dtype=self.dtype)
        pad = -1 if self.padding_idx is None else self.padding_idx
        _core.embedding_backward(grad.reshape(-1, self.embedding_dim), ids.reshape(-1), self._grads["weight"], pad)
        self._cache = None
        return None

    def _describe(self) -> str:
        return f"Embedding(num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim})"

    def _extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class Linear(Module):
    """``y = x W^T + b`` on the last axis: (..., in_features) -> (..., out_features).

    Initialised U(-1/sqrt(in), 1/sqrt(in)) as PyTorch.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True,
        dtype: Any = np.float32, seed: Optional[int] = None,
    ) -> None:
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)
        self.bias = check_bool("bias", bias)
        self._setup(dtype, seed)
        self._cache: Any = None

    def _param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        shapes: list[tuple[str, tuple[int, ...]]] = [("weight", (self.out_features, self.in_features))]
        return shapes + [("bias", (self.out_features,))] if self.bias else shapes

    def _lowp_matrices(self) -> list[tuple[str, tuple[int, ...]]]:
        return [("weight", (self.out_features, self.in_features))]

    def _init_params(self, rng: np.random.Generator) -> None:
        k = 1.0 / math.sqrt(self.in_features)
        for name, shape in self._param_shapes():
            self._params[name][...] = rng.uniform(-k, k, size=shape)

    def get_config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = dict(in_features=self.in_features, out_features=self.out_features, bias=self.bias,
                                   dtype=self.dtype.name)
        if self.precision != "float32":
            cfg["precision"] = self.precision
        return cfg

    def _out_shape(self, shape: Shape) -> Shape:
        return (*shape[:-1], self.out_features)

    def forward(self, x: Any) -> np.ndarray:
        return self._apply(x, False)

    __call__ = forward

    def _infer(self, x: Any) -> np.ndarray:
        return self._apply(x, True)

    def _apply(self, x: Any, infer: bool) -> np.ndarray:
        x = as_real_array("x", x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x has shape {shape_str(x.shape)}, expected (..., {self.in_features})")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if self._lowp is not None:
            if self.training and not infer:
                raise RuntimeError(f"{self!r} has {self.precision} weights: it runs inference only")
            y = self._lowp.forward(x.reshape(-1, self.in_features), self._params.get("bias"))
            return y.reshape(*x.shape[:-1], self.out_features)
        y = _core.linear_forward(x.reshape(-1, self.in_features), self._params["weight"], self._params.get("bias"))
        if not infer:
            self._cache = x if self.training else None
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, grad: Any) -> np.ndarray:
        """dL/dx; accumulates dL/dweight and dL/dbias."""
        x = _consumed(self._cache, "Linear")
        grad = as_real_array("grad", grad)
        expected = (*x.shape[:-1], self.out_features)
        if grad.shape != expected:
            raise ValueError(f"grad has shape {shape_str(grad.shape)}, expected {shape_str(expected)}")
        grad = np.ascontiguousarray(grad, dtype=self.dtype)
        dx = _core.linear_backward(grad.reshape(-1, self.out_features), x.reshape(-1, self.in_features),
                                   self._params["weight"], self._grads["weight"], self._grads.get("bias"), True)
        assert dx is not None  # need_dx=True
        self._cache = None
        return dx.reshape(x.shape)

    def _extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias}"


class _Pool(Module):
    """Shared by LastStep and MeanPool: a (B, T, F) or (T, B, F) sequence -> (B, F)."""

    def __init__(self, batch_first: bool = True, bidirectional: bool = False) -> None:
        self.batch_first = check_bool("batch_first", batch_first)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self._setup(np.float32, None)
        self._cache: Any = None

    def get_config(self) -> dict[str, Any]:
        return dict(batch_first=self.batch_first, bidirectional=self.bidirectional)

    def _out_shape(self, shape: Shape) -> Shape:
        return (shape[0 if self.batch_first else 1], shape[-1])

    def _prepare(self, seq: Any, lengths: Any) -> tuple[np.ndarray, Optional[np.ndarray]]:
        seq = as_real_array("seq", seq)
        if seq.ndim != 3:
            layout = "(B, T, F)" if self.batch_first else "(T, B, F)"
            raise ValueError(f"seq has shape {shape_str(seq.shape)}, expected {layout}")
        B, T = (seq.shape[0], seq.shape[1]) if self.batch_first else (seq.shape[1], seq.shape[0])
        if seq.dtype not in (np.float32, np.float64):
            seq = seq.astype(np.float64)
        return np.ascontiguousarray(seq), as_lengths(lengths, B, T)

    def _pool(self, seq: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def forward(self, seq: Any, lengths: Any = None) -> np.ndarray:
        return self._run(seq, lengths, False)

    __call__ = forward

    def _infer(self, seq: Any, lengths: Any = None) -> np.ndarray:
        return self._run(seq, lengths, True)

    def _run(self, seq: Any, lengths: Any, infer: bool) -> np.ndarray:
        seq, lengths = self._prepare(seq, lengths)
        y = self._pool(seq, lengths)
        if not infer:
            T = seq.shape[1 if self.batch_first else 0]
            self._cache = (lengths, T, seq.shape, seq.dtype) if self.training else None
        return y

    def _check_grad(self, grad: Any, cache: tuple) -> np.ndarray:
        lengths, T, shape, dtype = cache
        grad = as_real_array("grad", grad)
        expected = (shape[0 if self.batch_first else 1], shape[2])
        if grad.shape != expected:
            raise ValueError(f"grad has shape {shape_str(grad.shape)}, expected {shape_str(expected)}")
        return np.ascontiguousarray(grad, dtype=dtype)


class LastStep(_Pool):
    """Each sequence's state at its last valid step: (B, F).

    For a bidirectional layer's output, the forward half is taken at step
    len-1 and the reverse half at step 0, where the reverse direction ends, so
    the result equals PyTorch's ``h_n`` of the last layer, [forward, reverse].
    Inside a Sequential, ``batch_first`` and ``bidirectional`` come from the
    recurrent layer before it.
    """

    def _pool(self, seq: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
        return _core.last_step_forward(seq, lengths, self.batch_first, 2 if self.bidirectional else 1)

    def backward(self, grad: Any) -> np.ndarray:
        cache = _consumed(self._cache, "LastStep")
        lengths, T = cache[0], cache[1]
        dseq = _core.last_step_backward(self._check_grad(grad, cache), lengths, self.batch_first,
                                        2 if self.bidirectional else 1, T)
        self._cache = None
        return dseq


class MeanPool(_Pool):
    """The mean over each sequence's valid steps: (B, F)."""

    def _pool(self, seq: np.ndarray, lengths: Optional[np.ndarray]) -> np.ndarray:
        return _core.mean_pool_forward(seq, lengths, self.batch_first)

    def backward(self, grad: Any) -> np.ndarray:
        cache = _consumed(self._cache, "MeanPool")
        lengths, T = cache[0], cache[1]
        dseq = _core.mean_pool_backward(self._check_grad(grad, cache), lengths, self.batch_first, T)
        self._cache = None
        return dseq


class Dropout(Module):
    """Inverted dropout: in training mode each element is zeroed with probability p
    and the rest scaled by 1/(1-p); in eval mode the identity."""

    def __init__(self, p: float = 0.5, seed: Optional[int] = None) -> None:
        self.p = check_probability("p", p)
        self._setup(np.float32, seed)
        self._cache: Any = None

    def get_config(self) -> dict[str, Any]:
        return dict(p=self.p)

    def _out_shape(self, shape: Shape) -> Shape:
        return shape

    def _infer(self, x: Any) -> np.ndarray:
        return as_real_array("x", x)

    def forward(self, x: Any) -> np.ndarray:
        x = as_real_array("x", x)
        if not self.training:
            self._cache = None
            return x
        if self.p == 0:
            self._cache = 1.0
            return x
        mask = ((self._rng.random(x.shape) >= self.p) * (1.0 / (1.0 - self.p))).astype(x.dtype)
        self._cache = mask
        return x * mask

    __call__ = forward

    def backward(self, grad: Any) -> np.ndarray:
        mask = _consumed(self._cache, "Dropout")
        grad = as_real_array("grad", grad)
        if not np.isscalar(mask) and grad.shape != mask.shape:
            raise ValueError(f"grad has shape {shape_str(grad.shape)}, expected {shape_str(mask.shape)}")
        self._cache = None
        return grad * mask

    def _extra_repr(self) -> str:
        return f"p={self.p}"
