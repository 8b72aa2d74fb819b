"""Model files: ``rk.save(model, path)`` and ``rk.load(path)``.

A model file is a safetensors file (the ``safetensors`` package, extra
``[io]``): the tensors are the model's ``state_dict()`` (PyTorch's names, e.g.
``"1.weight_ih_l0"``), and the header's ``__metadata__`` holds

    format          "rnnkit"
    format_version  "3" (rk.load reads "1" and "2" too; 3 added the reduced-precision dtypes)
    architecture    JSON: {"class": "Sequential", "config": {"layers": [{"class": "LSTM", "config": {...}}, ...]}}
                    or a single layer {"class": "GRU", "config": {...}}; each config is the layer's
                    constructor arguments (dtype as "float32"/"float64"), read against the
                    C++ core's table of layers and options (rnnkit.architecture) by both loaders
    sha256          hex SHA-256 of everything that decides what the model computes: each
                    tensor's name, dtype, shape and bytes, and the architecture (_digest), so
                    that a corrupted or hand-edited file is refused rather than loaded. It is
                    no signature: whoever edits a file can recompute it.

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
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _json, architecture
from .layers import GRU, LSTM, RNN
from .module import Module
from .nn import Dropout, Embedding, LastStep, Linear, MeanPool
from .sequential import Sequential

FORMAT = "rnnkit"
FORMAT_VERSION = "3"  # what rk.save writes
_READS = ("1", "2", "3")  # what rk.load reads
_LAYERS: dict[str, type] = {
    cls.__name__: cls for cls in (RNN, LSTM, GRU, Embedding, Linear, LastStep, MeanPool, Dropout)
}


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("rk.save and rk.load need the safetensors package: pip install 'rnnkit[io]'") from None
    return safetensors


# A tensor as the checksum sees it: name, safetensors dtype ("F32"), shape, its bytes as stored.
_Entry = tuple[str, str, tuple[int, ...], Union[bytes, memoryview]]
# int8 and uint16 arrays are a quantized layer's matrices (rk.quantize): int8 values, bfloat16 bits
_CODES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int8): "I8",
          np.dtype(np.uint16): "BF16"}


def _retag(data: bytes, old: str, new: str) -> bytes:
    """A safetensors file's bytes with every tensor of dtype ``old`` said to be ``new`` (the same size):
    safetensors' NumPy API has no bfloat16, so BF16 tensors are written and read as U16 and retagged."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    if not any(isinstance(e, dict) and e.get("dtype") == old for e in header.values()):
        return data
    for e in header.values():
        if isinstance(e, dict) and e.get("dtype") == old:
            e["dtype"] = new
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start on an 8-byte boundary, as safetensors writes them
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


def _u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def _digest(entries: Sequence[_Entry], architecture_json: str, version: str = FORMAT_VERSION) -> str:
    """The file's sha256 (C++: model.cpp's digest). Version 2, in this order, every integer u64
    little-endian and every string UTF-8 after its length in bytes: the number of tensors; for each
    tensor in name order (bytewise, which is code point order), its name, dtype, rank then each
    dimension, and its byte length then bytes; then the architecture. Version 1 (read only):
    each tensor's name then bytes, in name order."""
    h = hashlib.sha256()
    entries = sorted(entries, key=lambda e: e[0])
    if version == "1":
        for name, _, _, data in entries:
            h.update(name.encode())
            h.update(data)
        return h.hexdigest()
    h.update(_u64(len(entries)))
    for name, dtype, shape, data in entries:
        for text in (name, dtype):
            h.update(_u64(len(text.encode())) + text.encode())
        h.update(_u64(len(shape)) + b"".join(_u64(d) for d in shape))
        h.update(_u64(len(data)) + data)
    arch = architecture_json.encode()
    h.update(_u64(len(arch)) + arch)
    return h.hexdigest()


def _entries(tensors: dict[str, np.ndarray]) -> list[_Entry]:
    """A state_dict's tensors as rk.save writes them (little-endian, C order)."""
    out: list[_Entry] = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        out.append((name, _CODES[a.dtype.newbyteorder("=")], tuple(a.shape), a.tobytes()))
    return out


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
    }
    metadata["sha256"] = _digest(_entries(tensors), metadata["architecture"])
    data = _retag(st.numpy.save(tensors, metadata=metadata), "U16", "BF16")
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


# The largest header the readers take (the safetensors crate's limit, and the C++ reader's).
_MAX_HEADER = 100_000_000


def _header(data: bytes, path: Path) -> tuple[int, dict[str, Any]]:
    """The safetensors header's size and JSON, read as the C++ reader reads it (rnnkit._json:
    no key twice, no NaN, depth bounded, ...) before the safetensors package sees the file, so
    that no header means one thing here and another in C++."""
    def refuse(why: str) -> ValueError:
        return ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {why}")

    if len(data) < 8:
        raise refuse(f"{len(data)} bytes, too short for a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > _MAX_HEADER or n > len(data) - 8:
        raise refuse(f"the header claims {n} bytes, the file has {len(data) - 8} after the size field")
    try:
        text = data[8:8 + n].decode("utf-8")
    except UnicodeDecodeError as e:
        raise refuse(f"corrupt header (invalid UTF-8 at byte {e.start})") from None
    try:
        header = _json.loads(text)
    except ValueError as e:
        raise refuse(f"corrupt header ({e})") from None
    if not isinstance(header, dict):
        raise refuse("the header is not a JSON object")
    return n, header


def _check_tensors(layers: list[tuple[str, dict[str, Any], dict[str, Any]]], sequential: bool,
                   infos: dict[str, tuple[str, tuple[int, ...]]], arrays: dict[str, np.ndarray]) -> None:
    """The file's tensors (infos: name -> (dtype code, shape)) against what the architecture needs,
    with the C++ loader's checks in its order and words (architecture.cpp's TensorTable), before
    anything is allocated from the architecture: the count (closed form), then each tensor's name,
    shape and dtype, then no tensor left over, then every value finite in the model's dtype."""
    have = len(infos)
    prefixes = [f"{i}." if sequential else "" for i in range(len(layers))]
    total = 0
    for i, (name, values, _) in enumerate(layers):
        count = architecture.tensor_count(name, values)
        total += count
        if total > have:
            before = f", {total} with the layers before it" if total > count else ""
            raise ValueError(f"layer {i} ({architecture.summary(name, values)}) needs {count} tensors{before}; "
                             f"the file has {have}")
    needed = [t for (name, values, _), prefix in zip(layers, prefixes)
              for t in architecture.needed_tensors(name, values, prefix)]
    for tname, shape, want in needed:
        if tname not in infos:
            raise ValueError(f"tensor '{tname}' is missing")
        dtype, got = infos[tname]
        if got != shape:
            raise ValueError(f"tensor '{tname}' has shape {got}, the architecture needs {shape}")
        if want and dtype != want:
            raise ValueError(f"tensor '{tname}' has dtype {dtype}, expected {want}")
        if not want and dtype not in ("F32", "F64"):
            raise ValueError(f"tensor '{tname}' has dtype {dtype}, expected F32 or F64")
    used = {tname for tname, _, _ in needed}
    for tname in sorted(infos, key=lambda k: k.encode()):
        if tname not in used:
            raise ValueError(f"tensor '{tname}' belongs to no layer")
    float32 = architecture.dtype_of(layers) == "float32"
    scales = {tname + "_scale" for tname, _, want in needed if want == "I8"}
    for tname, _, want in needed:
        a = arrays[tname].reshape(-1)
        if want == "I8":
            if (a == -128).any():
                i = int(np.flatnonzero(a == -128)[0])
                raise ValueError(f"tensor '{tname}' has the value -128 (element {i}): int8 weights are in -127..127")
            continue
        if want == "BF16":
            bad = (a & 0x7F80) == 0x7F80
            if bad.any():
                raise ValueError(f"tensor '{tname}' has a NaN or infinite value (element {int(np.flatnonzero(bad)[0])})")
            continue
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(a.astype(np.float32) if float32 else a)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = "a NaN or infinite value" if not np.isfinite(a[i]) else "a value beyond float32's range"
            raise ValueError(f"tensor '{tname}' has {what} (element {i})")
        if tname in scales and (a < 0).any():
            raise ValueError(f"tensor '{tname}' has a negative scale (element {int(np.flatnonzero(a < 0)[0])})")


def _build(arch: Any, infos: Optional[dict[str, tuple[str, tuple[int, ...]]]] = None,
           arrays: Optional[dict[str, np.ndarray]] = None) -> Module:
    """The model an architecture describes, after the checks the C++ loader makes (architecture.read),
    and with its tensors checked against it first when given."""
    layers, sequential = architecture.read_layers(arch)
    if infos is not None and arrays is not None:
        _check_tensors(layers, sequential, infos, arrays)
    from . import quantization

    precisions = [given.pop("precision", "float32") for _, _, given in layers]
    modules = [_LAYERS[name](**given) for name, _, given in layers]
    model = Sequential(*modules) if sequential else modules[0]
    for module, precision in zip(modules, precisions):
        if precision != "float32":  # stored in reduced precision: the file's values replace these
            quantization.convert(module, precision)
    if arrays is not None:
        model.load_state_dict(arrays)
    return model


def _parse(text: str) -> Any:
    """The architecture's JSON, read as the C++ reader reads it (rnnkit._json)."""
    try:
        return _json.loads(text)
    except ValueError as e:
        raise ValueError(f"the architecture is not valid JSON ({e})") from None


def load(path: Union[str, os.PathLike]) -> Module:
    """Rebuild the model saved at ``path``, with its weights, in eval mode.

    It accepts exactly the files the C++ runtime (``rk.runtime.load``) accepts, and refuses the
    rest with a ValueError saying what is wrong: a truncated or corrupt file, another format or
    version, a checksum that does not match, an architecture the table does not allow, tensors
    that are not what the architecture needs, a NaN or infinite weight."""
    st = _safetensors()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    data = path.read_bytes()
    n, header = _header(data, path)
    try:
        arrays = st.numpy.load(_retag(data, "BF16", "U16"))
    except Exception as e:  # safetensors' own error types vary between versions
        raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not an rnnkit model (no format=rnnkit in its metadata)")
    version = metadata.get("format_version")
    if version not in _READS:
        shown = "none" if version is None else architecture.quote(version)
        raise ValueError(f"{path} has rnnkit format version {shown}; this rnnkit reads versions "
                         f"{' and '.join(_READS)}")
    if "architecture" not in metadata:
        raise ValueError(f"{path}: no architecture in the metadata")
    infos = {name: (e["dtype"], tuple(e["shape"])) for name, e in header.items() if name != "__metadata__"}
    start, view = 8 + n, memoryview(data)  # slices of a view: no copy of the tensors' bytes
    entries = [(name, e["dtype"], tuple(e["shape"]), view[start + e["data_offsets"][0]:start + e["data_offsets"][1]])
               for name, e in header.items() if name != "__metadata__"]
    if metadata.get("sha256") != _digest(entries, metadata["architecture"], version):
        raise ValueError(f"{path} is corrupt: the tensors or the architecture do not match the sha256 checksum in "
                         "its metadata")
    try:
        model = _build(_parse(metadata["architecture"]), infos, arrays)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path} has an invalid architecture: {e}") from None
    return model.eval()
