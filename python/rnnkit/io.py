"""Model files: ``rk.save(model, path)`` and ``rk.load(path)``.

A model file is a safetensors file (the ``safetensors`` package, extra
``[io]``): the tensors are the model's ``state_dict()`` (PyTorch's names, e.g.
``"1.weight_ih_l0"``), and the header's ``__metadata__`` holds

    format          "rnnkit"
    format_version  "1"
    architecture    JSON: {"class": "Sequential", "config": {"layers": [{"class": "LSTM", "config": {...}}, ...]}}
                    or a single layer {"class": "GRU", "config": {...}}; each config is the layer's
                    constructor arguments (dtype as "float32"/"float64"), read against the
                    C++ core's table of layers and options (rnnkit.architecture) by both loaders
    sha256          hex digest of every tensor's bytes, in sorted name order, so that a
                    corrupted file is detected rather than loaded

The C++ runtime reads the same file. Writes go to a temporary file in the same
folder that is then renamed over the target, so a crash never leaves a
half-written model file (and, where Linux's O_TMPFILE is available, no
temporary either).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import architecture
from .layers import GRU, LSTM, RNN
from .module import Module
from .nn import Dropout, Embedding, LastStep, Linear, MeanPool
from .sequential import Sequential

FORMAT = "rnnkit"
FORMAT_VERSION = "1"
_LAYERS: dict[str, type] = {
    cls.__name__: cls for cls in (RNN, LSTM, GRU, Embedding, Linear, LastStep, MeanPool, Dropout)
}


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("rk.save and rk.load need the safetensors package: pip install 'rnnkit[io]'") from None
    return safetensors


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    return h.hexdigest()


def save(model: Module, path: Union[str, os.PathLike]) -> None:
    """Write ``model`` (a Sequential or a single layer) to ``path`` as safetensors, atomically."""
    if not isinstance(model, Module) or (type(model).__name__ not in _LAYERS and not isinstance(model, Sequential)):
        raise TypeError(f"model must be an rnnkit Sequential or layer, got {type(model).__name__}")
    st = _safetensors()
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder")
    arch = {"class": type(model).__name__, "config": model.get_config()}
    try:  # refuse here what rk.load and the C++ runtime would refuse
        architecture.read(arch)
    except ValueError as e:
        raise ValueError(f"cannot save this model: rk.load could not read it back: {e}") from None
    tensors = model.state_dict()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": json.dumps(arch),
        "sha256": _digest(tensors),
    }
    data = st.numpy.save(tensors, metadata=metadata)
    _write_atomically(path, data)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary in ``path``'s folder, then rename it over ``path``.

    Where Linux's O_TMPFILE works the temporary has no name until it is complete, so a
    process killed mid-write leaves nothing behind; the name it then gets, and the one used
    elsewhere, is unique to this call, as several threads may save to one path at once. Its
    mode is 0o666 less the umask, as open() gives (and np.save, torch.save), not mkstemp's 0o600.
    """
    unique = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}")
    try:
        if not _write_unnamed_then_link(data, unique):
            with open(unique, "xb") as f:  # "x": O_EXCL, never another call's file
                f.write(data)
        os.replace(unique, path)
    except BaseException:
        if os.path.lexists(unique):
            os.unlink(unique)
        raise


def _write_unnamed_then_link(data: bytes, name: Path) -> bool:
    """Write ``data`` to an O_TMPFILE file in ``name``'s folder and link it as ``name``;
    False (nothing done) where there is no O_TMPFILE."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = os.open(name.parent, flag | os.O_WRONLY, 0o666)
    except OSError:  # a filesystem without it (EOPNOTSUPP), or an old kernel (EISDIR, EINVAL)
        return False
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        folder = os.open(name.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            # with a dir_fd, CPython calls linkat(AT_SYMLINK_FOLLOW), which names the open file
            # (plain link() on /proc/self/fd/N fails with EXDEV)
            os.link(f"/proc/self/fd/{fd}", name.name, dst_dir_fd=folder, follow_symlinks=True)
        finally:
            os.close(folder)
    finally:
        os.close(fd)
    return True


def _build(arch: Any) -> Module:
    """The model an architecture describes, after the checks the C++ loader makes (architecture.read)."""
    layers, sequential = architecture.read(arch)
    modules = [_LAYERS[name](**config) for name, config in layers]
    return Sequential(*modules) if sequential else modules[0]


def _parse(text: str) -> Any:
    """The architecture's JSON, read as the C++ reader reads it: strict JSON (no NaN or
    Infinity), and an object's first value where a key repeats (the reader then refuses it)."""

    def refuse(name: str) -> None:
        raise ValueError(f"the architecture is not valid JSON ({name} is not a JSON value)")

    return json.loads(text, object_pairs_hook=architecture.object_pairs, parse_constant=refuse)


def load(path: Union[str, os.PathLike]) -> Module:
    """Rebuild the model saved at ``path``, with its weights, in eval mode."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with st.safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # safetensors' own error types vary between versions
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from None
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not an rnnkit model (no format=rnnkit in its metadata)")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has rnnkit format version {version!r}; this rnnkit reads version {FORMAT_VERSION}")
    if metadata.get("sha256") != _digest(tensors):
        raise ValueError(f"{path} is corrupt: its tensors do not match the checksum in its metadata")
    try:
        model = _build(_parse(metadata["architecture"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} has an invalid architecture: {e}") from None
    model.load_state_dict(tensors)
    return model.eval()
