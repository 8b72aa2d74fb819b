"""Model files and the runtime's bindings, hardened (DESIGN.md section 5: bad input).

Both loaders, rk.load (Python) and rk.runtime.load (the C++ rnnkit::Model), accept exactly
the same files and refuse the rest with a ValueError that says what is wrong; nothing a
file or a Python caller passes crashes the interpreter, hangs, or allocates what the
file does not hold. What could crash or hang runs in a child process, with a memory
limit (RLIMIT_AS) where memory matters.

- the bindings (rk._core.Runtime*, Stream*): every entry point swept with ragged lists,
  wrong dtypes, 0-d and huge (broadcast) arrays, non-contiguous arrays, None;
- an architecture claiming far more than the file holds (2^31 layers, a hidden size of
  12000 in a 2 KB file) is refused before anything is allocated from it;
- the version-2 checksum covers each tensor's name, dtype, shape and bytes and the
  architecture; version-1 files still load; other versions are refused;
- a key repeated anywhere (architecture or safetensors header) is refused by both;
- NaN or infinite weights are refused by both, and a float64 value past float32's range
  by whatever would hold it in float32;
- clear errors: bytes that are not UTF-8, nesting 100,000 deep, no architecture, and the
  streaming API's arguments;
- every fixture file here and in tests/test_architecture.py through both loaders; and a
  seeded sample of fuzzed files (tests/fuzz_files.py) through both, and through the C++
  fuzz_loader (CI runs the full set under AddressSanitizer).

Files are edited with tests/model_files.py, which recomputes the checksum from the
format's description, so that an edit reaches the checks behind the checksum.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest

import fuzz_files
import model_files
import rnnkit as rk

pytest.importorskip("safetensors")

TESTS = Path(__file__).resolve().parent
MEMORY = 1 << 30  # a child's address space: far above a small model's load, far below what a bad file claims
HAS_PEEPHOLES = "peepholes" in inspect.signature(rk.LSTM).parameters


# ---- running what could crash or hang ----------------------------------------------------

_PRELUDE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
import numpy as np
import rnnkit as rk

def outcome(f):
    try:
        f()
        return ["ok", ""]
    except BaseException as e:
        return [type(e).__name__, str(e)]
"""


def child(code: str, timeout: float = 120, memory: int = MEMORY) -> str:
    """Run ``code`` (after _PRELUDE) in a child Python; its stdout. Fails if it was killed by a
    signal (a crash, or the memory limit's) or ran past ``timeout``."""
    r = subprocess.run([sys.executable, "-c", _PRELUDE.format(memory=memory) + code], capture_output=True,
                       text=True, timeout=timeout, cwd=TESTS)
    assert r.returncode == 0, f"the child {'died of signal ' + str(-r.returncode) if r.returncode < 0 else 'failed'}:" \
                              f"\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def outcomes_of(cases: dict[str, str], setup: str = "", timeout: float = 300) -> dict[str, tuple[str, str]]:
    """Each case (a statement) run in one child after ``setup``: {name: (exception type or "ok", message)}.
    A case that crashes the child is named in the failure (each is announced before it runs)."""
    code = setup + "\nresults = {}\n"
    for name, stmt in cases.items():
        code += f"print('RUNNING ' + {name!r}, file=sys.stderr, flush=True)\n"
        code += f"def case():\n    {stmt}\nresults[{name!r}] = outcome(case)\n"
    code += "print(json.dumps(results))\n"
    r = subprocess.run([sys.executable, "-c", _PRELUDE.format(memory=MEMORY) + code], capture_output=True, text=True,
                       timeout=timeout, cwd=TESTS)
    running = [line for line in r.stderr.splitlines() if line.startswith("RUNNING ")]
    assert r.returncode == 0, (f"the child {'died of signal ' + str(-r.returncode) if r.returncode < 0 else 'failed'}"
                               f" in case {running[-1][8:] if running else '?'}:\n{r.stderr[-3000:]}")
    return {k: (v[0], v[1]) for k, v in json.loads(r.stdout.splitlines()[-1]).items()}


# ---- the models the files hold ----------------------------------------------------------

def _bases() -> dict[str, rk.Module]:
    return {
        "gru": rk.GRU(3, 4, seed=1),  # 4 tensors, reset_after=True
        "gru2": rk.GRU(3, 4, num_layers=2, reset_after=False, bias=False, seed=2),  # 4 tensors
        "rnn": rk.RNN(3, 4, seed=3),  # tanh
        "seq": rk.Sequential(rk.Embedding(10, 4, padding_idx=0, seed=4), rk.LSTM(4, 5, batch_first=True, seed=5),
                             rk.LastStep(), rk.Dropout(0.2), rk.Linear(5, 3, seed=6)),
        "seq_f64": rk.Sequential(rk.Linear(3, 4, seed=7, dtype=np.float64), rk.GRU(4, 4, seed=8, dtype=np.float64),
                                 rk.MeanPool(), rk.Linear(4, 2, seed=9, dtype=np.float64)),
        "linear": rk.Linear(3, 2, seed=10),
        "embedding": rk.Embedding(6, 3, seed=11),
    }


BASES = _bases()
_SAVED: dict[str, bytes] = {}


def saved(base: str) -> bytes:
    """BASES[base] as rk.save writes it."""
    if base not in _SAVED:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.safetensors"
            rk.save(BASES[base], path)
            _SAVED[base] = path.read_bytes()
    return _SAVED[base]


def arch_edit(base: str, change: Callable[[Any], Any], sign: bool = True) -> Callable[[], bytes]:
    """BASES[base]'s file with its architecture changed (see model_files.edit_architecture); with
    sign=False the old checksum is kept."""
    def make() -> bytes:
        data = model_files.edit_architecture(saved(base), change)
        if sign:
            return data
        header, body = model_files.split(data)
        header["__metadata__"]["sha256"] = model_files.split(saved(base))[0]["__metadata__"]["sha256"]
        return model_files.join(header, body)
    return make


def header_edit(base: str, change: Callable[[dict[str, Any], bytes], Optional[bytes]],
                sign: bool = True) -> Callable[[], bytes]:
    """BASES[base]'s file with its header changed in place by change(header, body) (which may
    return a new body), re-signed unless sign=False."""
    def make() -> bytes:
        header, body = model_files.split(saved(base))
        out = change(header, body)
        body = out if isinstance(out, bytes) else body
        return model_files.join(model_files.sign(header, body) if sign else header, body)
    return make


def text_edit(base: str, change: Callable[[str], str]) -> Callable[[], bytes]:
    """BASES[base]'s file with its header's JSON text changed (for what a dict cannot hold)."""
    def make() -> bytes:
        header, body = model_files.split(saved(base))
        return model_files.join(change(json.dumps(header, separators=(",", ":"))), body)
    return make


def raw_edit(base: str, change: Callable[[bytes], bytes]) -> Callable[[], bytes]:
    return lambda: change(saved(base))


def insert_in_header(base: str, after: bytes, insert: bytes) -> Callable[[], bytes]:
    """BASES[base]'s file with raw bytes put in its header after the first ``after`` (the size field kept right)."""
    def make() -> bytes:
        data = saved(base)
        n = int.from_bytes(data[:8], "little")
        header = data[8:8 + n]
        at = header.index(after) + len(after)
        return model_files.join(header[:at] + insert + header[at:], data[8 + n:])
    return make


def config(arch: Any, layer: Optional[int]) -> dict[str, Any]:
    return arch["config"] if layer is None else arch["config"]["layers"][layer]["config"]


def set_option(layer: Optional[int], key: str, value: Any) -> Callable[[Any], None]:
    return lambda arch: config(arch, layer).__setitem__(key, value)


def rewrite_tensors(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[dict[str, Any], bytes], bytes]:
    """A change for header_edit: the tensors, as arrays, changed by change(arrays), then laid out again."""
    def rewrite(header: dict[str, Any], body: bytes) -> bytes:
        arrays = {n: np.frombuffer(raw, np.float32 if d == "F32" else np.float64).reshape(s)
                  for n, d, s, raw in model_files.tensors(header, body)}
        change(arrays)
        new_header, new_body = model_files.split(model_files.write(arrays, header["__metadata__"]))
        header.clear()
        header.update(new_header)
        return new_body
    return rewrite


def set_values(name: str, index: int, value: float, dtype: str = "F32") -> Callable[[dict[str, Any], bytes], bytes]:
    """A change for header_edit: element ``index`` of tensor ``name`` set to ``value``, the tensor
    rewritten in ``dtype``."""
    def change(arrays: dict[str, np.ndarray]) -> None:
        a = arrays[name].astype(np.float32 if dtype == "F32" else np.float64)
        a.reshape(-1)[index] = value
        arrays[name] = a
    return rewrite_tensors(change)


def set_version(version: str) -> Callable[[dict[str, Any], bytes], None]:
    return lambda header, body: header["__metadata__"].__setitem__("format_version", version)


def dtype_of_tensor(name: str, dtype: str) -> Callable[[dict[str, Any], bytes], None]:
    return lambda header, body: header[name].__setitem__("dtype", dtype)


def nest(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


# ---- the fixture files: name -> (make, what both loaders do) -------------------------------
# None: both load it; a string: both refuse it, saying that; RUNTIME32 + a string: rk.load and
# the float64 runtime load it, the float32 runtime refuses it, saying that.

RUNTIME32 = "runtime32 refuses: "
GRU_L0 = "layer 0 (GRU(3, 4, num_layers=2, bias=False, reset_after=False))"

FIXTURES: dict[str, tuple[Callable[[], bytes], Optional[str]]] = {
    **{f"{b}_as_saved": (raw_edit(b, lambda d: d), None) for b in BASES},
    # 2. the architecture claims far more than the file holds
    "num_layers_1e9": (arch_edit("gru2", set_option(None, "num_layers", 10**9)),
                       "layer 0 (GRU(3, 4, num_layers=1000000000, bias=False, reset_after=False)) needs 2000000000 "
                       "tensors; the file has 4"),
    "num_layers_2_31": (arch_edit("gru2", set_option(None, "num_layers", 2**31)),
                        "needs 4294967296 tensors; the file has 4"),
    "num_layers_1e12": (arch_edit("gru2", set_option(None, "num_layers", 10**12)),
                        "needs 2000000000000 tensors; the file has 4"),
    "hidden_12000": (arch_edit("gru", set_option(None, "hidden_size", 12000)),
                     "tensor 'weight_ih_l0' has shape (12, 3), the architecture needs (36000, 3)"),
    "hidden_1e12": (arch_edit("gru", set_option(None, "hidden_size", 10**12)),
                    "the architecture needs (3000000000000, 3)"),
    "input_1e12": (arch_edit("rnn", set_option(None, "input_size", 10**12)),
                   "tensor 'weight_ih_l0' has shape (4, 3), the architecture needs (4, 1000000000000)"),
    "linear_1e12_by_1e12": (arch_edit("linear", lambda a: a["config"].update(in_features=10**12, out_features=10**12)),
                            "tensor 'weight' has shape (2, 3), the architecture needs (1000000000000, 1000000000000)"),
    "embedding_1e12": (arch_edit("embedding", set_option(None, "num_embeddings", 10**12)),
                       "tensor 'weight' has shape (6, 3), the architecture needs (1000000000000, 3)"),
    "stack_of_1e9_after_an_embedding": (arch_edit("seq", set_option(1, "num_layers", 10**9)),
                                        "layer 1 (LSTM(4, 5, num_layers=1000000000)) needs 4000000000 tensors, "
                                        "4000000001 with the layers before it; the file has 7"),
    "fewer_layers_than_tensors": (arch_edit("gru2", set_option(None, "num_layers", 1)),
                                  "tensor 'weight_hh_l1' belongs to no layer"),
    # 3. the checksum covers each tensor's dtype and shape and the architecture
    "dtype_edit_unsigned": (header_edit("gru", dtype_of_tensor("bias_ih_l0", "I32"), sign=False), "sha256"),
    "dtype_edit_signed": (header_edit("gru", dtype_of_tensor("bias_ih_l0", "I32")),
                          "tensor 'bias_ih_l0' has dtype I32, expected F32 or F64"),
    "dtype_u32_signed": (header_edit("gru", dtype_of_tensor("bias_hh_l0", "U32")), "has dtype U32"),
    "shape_edit_unsigned": (header_edit("gru", lambda h, b: h["weight_ih_l0"].__setitem__("shape", [3, 12]),
                                        sign=False), "sha256"),
    "reset_after_unsigned": (arch_edit("gru", set_option(None, "reset_after", False), sign=False), "sha256"),
    "tanh_to_relu_unsigned": (arch_edit("rnn", set_option(None, "nonlinearity", "relu"), sign=False), "sha256"),
    "last_step_to_mean_pool_unsigned": (arch_edit("seq", lambda a: a["config"]["layers"][2].__setitem__(
        "class", "MeanPool"), sign=False), "sha256"),
    "batch_first_unsigned": (arch_edit("gru", set_option(None, "batch_first", True), sign=False), "sha256"),
    "tensor_renamed_unsigned": (header_edit("linear", lambda h, b: h.__setitem__("bias_", h.pop("bias")),
                                            sign=False), "sha256"),
    "reset_after_signed": (arch_edit("gru", set_option(None, "reset_after", False)), None),
    "version_1": (header_edit("seq", set_version("1")), None),
    "version_1_f64": (header_edit("seq_f64", set_version("1")), None),
    "version_1_unsigned_architecture_edit": (header_edit("gru", lambda h, b: (
        set_version("1")(h, b), h["__metadata__"].__setitem__("architecture", h["__metadata__"]["architecture"]
                                                              .replace('"reset_after": true', '"reset_after": false'))
    )), None),  # version 1's checksum never covered the architecture: why version 2 exists
    "version_2": (header_edit("gru", set_version("2")), None),  # version 3 added dtypes, not checksum fields
    "version_4": (header_edit("gru", set_version("4")), 'rnnkit format version "4"; this'),
    "version_empty": (header_edit("gru", set_version("")), 'rnnkit format version ""'),
    "version_2.0": (header_edit("gru", set_version("2.0")), 'rnnkit format version "2.0"'),
    "version_missing": (header_edit("gru", lambda h, b: h["__metadata__"].pop("format_version"), sign=False),
                        "rnnkit format version none"),
    "sha256_missing": (header_edit("gru", lambda h, b: h["__metadata__"].pop("sha256"), sign=False), "sha256"),
    # 4. a key twice: two models in one file
    "reset_after_twice": (arch_edit("gru", lambda a: json.dumps(a).replace(
        '"reset_after": true', '"reset_after": true, "reset_after": false')), 'duplicate key "reset_after"'),
    "class_twice": (arch_edit("gru", lambda a: json.dumps(a).replace('{"class": "GRU"', '{"class": "GRU", "class": "RNN"')),
                    'duplicate key "class"'),
    "config_twice": (arch_edit("gru", lambda a: '{"config": {}, ' + json.dumps(a)[1:]), 'duplicate key "config"'),
    "layers_twice": (arch_edit("seq", lambda a: json.dumps(a).replace('"layers": [', '"layers": [], "layers": [')),
                     'duplicate key "layers"'),
    "layer_class_twice": (arch_edit("seq", lambda a: json.dumps(a).replace('{"class": "LastStep"',
                                                                           '{"class": "LastStep", "class": "MeanPool"')),
                          'duplicate key "class"'),
    "metadata_twice": (text_edit("gru", lambda t: t[:-1] + ',"__metadata__":{"format":"rnnkit"}}'),
                       'duplicate key "__metadata__"'),
    "architecture_twice": (text_edit("gru", lambda t: t.replace('"architecture":', '"architecture":"{}","architecture":',
                                                                1)), 'duplicate key "architecture"'),
    "format_version_twice": (text_edit("gru", lambda t: t.replace('"format_version":"3"',
                                                                  '"format_version":"3","format_version":"1"')),
                             'duplicate key "format_version"'),
    "tensor_twice": (text_edit("linear", lambda t: t.replace('"bias":{', '"bias":{"dtype":"F32","shape":[2],'
                                                             '"data_offsets":[0,8]},"bias":{')), 'duplicate key "bias"'),
    "dtype_twice": (text_edit("linear", lambda t: t.replace('"dtype":"F32"', '"dtype":"F32","dtype":"I32"', 1)),
                    'duplicate key "dtype"'),
    "shape_twice": (text_edit("linear", lambda t: t.replace('"shape":[2]', '"shape":[2],"shape":[1,2]', 1)),
                    'duplicate key "shape"'),
    "data_offsets_twice": (text_edit("linear", lambda t: t.replace('"data_offsets":[0,8]',
                                                                   '"data_offsets":[0,8],"data_offsets":[0,8]', 1)),
                           'duplicate key "data_offsets"'),
    # 5. weights that are not finite, or not in float32's range where float32 must hold them
    "nan_weight": (header_edit("gru", set_values("weight_hh_l0", 7, np.nan)),
                   "tensor 'weight_hh_l0' has a NaN or infinite value (element 7)"),
    "inf_bias": (header_edit("linear", set_values("bias", 1, np.inf)), "tensor 'bias' has a NaN or infinite value "
                                                                       "(element 1)"),
    "minus_inf_embedding": (header_edit("seq", set_values("0.weight", 0, -np.inf)),
                            "tensor '0.weight' has a NaN or infinite value (element 0)"),
    "nan_in_float64_model": (header_edit("seq_f64", set_values("1.bias_hh_l0", 2, np.nan, "F64")),
                             "tensor '1.bias_hh_l0' has a NaN or infinite value (element 2)"),
    "float64_tensor_in_float32_model": (header_edit("gru", set_values("weight_ih_l0", 4, 0.125, "F64")), None),
    "beyond_float32_in_float32_model": (header_edit("gru", set_values("weight_ih_l0", 4, 1e300, "F64")),
                                        "tensor 'weight_ih_l0' has a value beyond float32's range (element 4)"),
    "just_beyond_float32_in_float32_model": (header_edit("gru", set_values("bias_hh_l0", 0, -3.5e38, "F64")),
                                             "tensor 'bias_hh_l0' has a value beyond float32's range (element 0)"),
    "float32_max_in_float32_model": (header_edit("gru", set_values("bias_hh_l0", 0, 3.4028234e38, "F64")), None),
    "beyond_float32_in_float64_model": (header_edit("seq_f64", set_values("3.weight", 1, 1e300, "F64")),
                                        RUNTIME32 + "tensor '3.weight' has a value beyond float32's range (element 1)"),
    "subnormal_weight": (header_edit("gru", set_values("weight_ih_l0", 0, 1e-45)), None),
    # 6. bytes that are not UTF-8, nesting, numbers, keys no reader knows, no architecture
    "non_utf8_in_architecture": (insert_in_header("gru", b'\\"GRU', b"\xff"), "invalid UTF-8"),
    "architecture_nested_100000": (arch_edit("gru", lambda a: nest(100_000)), "nesting deeper than 64"),
    "header_nested_100000": (text_edit("linear", lambda t: t[:-1] + ',"x":' + nest(100_000) + "}"),
                             "nesting deeper than 64"),
    # the dropout option sits inside 2 objects (5 in a Sequential): 62 more is 64 in all, 63 more is 65
    "architecture_nested_64": (arch_edit("gru", set_option(None, "dropout", json.loads(nest(62)))),
                               "layer 0 (GRU): option 'dropout' must be a number, got a list"),
    "architecture_nested_65": (arch_edit("gru", set_option(None, "dropout", json.loads(nest(63)))),
                               "nesting deeper than 64"),
    # a tensor entry's field no reader uses: accepted at 64 deep (entry 2, field 62), refused at 65
    "header_nested_64_in_an_ignored_field": (header_edit("linear", lambda h, b: h["bias"].__setitem__(
        "note", json.loads(nest(62)))), None),
    "header_nested_65_in_an_ignored_field": (header_edit("linear", lambda h, b: h["bias"].__setitem__(
        "note", json.loads(nest(63)))), "nesting deeper than 64"),
    "number_1e400_in_architecture": (arch_edit("gru", lambda a: json.dumps(a).replace('"dropout": 0.0',
                                                                                      '"dropout": 1e400')),
                                     "number out of range"),
    "number_1e400_in_header": (text_edit("linear", lambda t: t.replace('"shape":[2]', '"shape":[1e400]')),
                               "number out of range"),
    "integer_past_a_double_in_architecture": (arch_edit("gru", lambda a: json.dumps(a).replace(
        '"num_layers": 1', '"num_layers": 1' + "0" * 400)), "number out of range"),
    "leading_zero_in_header": (text_edit("linear", lambda t: t.replace('"shape":[2]', '"shape":[02]')), "corrupt"),
    "shape_as_float_text": (text_edit("linear", lambda t: t.replace('"shape":[2]', '"shape":[2.0]')), "corrupt"),
    "shape_as_minus_zero": (text_edit("embedding", lambda t: t.replace('"data_offsets":[0,', '"data_offsets":[-0,')),
                            "corrupt"),
    "underflow_is_zero": (arch_edit("gru", lambda a: json.dumps(a).replace('"dropout": 0.0', '"dropout": 1e-400')),
                          None),
    "nan_in_architecture": (arch_edit("gru", lambda a: json.dumps(a).replace('"dropout": 0.0', '"dropout": NaN')),
                            "not valid JSON"),
    "lone_surrogate_in_an_unknown_key": (arch_edit("gru", lambda a: json.dumps(a)[:-1] + ', "\\ud800": 1}'),
                                         "not valid JSON"),
    "unknown_top_level_key": (arch_edit("gru", lambda a: a.update(version=2)),
                              'the architecture has an unknown key "version"; it takes "class" and "config"'),
    "unknown_sequential_key": (arch_edit("seq", lambda a: a["config"].update(name="m")),
                               'the Sequential\'s config has an unknown key "name"; it takes "layers"'),
    "unknown_layer_key": (arch_edit("seq", lambda a: a["config"]["layers"][3].update(name="drop")),
                          'layer 3 has an unknown key "name"; it takes "class" and "config"'),
    "no_architecture": (header_edit("gru", lambda h, b: h["__metadata__"].pop("architecture"), sign=False),
                        "no architecture in the metadata"),
    # the cases of tests/test_io.py's damaged files, on these models
    **{f"io_truncated_{n}": (raw_edit("seq", (lambda n: lambda d: d[:n(d)])(n_of)), "truncated") for n, n_of in {
        "empty": lambda d: 0, "4": lambda d: 4, "8": lambda d: 8,
        "mid_header": lambda d: (8 + int.from_bytes(d[:8], "little")) // 2,
        "end_header": lambda d: 8 + int.from_bytes(d[:8], "little"),
        "mid_data": lambda d: (8 + int.from_bytes(d[:8], "little") + len(d)) // 2,
        "minus1": lambda d: len(d) - 1}.items()},
    "io_random_bytes": (lambda: np.random.default_rng(0).integers(0, 256, size=4096, dtype=np.uint8).tobytes(),
                        "truncated"),
    "io_text_file": (lambda: b"this is not a model\n" * 20, "truncated"),
    "io_no_metadata": (header_edit("seq", lambda h, b: h.pop("__metadata__"), sign=False), "not an rnnkit model"),
    "io_other_format": (header_edit("seq", lambda h, b: h["__metadata__"].__setitem__("format", "pt")),
                        "not an rnnkit model"),
    "io_architecture_not_json": (arch_edit("seq", lambda a: "{not json"), "not valid JSON"),
    "io_tensor_missing": (header_edit("seq", rewrite_tensors(lambda a: a.pop("4.weight"))),
                          "layer 4 (Linear(5, 3)) needs 2 tensors, 7 with the layers before it; the file has 6"),
}
if HAS_PEEPHOLES:
    FIXTURES["peepholes_unsigned"] = (arch_edit("seq", set_option(1, "peepholes", True), sign=False), "sha256")


def _architecture_fixtures() -> dict[str, tuple[Callable[[], bytes], Optional[str]]]:
    """tests/test_architecture.py's edited files, written by its own helper."""
    import tempfile

    import test_architecture as ta

    def make(base: str, edit: Any) -> Callable[[], bytes]:
        def write() -> bytes:
            with tempfile.TemporaryDirectory() as tmp:
                return ta.write(Path(tmp), base, edit).read_bytes()
        return write

    out: dict[str, tuple[Callable[[], bytes], Optional[str]]] = {}
    for name, (base, edit) in ta.ACCEPTED.items():
        out[f"architecture_{name}"] = (make(base, edit), None)
    for name, (base, edit, expected) in ta.REFUSED.items():
        out[f"architecture_{name}"] = (make(base, edit), expected)
    return out


ALL_FIXTURES = {**FIXTURES, **_architecture_fixtures()}


def _expected_runtime32(expected: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(what rk.load and the float64 runtime do, what the float32 runtime does)."""
    if expected is not None and expected.startswith(RUNTIME32):
        return None, expected[len(RUNTIME32):]
    return expected, expected


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Every fixture file loaded by rk.load and rk.runtime.load (float32, float64), in child processes."""
    folder = tmp_path_factory.mktemp("fixtures")
    paths = []
    for name, (make, _) in ALL_FIXTURES.items():
        path = folder / f"{name}.safetensors"
        path.write_bytes(make())
        paths.append(path)
    return {Path(r["path"]).stem: r for r in fuzz_files.outcomes(paths)}


@pytest.mark.parametrize("name", list(ALL_FIXTURES))
def test_both_loaders_accept_or_refuse_every_fixture_alike(results: dict[str, dict[str, str]], name: str) -> None:
    r = results[name]
    assert fuzz_files.disagreement(r) is None, fuzz_files.disagreement(r)
    both, r32 = _expected_runtime32(ALL_FIXTURES[name][1])
    for loader, expected in (("python", both), ("runtime64", both), ("runtime32", r32)):
        if expected is None:
            assert r[loader] == "ok", f"{loader}: {r[loader]}"
        else:
            assert r[loader].startswith("refused: ") and expected in r[loader], f"{loader}: {r[loader]}"


def test_the_two_loaders_say_the_same_about_the_tensors(results: dict[str, dict[str, str]]) -> None:
    """Past the JSON and the header, one message: the tensor checks are written once per side, in one order."""
    checked = 0
    for name, r in results.items():
        py, cpp = r["python"], r["runtime32"]
        if py.startswith("refused: ") and "has an invalid architecture: " in py and "JSON" not in py:
            tail = py.split("has an invalid architecture: ", 1)[1]
            assert cpp.endswith(": " + tail), f"{name}: {py} / {cpp}"
            checked += 1
    assert checked > 30


# ---- 1. the bindings: nothing Python passes crashes them ---------------------------------

_SETUP = """
R, R64 = rk._core.Runtime32, rk._core.Runtime64
gru = rk.GRU(3, 4, batch_first=True, seed=1)
A = json.dumps({"class": "GRU", "config": gru.get_config()})
T = gru.state_dict()
def with_tensor(name, value):
    return {**T, name: value}
r = R.from_tensors(A, T)
ids_model = rk.Sequential(rk.Embedding(13, 3, seed=2), rk.GRU(3, 4, batch_first=True, seed=3))
ids = rk.runtime.from_model(ids_model)
x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
y = r.predict(x)
def same(a, b):
    assert np.array_equal(np.asarray(a), np.asarray(b)), (a, b)
"""

# name -> (statement, exception type or "ok", a part of its message)
BINDING_CASES: dict[str, tuple[str, str, str]] = {
    # Runtime.from_tensors
    "ragged_list": ("R.from_tensors('{}', {'w': [[1.0], [1.0, 2.0]]})", "ValueError",
                    "tensor 'w' is not an array of numbers (a ragged list?)"),
    "ragged_list_valid_architecture": ("R.from_tensors(A, with_tensor('weight_ih_l0', [[1.0], [1.0, 2.0]]))",
                                       "ValueError", "tensor 'weight_ih_l0' is not an array of numbers"),
    "none_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', None))", "TypeError",
                    "tensor 'bias_ih_l0' must be an array of numbers, got None"),
    "string_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', 'abc'))", "TypeError",
                      "tensor 'bias_ih_l0' must be real numbers (float or integer), got dtype <U3"),
    "object_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', [object()] * 12))", "TypeError", "dtype object"),
    "bool_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', np.ones(12, bool)))", "TypeError", "got dtype bool"),
    "complex_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', np.ones(12, complex)))", "TypeError",
                       "got dtype complex128"),
    "dict_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', {}))", "TypeError", "dtype object"),
    "zero_d_tensor": ("R.from_tensors(A, with_tensor('bias_ih_l0', np.float32(1)))", "ModelFileError",
                      "tensor 'bias_ih_l0' has shape (), the architecture needs (12,)"),
    "key_not_str": ("R.from_tensors(A, {1: T['bias_ih_l0']})", "TypeError", "tensors' keys must be str"),
    "tensors_not_a_dict": ("R.from_tensors(A, [T['bias_ih_l0']])", "TypeError", "incompatible function arguments"),
    "architecture_none": ("R.from_tensors(None, T)", "TypeError", "incompatible function arguments"),
    "architecture_not_json": ("R.from_tensors('[', T)", "ModelFileError", "not valid JSON"),
    "huge_broadcast_tensor_float32": ("R.from_tensors(A, with_tensor('weight_ih_l0', "
                                      "np.broadcast_to(np.float32(0), (2**40, 3))))", "ModelFileError",
                                      "has shape (1099511627776, 3), the architecture needs (12, 3)"),
    # converted to float32 only after the shapes are checked: no 8 TiB copy
    "huge_broadcast_tensor_float16": ("R.from_tensors(A, with_tensor('weight_ih_l0', "
                                      "np.broadcast_to(np.float16(0), (2**40, 3))))", "ModelFileError",
                                      "has shape (1099511627776, 3)"),
    "huge_broadcast_extra_tensor": ("R.from_tensors(A, with_tensor('junk', np.broadcast_to(np.int8(0), (2**42,))))",
                                    "ModelFileError", "tensor 'junk' belongs to no layer"),
    "nan_tensor": ("R.from_tensors(A, with_tensor('bias_hh_l0', np.full(12, np.nan, np.float32)))", "ModelFileError",
                   "tensor 'bias_hh_l0' has a NaN or infinite value (element 0)"),
    "lists_of_the_right_shape": ("same(R.from_tensors(A, {k: v.tolist() for k, v in T.items()}).predict(x), y)",
                                 "ok", ""),
    "fortran_order_and_strided": ("same(R.from_tensors(A, {k: np.asfortranarray(v) if v.ndim == 2 else "
                                  "np.repeat(v, 2)[::2] for k, v in T.items()}).predict(x), y)", "ok", ""),
    "float64_into_runtime32": ("same(R.from_tensors(A, {k: v.astype(np.float64) for k, v in T.items()}).predict(x), "
                               "y)", "ok", ""),
    "float16_converted": ("R.from_tensors(A, {k: v.astype(np.float16) for k, v in T.items()}).predict(x)", "ok", ""),
    "big_endian_converted": ("same(R.from_tensors(A, {k: v.astype('>f4') for k, v in T.items()}).predict(x), y)",
                             "ok", ""),
    "integers_converted": ("R64.from_tensors(A, {k: np.ones(v.shape, np.int64) for k, v in T.items()})", "ok", ""),
    # predict
    "predict_list": ("same(r.predict(x.tolist()), y)", "ok", ""),
    "predict_strided": ("same(r.predict(np.repeat(x, 2, axis=2)[:, :, ::2]), y)", "ok", ""),
    "predict_float64": ("r.predict(x.astype(np.float64))", "ok", ""),
    "predict_none": ("r.predict(None)", "TypeError", "x must be an array of numbers, got None"),
    "predict_ragged": ("r.predict([[[1.0, 2.0, 3.0]], [[1.0]]])", "ValueError", "x is not an array of numbers"),
    "predict_strings": ("r.predict(np.full((2, 5, 3), 'a'))", "TypeError", "x must be real numbers"),
    "predict_zero_d": ("r.predict(1.0)", "ValueError",
                       "x has shape (), expected (batch, steps, input_size) with input_size 3"),
    "predict_wrong_features": ("r.predict(np.zeros((2, 5, 4), np.float32))", "ValueError",
                               "x has shape (2, 5, 4), expected (batch, steps, input_size) with input_size 3"),
    "predict_no_batch": ("r.predict(np.zeros((0, 5, 3), np.float32))", "ValueError", "batch must be >= 1, got 0"),
    "predict_no_steps": ("r.predict(np.zeros((2, 0, 3), np.float32))", "ValueError", "steps must be >= 1, got 0"),
    "predict_lengths_float": ("r.predict(x, np.array([5.0, 2.0]))", "TypeError",
                              "lengths must be integers, got dtype float64"),
    "predict_lengths_shape": ("r.predict(x, [5, 2, 1])", "ValueError", "lengths has shape (3,), expected (batch,) = (2,)"),
    "predict_lengths_out_of_range": ("r.predict(x, [6, 2])", "ValueError", "lengths"),
    "predict_lengths_list": ("r.predict(x, [5, 2])", "ok", ""),
    "predict_ids_as_floats": ("ids.predict(np.zeros((2, 5)))", "TypeError", "x must be integer token ids"),
    "predict_ids_out_of_range": ("ids.predict([[1, 2, 13]])", "ValueError", "out of range"),
    "predict_huge_broadcast": ("r.predict(np.broadcast_to(np.float32(0), (2**20, 2**20, 3)))", "MemoryError", ""),
    # stream and step
    "stream_batch_zero": ("r.stream(0)", "ValueError", "batch must be >= 1, got 0"),
    "stream_batch_negative": ("r.stream(-3)", "ValueError", "batch must be >= 1, got -3"),
    "stream_batch_huge": ("r.stream(10**15)", "MemoryError", "batch 1000000000000000: not enough memory"),
    "stream_batch_float": ("r.stream(2.5)", "TypeError", "incompatible function arguments"),
    "stream_bidirectional": ("rk.runtime.from_model(rk.GRU(3, 4, bidirectional=True)).stream(1)", "ValueError",
                             "a bidirectional model cannot stream"),
    "step_list": ("s = r.stream(2); same(s.step(x[:, 0].tolist()), r.stream(2).step(x[:, 0]))", "ok", ""),
    "step_float64_and_strided": ("s = r.stream(2); same(s.step(np.repeat(x[:, 0], 2, axis=1)[:, ::2]."
                                 "astype(np.float64)), r.stream(2).step(x[:, 0]))", "ok", ""),
    "step_unbatched_list": ("r.stream(1).step([0.5, 0.25, 1.0])", "ok", ""),
    "step_python_number": ("r.stream(1).step(0.5)", "ValueError",
                           "x_t has shape (), expected (batch, input_size) = (1, 3) or (3,)"),
    "step_numpy_scalar": ("r.stream(2).step(np.float32(0.5))", "ValueError",
                          "x_t has shape (), expected (batch, input_size) = (2, 3)"),
    "step_none": ("r.stream(2).step(None)", "TypeError", "x_t must be an array of numbers, got None"),
    "step_ragged": ("r.stream(2).step([[1.0, 2.0, 3.0], [1.0]])", "ValueError", "x_t is not an array of numbers"),
    "step_strings": ("r.stream(2).step(np.full((2, 3), 'a'))", "TypeError", "x_t must be real numbers"),
    "step_wrong_batch": ("r.stream(2).step(np.zeros((3, 3), np.float32))", "ValueError",
                         "x_t has shape (3, 3), expected (batch, input_size) = (2, 3)"),
    "step_wrong_features": ("r.stream(2).step(np.zeros((2, 4), np.float32))", "ValueError",
                            "x_t has shape (2, 4), expected (batch, input_size) = (2, 3)"),
    "step_sequence_not_a_step": ("r.stream(2).step(x)", "ValueError",
                                 "x_t has shape (2, 5, 3), expected (batch, input_size) = (2, 3)"),
    "step_nan_keeps_the_state": ("s = r.stream(2); s.step(x[:, 0]); a = np.array(x[:, 1]); a[1, 2] = np.nan\n"
                                 "    try:\n        s.step(a)\n    except ValueError as e:\n"
                                 "        assert s.steps == 1, s.steps\n        raise",
                                 "ValueError", "x_t[1, 2] is NaN: the stream's state would carry it"),
    "step_inf_saturates": ("r.stream(1).step([np.inf, -np.inf, 0.0])", "ok", ""),
    "step_ids_python_int": ("s = ids.stream(1); same(s.step(3), ids.stream(1).step(np.int64(3)))", "ok", ""),
    "step_ids_list": ("ids.stream(2).step([1, 12])", "ok", ""),
    "step_ids_as_floats": ("ids.stream(2).step([1.0, 2.0])", "TypeError",
                           "x_t must be integer token ids (the model starts with an Embedding), got dtype float64"),
    "step_ids_out_of_range": ("ids.stream(2).step([1, 13])", "ValueError",
                              "x_t[1] = 13 is out of range: token ids must be in 0..12"),
    "step_ids_negative": ("ids.stream(2).step([-1, 0])", "ValueError", "x_t[0] = -1 is out of range"),
    "step_ids_uint64_past_int64": ("ids.stream(1).step(np.array([2**63], np.uint64))", "ValueError", "out of range"),
    "step_ids_wrong_shape": ("ids.stream(2).step([[1], [2]])", "ValueError",
                             "x_t has shape (2, 1), expected (batch,) token ids = (2,)"),
    "step_after_the_runtime_is_gone": ("s = R.from_tensors(A, T).stream(2); import gc; gc.collect(); "
                                       "same(s.step(x[:, 0]), r.stream(2).step(x[:, 0]))", "ok", ""),
    "step_after_reset": ("s = r.stream(2); a = s.step(x[:, 0]); s.step(x[:, 1]); s.reset(); same(s.step(x[:, 0]), a)",
                         "ok", ""),
    # load
    "load_none": ("R.load(None)", "TypeError", "incompatible function arguments"),
    "load_nul_in_path": ("R.load('model\\x00.safetensors')", "ValueError", "path must not contain a NUL character"),
    "load_folder": ("R.load('.')", "ModelFileError", "not a regular file"),
    "load_missing": ("R.load('no_such_model.safetensors')", "ModelFileError", "cannot open the model file"),
    "load_device": ("R.load('/dev/zero')", "ModelFileError", "not a regular file"),
}


@pytest.fixture(scope="module")
def binding_outcomes() -> dict[str, tuple[str, str]]:
    return outcomes_of({k: v[0] for k, v in BINDING_CASES.items()}, setup=_SETUP)


@pytest.mark.parametrize("name", list(BINDING_CASES))
def test_binding_entry_points_refuse_bad_input_clearly(binding_outcomes: dict[str, tuple[str, str]], name: str) -> None:
    _, kind, message = BINDING_CASES[name]
    got_kind, got_message = binding_outcomes[name]
    assert (got_kind, message in got_message) == (kind, True), f"{got_kind}: {got_message}"


def test_from_tensors_with_a_ragged_list_does_not_crash() -> None:
    """py::array::ensure's null result for a ragged list, alone in its own process (the sweep above
    runs it among others)."""
    out = child("print(outcome(lambda: rk._core.Runtime32.from_tensors('{}', {'w': [[1.0], [1.0, 2.0]]})))")
    assert "ValueError" in out and "tensor 'w' is not an array of numbers" in out


# ---- 2. an architecture that claims more than the file holds ------------------------------

HUGE = ["num_layers_1e9", "num_layers_2_31", "num_layers_1e12", "hidden_12000", "hidden_1e12", "input_1e12",
        "linear_1e12_by_1e12", "embedding_1e12", "stack_of_1e9_after_an_embedding"]


@pytest.mark.parametrize("name", HUGE)
def test_a_huge_architecture_is_refused_at_once_without_allocating(tmp_path: Path, name: str) -> None:
    """A few KB claiming 2^31 layers, or a GRU hidden size of 12000, must neither hang a loader
    nor have it allocate what the architecture claims: both refuse in well under a second, in a
    process whose whole address space is 1 GiB (test_the_memory_limit_lets_a_real_model_load is
    the control)."""
    make, expected = FIXTURES[name]
    path = tmp_path / "huge.safetensors"
    path.write_bytes(make())
    out = child(f"""
import time
t0 = time.perf_counter()
r = [outcome(lambda: rk.load({str(path)!r})), outcome(lambda: rk.runtime.load({str(path)!r}))]
print(json.dumps([r, time.perf_counter() - t0]))
""", timeout=60)
    (python, runtime), seconds = json.loads(out)
    assert python[0] == "ValueError" and expected in python[1], python
    assert runtime[0] == "ModelFileError" and expected in runtime[1], runtime
    assert seconds < 5


def test_the_memory_limit_lets_a_real_model_load() -> None:
    """The control for the test above: the limit is far above what a valid file needs."""
    out = child("""
m = rk.Sequential(rk.Embedding(1000, 64), rk.LSTM(64, 256, num_layers=2), rk.Linear(256, 10))
import tempfile, os
with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, 'm.safetensors')
    rk.save(m, p)
    print(outcome(lambda: rk.load(p)), outcome(lambda: rk.runtime.load(p)))
""")
    assert out.count("'ok'") == 2, out


# ---- 3. the checksum ---------------------------------------------------------------------

@pytest.mark.parametrize("base", list(BASES))
def test_rk_save_writes_version_3_with_the_documented_checksum(base: str) -> None:
    header, body = model_files.split(saved(base))
    meta = header["__metadata__"]
    assert meta["format_version"] == "3"
    assert meta["sha256"] == model_files.digest(header, body, "3")
    assert meta["sha256"] != model_files.digest(header, body, "1")


def test_the_checksum_covers_what_decides_the_model(results: dict[str, dict[str, str]]) -> None:
    """Edits that keep the file's structure (a dtype, a shape, an option, a pooling layer, a name)
    are refused without a recomputed checksum; with one (the architecture's reader then sees
    them) they load as the model they now describe."""
    unsigned = [n for n in FIXTURES if n.endswith("_unsigned") and n.startswith(("dtype", "shape", "reset", "tanh",
                                                                                  "last", "batch", "tensor", "peep"))]
    assert len(unsigned) >= 7
    for name in unsigned:
        for loader in ("python", "runtime32"):
            assert "do not match the sha256 checksum" in results[name][loader], (name, results[name][loader])
    assert results["reset_after_signed"]["python"] == "ok"


def test_an_integer_tensor_is_refused_not_cast(tmp_path: Path) -> None:
    path = tmp_path / "i32.safetensors"
    path.write_bytes(FIXTURES["dtype_edit_signed"][0]())
    with pytest.raises(ValueError, match="tensor 'bias_ih_l0' has dtype I32, expected F32 or F64"):
        rk.load(path)


@pytest.mark.parametrize("name", ["lstm_proj_per_step", "embedding_gru_last"])
def test_version_1_files_written_before_version_2_still_load(name: str) -> None:
    path = TESTS / "cpp" / "data" / "v1" / f"{name}.safetensors"  # as rk.save wrote them then
    header, _ = model_files.split(path.read_bytes())
    assert header["__metadata__"]["format_version"] == "1"
    model, runtime = rk.load(path), rk.runtime.load(path)
    assert model.num_parameters() == runtime.num_parameters


def test_version_1_and_2_files_of_one_model_compute_the_same(tmp_path: Path) -> None:
    v1 = tmp_path / "v1.safetensors"
    v1.write_bytes(FIXTURES["version_1"][0]())
    v2 = tmp_path / "v2.safetensors"
    v2.write_bytes(saved("seq"))
    x = np.random.default_rng(1).integers(1, 10, (3, 6))
    np.testing.assert_array_equal(rk.load(v1).predict(x), rk.load(v2).predict(x))
    np.testing.assert_array_equal(rk.runtime.load(v1).predict(x), rk.runtime.load(v2).predict(x))


def test_both_loaders_check_the_documented_checksum(tmp_path: Path) -> None:
    """A file signed by tests/model_files.py (the format's description, not either loader's code)
    loads in both; the same file with one hex digit of its checksum changed loads in neither."""
    header, body = model_files.split(saved("seq"))
    header["__metadata__"]["sha256"] = ""
    good = tmp_path / "good.safetensors"
    good.write_bytes(model_files.join(model_files.sign(header, body), body))
    rk.load(good), rk.runtime.load(good)
    sha = header["__metadata__"]["sha256"]
    header["__metadata__"]["sha256"] = sha[:-1] + ("0" if sha[-1] != "0" else "1")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(model_files.join(header, body))
    for load in (rk.load, rk.runtime.load):
        with pytest.raises(ValueError, match="do not match the sha256 checksum"):
            load(bad)


# ---- 4. 5. 6. each item's files, loaded here in process where nothing can crash --------------

@pytest.mark.parametrize("name", [n for n in FIXTURES if "twice" in n])
def test_a_repeated_key_is_refused_by_both(tmp_path: Path, name: str) -> None:
    path = tmp_path / "twice.safetensors"
    path.write_bytes(FIXTURES[name][0]())
    for load in (rk.load, rk.runtime.load):
        with pytest.raises(ValueError, match="duplicate key"):
            load(path)


def test_non_finite_weights_are_refused_by_both_with_one_message(tmp_path: Path) -> None:
    for name in ("nan_weight", "inf_bias", "minus_inf_embedding", "nan_in_float64_model",
                 "beyond_float32_in_float32_model"):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(FIXTURES[name][0]())
        with pytest.raises(ValueError) as py:
            rk.load(path)
        with pytest.raises(rk.runtime.ModelFileError) as cpp:
            rk.runtime.load(path)
        assert str(py.value).split("invalid architecture: ")[1] == str(cpp.value).split(f"{path}: ")[1]


def test_a_float64_value_past_float32_is_refused_by_the_float32_runtime_only(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    path.write_bytes(FIXTURES["beyond_float32_in_float64_model"][0]())
    x = np.random.default_rng(2).standard_normal((2, 3, 3))  # (batch, steps, features): the runtime is batch-first
    np.testing.assert_allclose(rk.runtime.load(path, np.float64).predict(x), rk.load(path).predict(x.transpose(1, 0, 2)),
                               rtol=1e-12)
    with pytest.raises(rk.runtime.ModelFileError, match=r"'3.weight' has a value beyond float32's range \(element 1\)"):
        rk.runtime.load(path)


def test_non_utf8_in_the_architecture_is_a_model_file_error_saying_where(tmp_path: Path) -> None:
    path = tmp_path / "bytes.safetensors"
    data = FIXTURES["non_utf8_in_architecture"][0]()
    path.write_bytes(data)
    where = data.index(b"\xff") - 8  # in the header, which starts after the size field
    with pytest.raises(rk.runtime.ModelFileError, match=rf"invalid UTF-8 \(byte 0xff\) in a string at byte {where}\)"):
        rk.runtime.load(path)
    with pytest.raises(ValueError, match=rf"corrupt header \(invalid UTF-8 at byte {where}\)"):
        rk.load(path)


def test_nesting_100000_deep_is_refused_not_a_recursion_error(tmp_path: Path) -> None:
    for name in ("architecture_nested_100000", "header_nested_100000"):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(FIXTURES[name][0]())
        for load in (rk.load, rk.runtime.load):
            with pytest.raises(ValueError, match="nesting deeper than 64 arrays and objects"):
                load(path)


def test_a_missing_architecture_is_named(tmp_path: Path) -> None:
    path = tmp_path / "no_arch.safetensors"
    path.write_bytes(FIXTURES["no_architecture"][0]())
    for load in (rk.load, rk.runtime.load):
        with pytest.raises(ValueError, match="no architecture in the metadata"):
            load(path)


def test_python_json_reader_matches_the_limits_of_the_cpp_one() -> None:
    from rnnkit import _json

    assert _json.MAX_DEPTH == 64
    assert _json.loads(nest(64)) == json.loads(nest(64))
    with pytest.raises(ValueError, match="nesting deeper than 64"):
        _json.loads("[" * 65 + "]" * 65)
    assert _json.loads('["[[[[", "\\"[["]') == ["[[[[", '"[[']  # brackets in strings are text
    for text, why in [('{"a": 1, "a": 2}', "duplicate key"), ("NaN", "not a JSON value"), ("1e400", "out of range"),
                      ("1" + "0" * 400, "out of range"), ("1" * 5000, "out of range"), ('"\\ud800"', "lone surrogate"),
                      ("01", "Extra data"), ("[1,]", "Expecting value")]:
        with pytest.raises(ValueError, match=why):
            _json.loads(text)
    assert _json.loads("1e-400") == 0.0 and _json.loads("-0") == 0 and _json.loads('"\\ud83d\\ude00"') == "\U0001f600"


# ---- 7. fuzzing both loaders --------------------------------------------------------------

FUZZ_SAMPLE = 300  # CI runs tests/cpp/fuzz_loader over 3000 under AddressSanitizer (.ci/run)


@pytest.fixture(scope="module")
def fuzz_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    fuzz_files.write(folder, FUZZ_SAMPLE, seed=2026)
    return folder


def test_fuzzed_files_are_refused_or_accepted_by_both_loaders_alike(fuzz_folder: Path) -> None:
    results = fuzz_files.outcomes(sorted(fuzz_folder.iterdir()))
    assert len(results) == FUZZ_SAMPLE
    odd = {Path(r["path"]).name: why for r in results if (why := fuzz_files.disagreement(r))}
    assert not odd, odd
    accepted = sum(r["python"] == "ok" for r in results)
    assert 0.05 * FUZZ_SAMPLE < accepted < 0.5 * FUZZ_SAMPLE  # the mutations reach both outcomes
    # the mutations reach the checks behind the checksum, not only the checksum
    reasons = " ".join(r["runtime32"] for r in results)
    for part in ("sha256", "truncated", "duplicate key", "NaN or infinite", "tensors; the file has", "has shape",
                 "invalid UTF-8", "nesting deeper", "unknown option", "format version"):
        assert part in reasons, part


def test_the_cpp_fuzz_loader_survives_the_sample(fuzz_folder: Path, cpp_build: Path) -> None:
    exe = cpp_build / "tests" / "cpp" / "fuzz_loader"
    r = subprocess.run([str(exe), str(fuzz_folder), "10", "1024"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"{FUZZ_SAMPLE} files:" in r.stdout and "0 crashed, 0 hung, 0 over the memory bound, 0 other errors" in \
        r.stdout, r.stdout


def test_the_cpp_fuzz_loader_fails_a_load_over_its_memory_bound(tmp_path: Path, cpp_build: Path) -> None:
    """fuzz_loader is only as good as its bounds: a load over them fails the run (a valid file
    larger than the memory bound stands in for a loader that allocates too much)."""
    big = rk.Sequential(rk.Embedding(20000, 1024), rk.Linear(1024, 2))  # 80 MB of float32
    rk.save(big, tmp_path / "big.safetensors")
    exe = cpp_build / "tests" / "cpp" / "fuzz_loader"
    r = subprocess.run([str(exe), str(tmp_path), "10", "64"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "over the memory bound" in r.stdout, r.stdout


def test_the_fuzz_files_are_the_same_for_a_seed() -> None:
    files = fuzz_files.base_files()
    a, b = fuzz_files.generate(40, 5, files), fuzz_files.generate(40, 5, files)
    assert a == b and a != fuzz_files.generate(40, 6, files)
    assert len({kind for name, _ in fuzz_files.generate(400, 5, files) for kind in name.split("-", 2)[2].split("+")}) \
        == len(fuzz_files.MUTATIONS)


def test_a_disagreement_between_the_loaders_is_caught() -> None:
    """The comparison the tests above rely on, on made-up outcomes: only the documented
    differences pass."""
    ok, refused = "ok", "refused: f: tensor 'w' is missing"
    def r(py: str, r32: str, r64: str) -> dict[str, str]:
        return {"path": "f", "python": py, "runtime32": r32, "runtime64": r64}
    assert fuzz_files.disagreement(r(ok, ok, ok)) is None
    assert fuzz_files.disagreement(r(refused, refused, refused)) is None
    assert fuzz_files.disagreement(r(ok, refused, refused)) is not None
    assert fuzz_files.disagreement(r(refused, ok, ok)) is not None
    assert fuzz_files.disagreement(r(ok, refused, ok)) is not None
    assert fuzz_files.disagreement(r(ok, "refused: f: tensor 'w' has a value beyond float32's range (element 0)", ok)) \
        is None
    no_size = "refused: f: the model has no layer with a size (only Dropout)"
    assert fuzz_files.disagreement(r(ok, no_size, no_size)) is None
    assert fuzz_files.disagreement(r("error MemoryError: ", refused, refused)) is not None
    assert fuzz_files.disagreement(r("crashed", "crashed", "crashed")) is not None
