"""Reduced-precision inference: ``q = rk.quantize(model, "int8")`` or ``rk.quantize(model, "bf16")``.

Like PyTorch's ``quantize_dynamic``: the weight matrices of every recurrent layer (``weight_ih``,
``weight_hh``, ``weight_hr``) and of every Linear layer are stored in the reduced type, and the
products with them run in it; activations, biases, peepholes, cell states and everything else
stay float32. The scheme (written once, in C++: ``cpp/include/rnnkit/quant.h``):

- int8: one scale per output row of each weight matrix, ``s = max|W[n, :]| / 127`` and
  ``q = round(W / s)`` in -127..127; each row of activations is quantized the same way as the
  product runs (one scale per row per step), the products are summed exactly in int32 and scaled
  back, ``y[n] = Σ q_a q_w · s_a s_w[n]``.
- bf16: weights and activations rounded to nearest even into bfloat16, products summed in
  float32.

``q`` is an eval-mode model that runs as the float one does (``q(x, lengths=...)``,
``q.predict``, ``q.stream``), saves and loads with ``rk.save`` / ``rk.load`` and runs in the C++
runtime; it cannot train (``q.train()`` raises). Its ``state_dict()`` holds the stored values:
int8 matrices as ``int8`` arrays with their row scales beside them (``"weight_ih_l0_scale"``,
float32), bfloat16 matrices as their ``uint16`` bit patterns; ``parameters()`` shows each
matrix's values as float32 (``q·s``, or the bfloat16 value).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from . import _core
from .module import Module, got

PRECISIONS = ("int8", "bf16")


def check_precision(precision: Any) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {got(precision)}")
    return precision


def quantize(model: Module, precision: str = "int8") -> Module:
    """A copy of ``model`` (a Sequential, a recurrent layer or a Linear layer, float32) whose weight
    matrices are stored, and multiplied, in ``precision`` ("int8" or "bf16"), in eval mode.
    ``model`` itself is not changed."""
    from . import io

    precision = check_precision(precision)
    if not isinstance(model, Module):
        raise TypeError(f"model must be an rnnkit Sequential or layer, got {got(model)}")
    if model.dtype != np.float32:
        raise ValueError(f"rk.quantize needs a float32 model, got {model.dtype.name}: reduced-precision "
                         "products run in float32")
    for layer in getattr(model, "layers", [model]):
        if layer.precision != "float32":
            raise ValueError(f"{layer!r} has {layer.precision} weights already: quantize the float32 model")
    arch = {"class": type(model).__name__, "config": model.get_config()}
    copy = io._build(arch)
    copy.load_state_dict(model.state_dict())
    layers = copy.layers if hasattr(copy, "layers") else [copy]
    for layer in layers:
        if layer._lowp_matrices():
            convert(layer, precision)
    return copy.eval()


def encode(precision: str, name: str, w: np.ndarray) -> dict[str, np.ndarray]:
    """Matrix ``w`` (float32) as stored: {name: int8 values, name + "_scale": row scales} or {name: bfloat16 bits}."""
    if precision == "int8":
        q, scale = _core.quantize_int8(np.ascontiguousarray(w, dtype=np.float32))
        return {name: q, name + "_scale": scale}
    return {name: _core.to_bf16(np.ascontiguousarray(w, dtype=np.float32))}


def decode(precision: str, name: str, stored: dict[str, np.ndarray]) -> np.ndarray:
    """The float32 values of matrix ``name`` as stored."""
    if precision == "int8":
        return stored[name].astype(np.float32) * stored[name + "_scale"][:, None]
    return _core.from_bf16(stored[name])


def pack(layer: Module, precision: str, stored: dict[str, np.ndarray]) -> Any:
    """The C++ packing of a layer's stored matrices (checks their dtypes and shapes)."""
    if hasattr(layer, "_spec"):
        return _core.LowpStack(layer._spec, precision, stored)
    return _core.LowpLinear(precision, stored["weight"], stored.get("weight_scale"))


def convert(layer: Module, precision: str) -> None:
    """Store ``layer``'s matrices in ``precision`` from their float values now."""
    stored: dict[str, np.ndarray] = {}
    for name, _ in layer._lowp_matrices():
        stored.update(encode(precision, name, layer._params[name]))
    install(layer, precision, stored, pack(layer, precision, stored))


def install(layer: Module, precision: str, stored: dict[str, np.ndarray], packed: Any) -> None:
    """Point ``layer`` at its stored matrices: their float values into its parameter views."""
    for name, _ in layer._lowp_matrices():
        layer._params[name][...] = decode(precision, name, stored)
    layer.precision, layer._lowp, layer._lowp_stored = precision, packed, stored
    layer.training = False


def stage_state_dict(layer: Module, state_dict: Any, strict: bool) -> Callable[[], None]:
    """Check a reduced-precision layer's state_dict (its stored matrices and its float parameters),
    and return what writes it: nothing is changed before everything is checked."""
    precision = layer.precision
    matrices = dict(layer._lowp_matrices())
    stored_names = set()
    for name in matrices:
        stored_names |= {name, name + "_scale"} if precision == "int8" else {name}
    floats = {k: v for k, v in state_dict.items() if k not in stored_names}
    for name in sorted(stored_names - set(state_dict)):
        raise ValueError(f"state_dict does not match {layer!r}: missing key '{name}'")
    stored = {}
    for name in sorted(stored_names):
        value = np.asarray(state_dict[name])
        want = np.float32 if name.endswith("_scale") and name[:-6] in matrices else (
            np.int8 if precision == "int8" else np.uint16)
        if value.dtype != want:
            raise ValueError(f"state_dict key '{name}' has dtype {value.dtype}, expected {np.dtype(want).name}")
        stored[name] = np.ascontiguousarray(value)
    packed = pack(layer, precision, stored)
    # the float parameters: the matrices' views take their decoded values
    decoded = {name: decode(precision, name, stored) for name in matrices}
    commit_floats = layer._stage_float_state_dict({**floats, **decoded}, strict)

    def commit() -> None:
        commit_floats()
        install(layer, precision, stored, packed)

    return commit
