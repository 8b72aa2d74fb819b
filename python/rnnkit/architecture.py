"""The architectures a model file may describe, read from the C++ core's own table.

``TABLE`` is ``rnnkit._core.architecture_table()``, the table the C++ loader
(``rnnkit::Model``, ``cpp/include/rnnkit/architecture.h``) reads::

    {"LSTM": {"role": "recurrent", "input": "input_size",
              "options": [{"key": "input_size", "type": "int", "required": True, "minimum": 1,
                           "maximum": 10**12, "summary": "positional"},
                          {"key": "num_layers", "type": "int", "required": False, "default": 1, ...},
                          {"key": "dropout", "type": "number", "default": 0.0, "minimum": 0.0,
                           "maximum": 1.0, "summary": "never"},   # minimum <= value < maximum
                          {"key": "dtype", "type": "string", "default": "float32",
                           "allowed": ["float32", "float64"], "summary": "never"}, ...],
              "checks": [{"kind": "smaller_than", "option": "proj_size", "other": "hidden_size"}]},
     "Embedding": ..., "RNN": ..., "GRU": ..., "Linear": ..., "LastStep": ..., "MeanPool": ..., "Dropout": ...}

``read(arch)`` checks an architecture (the JSON object a model file holds)
against it with the C++ loader's rules and in its words: each option's type and
range, no option the table does not list, each class's checks, and how the
layers fit together. So ``rk.load`` and ``rk.runtime.load`` accept and refuse the
same files, and say the same thing about the ones they refuse; the one exception is a
model that never says its input's size (a Dropout, LastStep or MeanPool alone, or a
pooling layer first), which only Python can run.
"""

from __future__ import annotations

import math
from typing import Any

from . import _core

TABLE: dict[str, dict[str, Any]] = _core.architecture_table()


def number_str(v: float) -> str:
    """A number as the messages and summary lines write it: whole numbers in full, others to 6 digits."""
    v = float(v)
    if math.isfinite(v) and v == math.floor(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def quote(s: str) -> str:
    """``s`` as a JSON string literal, escaped as the C++ reader's messages escape it."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escapes.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in s) + '"'


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "a list" if isinstance(v, list) else "an object"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _alternatives(allowed: list[str]) -> str:
    quoted = [quote(a) for a in allowed]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _refusal(opt: dict[str, Any], v: Any) -> str:
    """Why ``v`` is not a value of option ``opt``, or "" when it is one."""
    must = f"option '{opt['key']}' must be "
    kind = opt["type"]
    if isinstance(v, bool):
        got = "true" if v else "false"
    elif _is_number(v):
        got = number_str(v)
    elif isinstance(v, str):
        got = quote(v)
    else:
        got = _type_name(v)
    whole = _is_number(v) and math.isfinite(v) and v == math.floor(v)
    if kind == "bool" and not isinstance(v, bool):
        return must + "true or false, got " + got
    if kind == "int":
        if not whole or v < opt["minimum"]:
            return must + f"a whole number >= {number_str(opt['minimum'])}, got {got}"
        if v > opt["maximum"]:
            return must + f"a whole number <= {number_str(opt['maximum'])}, got {got}"
    if kind == "int_or_null" and v is not None and (not whole or not opt["minimum"] <= v <= opt["maximum"]):
        return must + "a whole number or null, got " + got
    if kind == "number":
        if not _is_number(v):
            return must + "a number, got " + got
        if not opt["minimum"] <= v < opt["maximum"]:
            return must + f"in [{number_str(opt['minimum'])}, {number_str(opt['maximum'])}), got {got}"
    if kind == "string":
        if opt["allowed"] and v not in opt["allowed"]:
            return must + _alternatives(opt["allowed"]) + ", got " + got
        if not isinstance(v, str):
            return must + "a string, got " + got
    return ""


def _literal(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return repr(v)
    return "'" + v + "'" if isinstance(v, str) else number_str(v)


def summary(name: str, values: dict[str, Any]) -> str:
    """The layer's summary line, as the C++ runtime's ``summary()`` writes it: ``LSTM(3, 8, num_layers=2)``."""
    parts = []
    for opt in TABLE[name]["options"]:
        shown, value = opt["summary"], values[opt["key"]]
        if shown == "never" or (shown == "not_default" and value == opt["default"]):
            continue
        parts.append(("" if shown == "positional" else opt["key"] + "=") + _literal(value))
    return f"{name}({', '.join(parts)})"


def _only_keys(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Refuse a key other than ``keys``: what the readers would ignore could be meant to change the model."""
    for key in obj:
        if key not in keys:
            raise ValueError(f"{where} has an unknown key {quote(key)}; it takes {' and '.join(map(quote, keys))}")


def read_config(entry: Any, index: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Layer ``index``'s class, every option's value (given or default) and the options given,
    checked against the table; whole numbers written as 3.0 come back as ints."""
    at = f"layer {index}"
    if not isinstance(entry, dict):
        raise ValueError(f"{at} is not an object")
    name, cfg = entry.get("class"), entry.get("config")
    if not isinstance(name, str) or not isinstance(cfg, dict):
        raise ValueError(f'{at} needs a "class" name and a "config" object')
    _only_keys(entry, ("class", "config"), at)
    if name not in TABLE:
        raise ValueError(f"{at} is an unknown layer {quote(name)}; the layers are {', '.join(TABLE)}")
    cls = TABLE[name]
    where = f"{at} ({name})"
    values: dict[str, Any] = {}
    for opt in cls["options"]:
        key = opt["key"]
        if key not in cfg and opt["required"]:
            raise ValueError(f"{where}: option '{key}' is missing")
        value = cfg[key] if key in cfg else opt["default"]
        why = _refusal(opt, value)
        if why:
            raise ValueError(f"{where}: {why}")
        values[key] = int(value) if opt["type"] in ("int", "int_or_null") and value is not None else value
    keys = [opt["key"] for opt in cls["options"]]
    for key in cfg:  # each key once: the JSON reader (rnnkit._json) refuses a repeated one
        if key not in keys:
            raise ValueError(f"{where}: unknown option '{key}'; {name} takes {', '.join(keys)}")
    for check in cls["checks"]:
        option, other = check["option"], check["other"]
        v, n = values[option], values[other]
        if check["kind"] == "smaller_than" and v != 0 and v >= n:
            raise ValueError(f"{where}: {option} must be smaller than {other} ({n}), got {v}")
        if check["kind"] == "index_into" and v is not None and not -n <= v < n:
            raise ValueError(f"{where}: {option} must be in {-n}..{n - 1} ({other} is {n}), got {v}")
    return name, values, {key: values[key] for key in cfg}


def read(arch: Any) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """The layers of an architecture as (class, the options given) and whether it is a
    Sequential, after the C++ loader's checks (``read_layers``)."""
    layers, sequential = read_layers(arch)
    return [(name, given) for name, _, given in layers], sequential


def read_layers(arch: Any) -> tuple[list[tuple[str, dict[str, Any], dict[str, Any]]], bool]:
    """The layers of an architecture as (class, every option's value, the options given) and
    whether it is a Sequential, after the C++ loader's checks: every layer's options, no key
    the readers do not know, and how the layers fit together (each layer's input is what the
    one before gives, an Embedding comes first, a sequence is pooled at most once and nothing
    recurrent follows, the recurrent layers share one batch_first and every layer one dtype).
    Raises ValueError saying what is wrong.

    The C++ runtime also needs to know its input's size: it refuses a model with no layer that
    has one (Dropout, LastStep or MeanPool alone) and a pooling layer before the first such
    layer, which Python runs on whatever features it is given."""
    if not isinstance(arch, dict) or not isinstance(arch.get("class"), str) or not isinstance(arch.get("config"), dict):
        raise ValueError('the architecture must be {"class": ..., "config": {...}}')
    _only_keys(arch, ("class", "config"), "the architecture")
    sequential = arch["class"] == "Sequential"
    entries = arch["config"].get("layers") if sequential else [arch]
    if not isinstance(entries, list) or not entries:
        raise ValueError('a Sequential architecture needs a non-empty "layers" list')
    if sequential:
        _only_keys(arch["config"], ("layers",), "the Sequential's config")
    layers = []
    features = -1  # features per row so far; -1 before the first sized layer
    pooled = False
    batch_first = dtype = None
    for i, entry in enumerate(entries):
        name, values, given = read_config(entry, i)
        cls = TABLE[name]
        role, where = cls["role"], f"layer {i} ({name})"
        if cls["input"] and features >= 0 and features != values[cls["input"]]:
            raise ValueError(f"{where}: {cls['input']} is {values[cls['input']]} but the layer before gives "
                             f"{features} features")
        if role == "embedding" and i != 0:
            raise ValueError(f"{where}: an Embedding must be the first layer")
        at = f"layer {i} ({summary(name, values)})"
        if role == "recurrent":
            if pooled:
                raise ValueError(f"{at}: a recurrent layer cannot follow LastStep or MeanPool")
            if batch_first is not None and values["batch_first"] != batch_first:
                raise ValueError(f"{at}: the recurrent layers disagree on batch_first, so the Python model feeds one "
                                 "layer's time axis to the next as its batch axis; refusing to guess")
            batch_first = values["batch_first"]
        if role == "pool":
            if pooled:
                raise ValueError(f"{at}: the sequence is already pooled")
            pooled = True
        if "dtype" in values:
            if dtype is not None and values["dtype"] != dtype:
                raise ValueError(f"{at}: dtype {quote(values['dtype'])} differs from the layers' before it "
                                 f"({quote(dtype)}): a model has one dtype")
            dtype = values["dtype"]
        if values.get("precision", "float32") != "float32" and values["dtype"] != "float32":
            raise ValueError(f"{at}: precision {quote(values['precision'])} runs in float32: its dtype must be "
                             '"float32"')
        if role == "recurrent":
            features = (2 if values["bidirectional"] else 1) * (values.get("proj_size") or values["hidden_size"])
        elif role == "embedding":
            features = values["embedding_dim"]
        elif role == "linear":
            features = values["out_features"]
        layers.append((name, values, given))
    return layers, sequential


def dtype_of(layers: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """The model's dtype: every layer's that has one (read_layers checks they agree), float32 if none has."""
    return next((values["dtype"] for _, values, _ in layers if "dtype" in values), "float32")


def _stack_spec(name: str, values: dict[str, Any]) -> Any:
    mode = name if name != "RNN" else "RNN_" + values["nonlinearity"].upper()
    return _core.StackSpec(mode, values["input_size"], values["hidden_size"], values["num_layers"], values["bias"],
                           values["bidirectional"], values.get("proj_size", 0), values.get("reset_after", True),
                           values.get("peepholes", False))


def tensor_count(name: str, values: dict[str, Any]) -> int:
    """How many tensors the layer needs, in closed form (``StackSpec.num_tensors``): a file claiming
    2^31 layers is refused on this count, before anything is listed or allocated for them."""
    role = TABLE[name]["role"]
    int8 = values.get("precision") == "int8"  # a scale beside each weight matrix
    if role == "recurrent":
        spec = _stack_spec(name, values)
        scales = values["num_layers"] * (2 if values["bidirectional"] else 1) * (2 + bool(values.get("proj_size")))
        return int(spec.num_tensors) + (scales if int8 else 0)
    return {"embedding": 1, "linear": (2 if values.get("bias") else 1) + int8}.get(role, 0)


_LOWP_DTYPES = {"int8": "I8", "bf16": "BF16"}


def _matrix(name: str, shape: tuple[int, ...], precision: str) -> list[tuple[str, tuple[int, ...], str]]:
    """A weight matrix's tensors: its values (dtype "" for F32/F64, "I8", "BF16"), and int8's row scales."""
    if precision == "float32":
        return [(name, shape, "")]
    out = [(name, shape, _LOWP_DTYPES[precision])]
    return out + ([(name + "_scale", shape[:1], "")] if precision == "int8" else [])


def needed_tensors(name: str, values: dict[str, Any], prefix: str) -> list[tuple[str, tuple[int, ...], str]]:
    """The tensors the layer needs, (name with ``prefix``, shape, dtype: "" for F32 or F64, or a reduced
    precision's "I8" / "BF16"), in the order its buffer holds them (the C++ loader's order). Ask only once
    tensor_count() is within the file's tensors."""
    role = TABLE[name]["role"]
    precision = values.get("precision", "float32")
    if role == "recurrent":
        out = []
        for n, shape in _stack_spec(name, values).param_shapes():
            if n.startswith(("weight_ih", "weight_hh", "weight_hr")):
                out += _matrix(prefix + n, tuple(shape), precision)
            else:
                out.append((prefix + n, tuple(shape), ""))
        return out
    if role == "embedding":
        return [(prefix + "weight", (values["num_embeddings"], values["embedding_dim"]), "")]
    if role == "linear":
        out = _matrix(prefix + "weight", (values["out_features"], values["in_features"]), precision)
        return out + ([(prefix + "bias", (values["out_features"],), "")] if values["bias"] else [])
    return []
