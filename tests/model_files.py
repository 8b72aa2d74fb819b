"""Model files taken apart and put back together, for the tests that edit them.

A model file is safetensors: an 8-byte little-endian header size N, N bytes of JSON
header, the tensors' bytes. ``split`` and ``join`` give and take the header as a dict
(or as text, for edits a dict cannot hold: repeated keys, deep nesting, bad bytes), and
``sign`` recomputes the checksum after an edit, written here from the format's
description in docs/cpp.md ("Model files"), apart from either loader's code, so that
an edited file is valid but for the edit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Union


def split(data: bytes) -> tuple[dict[str, Any], bytes]:
    """(the header, the data section)."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def join(header: Union[dict[str, Any], str, bytes], body: bytes) -> bytes:
    """A file of ``header`` (a dict is written as rk.save writes it; text or bytes as they are)
    and the data section ``body``."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    raw = header.encode() if isinstance(header, str) else header
    return len(raw).to_bytes(8, "little") + raw + body


def _u64(v: int) -> bytes:
    return v.to_bytes(8, "little")


def _string(s: str) -> bytes:
    raw = s.encode()
    return _u64(len(raw)) + raw


def tensors(header: dict[str, Any], body: bytes) -> list[tuple[str, str, list[int], bytes]]:
    """(name, dtype, shape, bytes) of each tensor, in name order (bytewise)."""
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out.append((name, info["dtype"], list(info["shape"]), body[begin:end]))
    return sorted(out, key=lambda t: t[0].encode())


def digest(header: dict[str, Any], body: bytes, version: str = "2") -> str:
    """The sha256 a file of this header and body must carry.

    Versions 2 and 3: SHA-256 of, with u64 little-endian integers and UTF-8 strings each after its
    length in bytes: the number of tensors; for each tensor in name order its name, dtype,
    rank, dimensions, byte count and bytes; then the architecture. Version 1: each tensor's
    name then bytes, in name order."""
    ts = tensors(header, body)
    if version == "1":
        return hashlib.sha256(b"".join(name.encode() + data for name, _, _, data in ts)).hexdigest()
    parts = [_u64(len(ts))]
    for name, dtype, shape, data in ts:
        parts += [_string(name), _string(dtype), _u64(len(shape)), *(_u64(d) for d in shape), _u64(len(data)), data]
    parts.append(_string(header["__metadata__"]["architecture"]))
    return hashlib.sha256(b"".join(parts)).hexdigest()


def sign(header: dict[str, Any], body: bytes) -> dict[str, Any]:
    """``header`` with the checksum its format_version asks for (the header is changed too)."""
    meta = header["__metadata__"]
    meta["sha256"] = digest(header, body, meta["format_version"])
    return header


def edit_architecture(data: bytes, change: Any) -> bytes:
    """The file ``data`` with its architecture changed by ``change(arch)`` (a dict it edits in place,
    or returns a new value; a str return is the architecture's new text), checksum recomputed."""
    header, body = split(data)
    meta = header["__metadata__"]
    arch = json.loads(meta["architecture"])
    out = change(arch)
    arch = arch if out is None else out
    meta["architecture"] = arch if isinstance(arch, str) else json.dumps(arch)
    return join(sign(header, body), body)


def write(arrays: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """A file of these NumPy arrays (laid out in name order, little-endian; F32 or F64) and this
    metadata, signed for its format_version."""
    codes = {"float32": "F32", "float64": "F64"}
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    body = b""
    for name in sorted(arrays):
        a = arrays[name]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": codes[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    return join(sign(header, body), body)
