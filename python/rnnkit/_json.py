"""JSON as the C++ reader (cpp/src/json.cpp) reads it, for rk.load's model files.

``loads(text)`` accepts exactly the texts the C++ reader accepts, with the same
values, so that no model file means one thing to ``rk.load`` and another to
``rk.runtime.load``. Python's ``json.loads`` alone would differ: it keeps the last
of a repeated key (the C++ reader refuses any), reads ``NaN`` and ``Infinity``,
reads ``1e400`` as inf, keeps lone surrogates (``"\\ud800"``) and recurses until
RecursionError on ``[[[[...``. Here each of these is a ValueError, as it is in C++,
and nesting is bounded at the same depth (``MAX_DEPTH`` arrays and objects open at
once, ``json::kMaxDepth``).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import numpy as np

MAX_DEPTH = 64

# A JSON string literal: what the depth count skips (a bracket inside one is text).
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_FLOAT_MAX = sys.float_info.max


def _quote(s: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escapes.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in s) + '"'


def _depth(text: str) -> int:
    """The most arrays and objects open at once (exact for valid JSON; any count for the rest,
    which the parser refuses anyway)."""
    structure = np.frombuffer(_STRING.sub("", text).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    steps = np.isin(structure, (ord("["), ord("{"))).astype(np.int64) - np.isin(structure, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max(initial=0))


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {_quote(key)}")
        obj[key] = value
    return obj


def _constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _float(token: str) -> float:
    v = float(token)
    if abs(v) > _FLOAT_MAX:
        raise ValueError(f"number out of range ({token[:20]}{'...' if len(token) > 20 else ''})")
    return v


def _int(token: str) -> int:
    # The C++ reader holds every number as a double: a whole number past its range is refused
    # there, so it is here (int() of more than 4300 digits raises ValueError itself).
    try:
        v = int(token)
        float(v)
    except (ValueError, OverflowError):
        raise ValueError(f"number out of range ({token[:20]}...)") from None
    return v


def loads(text: str) -> Any:
    """``text`` parsed as the C++ reader parses it; ValueError saying what is wrong otherwise."""
    if _depth(text) > MAX_DEPTH:
        raise ValueError(f"nesting deeper than {MAX_DEPTH} arrays and objects")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float,
                           parse_int=_int)
    except json.JSONDecodeError as e:
        raise ValueError(e.msg + f" at character {e.pos}") from None
    try:  # a lone surrogate anywhere (json.loads keeps "\ud800"; UTF-8 has no such character)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a lone surrogate (\\ud800-\\udfff) in a string") from None
    return value
