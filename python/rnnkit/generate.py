"""Sampling from a character (or token) model, one token at a time.

The prompt runs through the model once; then each sampled token is fed back
in with the recurrent state carried, one C++ call per layer per new token.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .layers import _RNNBase
from .module import check_int
from .nn import Embedding
from .sequential import Sequential


def _sample(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def generate(model: Sequential, prompt: Any, length: int, temperature: float = 1.0,
             seed: Optional[int] = None) -> np.ndarray:
    """Sample ``length`` new token ids after ``prompt`` (1-D ids) from softmax(logits / temperature).

    ``model`` is a Sequential that starts with an Embedding, has recurrent layers
    and ends with a per-step head giving logits (B, T, V). Returns int64 ids (length,).
    """
    if not isinstance(model, Sequential) or not isinstance(model.layers[0], Embedding) \
            or not any(isinstance(layer, _RNNBase) for layer in model.layers):
        raise TypeError("model must be a Sequential starting with an Embedding and holding recurrent layers")
    length = check_int("length", length, 0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    prompt = np.asarray(prompt)
    if prompt.ndim != 1 or prompt.size == 0 or prompt.dtype.kind not in "iu":
        raise ValueError(f"prompt must be a non-empty 1-D array of token ids, got shape {prompt.shape}, dtype {prompt.dtype}")
    axis, _ = model._batch_axes()

    def run(ids: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        x = ids[None, :] if axis == 0 else ids[:, None]
        logits, state = model(x, state=state, return_state=True)
        if logits.ndim != 3:
            raise ValueError("generate needs per-step logits (B, T, V): end the model with a per-step Linear")
        return (logits[0, -1] if axis == 0 else logits[-1, 0]), state

    rng = np.random.default_rng(seed)
    out = np.empty(length, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        last, state = run(prompt.astype(np.int64), None)
        for i in range(length):
            out[i] = _sample(last, float(temperature), rng)
            last, state = run(out[i : i + 1], state)
    finally:
        model.train(was_training)
    return out
