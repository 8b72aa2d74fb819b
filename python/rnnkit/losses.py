"""Losses with their gradients, computed in the C++ core (``cpp/include/rnnkit/losses.h``).

Each returns ``(loss, grad)``: the loss as a float (PyTorch's definitions,
reduction='mean') and dL/dpred with pred's shape and dtype.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from . import _core
from .module import as_lengths, as_real_array, check_bool, check_int, got, shape_str


# np.asarray(order="C") rather than np.ascontiguousarray, which makes a 0-d array 1-D
def _as_pred(name: str, value: Any) -> np.ndarray:
    pred = as_real_array(name, value)
    if pred.dtype not in (np.float32, np.float64):
        pred = pred.astype(np.float64)
    return np.asarray(pred, order="C")


def _as_target(value: Any, pred: np.ndarray) -> np.ndarray:
    target = as_real_array("target", value)
    if target.shape != pred.shape:
        raise ValueError(f"target has shape {shape_str(target.shape)}, expected {shape_str(pred.shape)} (the shape of pred)")
    return np.asarray(target, dtype=pred.dtype, order="C")


def mse(pred: Any, target: Any) -> tuple[float, np.ndarray]:
    """Mean squared error over every element."""
    pred = _as_pred("pred", pred)
    loss, grad = _core.mse_loss(pred, _as_target(target, pred))
    return float(loss), grad


def bce_with_logits(logits: Any, target: Any) -> tuple[float, np.ndarray]:
    """Binary cross-entropy on logits (numerically stable), targets in [0, 1]."""
    logits = _as_pred("logits", logits)
    loss, grad = _core.bce_with_logits_loss(logits, _as_target(target, logits))
    return float(loss), grad


def cross_entropy(
    logits: Any, target: Any, lengths: Any = None, ignore_index: int = -100, batch_first: bool = True
) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy of logits (B, C) against class ids (B,), or per step:
    logits (B, T, C) against (B, T) ((T, B, C) and (T, B) with batch_first=False).

    The mean runs over the positions that count: steps at or past a sequence's
    length and targets equal to ``ignore_index`` add nothing and get zero gradient.
    """
    ignore_index = check_int("ignore_index", ignore_index, -(2**63))
    batch_first = check_bool("batch_first", batch_first)
    logits = _as_pred("logits", logits)
    if logits.ndim not in (2, 3):
        raise ValueError(f"logits has shape {shape_str(logits.shape)}, expected (B, C) or per step (B, T, C)")
    target = np.asarray(target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"target must be an integer array of class ids, got dtype {target.dtype}")
    if target.shape != logits.shape[:-1]:
        raise ValueError(f"target has shape {shape_str(target.shape)}, expected {shape_str(logits.shape[:-1])}")
    valid = None
    if lengths is not None:
        if logits.ndim != 3:
            raise ValueError("lengths only apply to per-step logits (B, T, C)")
        B, T = logits.shape[:2] if batch_first else logits.shape[1::-1]
        lengths = as_lengths(lengths, B, T)
        steps = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
        valid = np.ascontiguousarray(steps if batch_first else steps.T, dtype=np.uint8).reshape(-1)
    loss, grad = _core.cross_entropy_loss(
        logits, np.ascontiguousarray(target, dtype=np.int64).reshape(-1), valid, int(ignore_index)
    )
    return float(loss), grad


_LOSSES: dict[str, Callable[..., tuple[float, np.ndarray]]] = {
    "mse": mse,
    "cross_entropy": cross_entropy,
    "bce_with_logits": bce_with_logits,
}


def get(name: str) -> Callable[..., tuple[float, np.ndarray]]:
    """A loss function by name: "mse", "cross_entropy" or "bce_with_logits"."""
    if not isinstance(name, str):
        raise TypeError(f"loss must be a name, one of {sorted(_LOSSES)}, got {got(name)}")
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; known losses: {sorted(_LOSSES)}")
    return _LOSSES[name]


def accuracy(logits: np.ndarray, target: np.ndarray, lengths: Optional[np.ndarray] = None,
             ignore_index: int = -100, batch_first: bool = True) -> tuple[int, int]:
    """(correct, counted) for classification, counting the positions cross_entropy counts."""
    target = np.asarray(target)
    counted = target != ignore_index
    if lengths is not None and logits.ndim == 3:
        T = logits.shape[1 if batch_first else 0]
        steps = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
        counted &= steps if batch_first else steps.T
    correct = (np.argmax(logits, axis=-1) == target) & counted
    return int(correct.sum()), int(counted.sum())
