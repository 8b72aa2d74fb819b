"""Mutated model files, for fuzzing both loaders (rk.load and the C++ rnnkit::Model).

From a handful of valid models of every layer kind, saved by rk.save, ``generate(count,
seed)`` makes files each with one mutation (or a few): truncations at many lengths, bits
flipped in the header and the data, the header's size field, sizes, offsets, dtypes,
names and keys edited, the metadata and the architecture edited (options set to huge,
negative, fractional or mistyped values, layers swapped or repeated), keys repeated,
nesting deepened, bytes that are not UTF-8, NaN and infinite weights. Most edits are
re-signed (the checksum recomputed, tests/model_files.py) so that they reach the checks
behind the checksum. The same seed gives the same files.

``outcomes(paths)`` loads each file with rk.load and rk.runtime.load (float32 and
float64) in child processes under a memory limit and a time limit, and says what each
loader did: "ok", "refused: <message>" (a ValueError), or "error <type>: ..." (anything
else: a loader's bug), "crashed" or "hung".

    python tests/fuzz_files.py OUT_DIR [--count N] [--seed S]   # write the files (CI: for tests/cpp/fuzz_loader)
    python tests/fuzz_files.py OUT_DIR --compare                # and load each with both loaders: the counts
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import model_files  # noqa: E402


def bases() -> dict[str, Any]:
    """Small valid models of every layer kind and option (each file a few KB)."""
    import rnnkit as rk

    peep = {"peepholes": True} if "peepholes" in inspect.signature(rk.LSTM).parameters else {}
    return {
        "rnn_relu_2layers": rk.RNN(3, 4, num_layers=2, nonlinearity="relu", seed=1),
        "lstm_proj_bidir": rk.LSTM(3, 5, proj_size=2, bidirectional=True, batch_first=True, seed=2),
        "lstm_peepholes": rk.LSTM(2, 3, seed=3, **peep),
        "gru_no_bias_reset_before": rk.GRU(3, 4, reset_after=False, bias=False, seed=4),
        "seq_embedding_gru_last": rk.Sequential(rk.Embedding(10, 4, padding_idx=0, seed=5),
                                                rk.GRU(4, 5, batch_first=True, seed=6), rk.LastStep(),
                                                rk.Dropout(0.1), rk.Linear(5, 2, seed=7)),
        "seq_linear_lstm_mean_f64": rk.Sequential(rk.Linear(3, 4, seed=8, dtype=np.float64),
                                                  rk.LSTM(4, 4, seed=9, dtype=np.float64), rk.MeanPool(),
                                                  rk.Linear(4, 1, seed=10, dtype=np.float64)),
        "linear": rk.Linear(3, 2, seed=11),
        "embedding": rk.Embedding(6, 3, seed=12),
    }


def base_files() -> dict[str, bytes]:
    import rnnkit as rk

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in bases().items():
            path = Path(tmp) / f"{name}.safetensors"
            rk.save(model, path)
            out[name] = path.read_bytes()
    return out


# ---- mutations: each takes (file bytes, rng) and gives the mutated bytes -------------------

Rng = np.random.Generator
INTERESTING = [0, 1, -1, 2, 3, 12000, 2**31, 2**32, 10**9, 10**12, 10**13, 2**53 + 1, 2**63, 2**64, 10**400,
               1.5, 3.0, -0.0, 1e-400, 1e308, "3", True, False, None, [], {}, [[[]]]]


def _pick(rng: Rng, items: list) -> Any:
    return items[int(rng.integers(len(items)))]


def _parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    return model_files.split(data)


def _signed(header: dict[str, Any], body: bytes, rng: Rng, p: float = 0.8) -> bytes:
    """The file, its checksum recomputed (with probability p) when the header still allows it."""
    if rng.random() < p:
        try:
            header = model_files.sign(header, body)
        except Exception:  # an edit that leaves no checksum to compute: written as it is
            pass
    return model_files.join(json.dumps(header), body)


def truncate(data: bytes, rng: Rng) -> bytes:
    n = 8 + int.from_bytes(data[:8], "little")
    cut = _pick(rng, [int(rng.integers(len(data))), int(rng.integers(9)), n + int(rng.integers(-3, 4)),
                      len(data) - 1 - int(rng.integers(8))])
    return data[:max(0, min(cut, len(data) - 1))]


def flip_header(data: bytes, rng: Rng) -> bytes:
    n = 8 + int.from_bytes(data[:8], "little")
    out = bytearray(data)
    out[int(rng.integers(n))] ^= 1 << int(rng.integers(8))
    return bytes(out)


def flip_data(data: bytes, rng: Rng) -> bytes:
    n = 8 + int.from_bytes(data[:8], "little")
    out = bytearray(data)
    if len(out) > n:
        out[int(rng.integers(n, len(out)))] ^= 1 << int(rng.integers(8))
    return bytes(out)


def flip_many(data: bytes, rng: Rng) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(2, 9))):
        out[int(rng.integers(len(out)))] ^= 1 << int(rng.integers(8))
    return bytes(out)


def size_field(data: bytes, rng: Rng) -> bytes:
    n = int.from_bytes(data[:8], "little")
    v = _pick(rng, [0, 1, n - 1, n + 1, len(data) - 8, len(data), 100_000_001, 2**63, 2**64 - 1, 2**32 + n])
    return v.to_bytes(8, "little") + data[8:]


def _with_header_text(data: bytes, change: Callable[[str], str]) -> bytes:
    n = int.from_bytes(data[:8], "little")
    text = data[8:8 + n].decode()
    return model_files.join(change(text).encode("utf-8", "surrogatepass"), data[8 + n:])


def bad_utf8(data: bytes, rng: Rng) -> bytes:
    junk = _pick(rng, [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x28\xa1", b"\x80"])
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n]
    quotes = [i for i, c in enumerate(header) if c == ord('"')]
    at = _pick(rng, quotes) + 1 if quotes else 0
    return model_files.join(header[:at] + junk + header[at:], data[8 + n:])


def _tensor_names(header: dict[str, Any]) -> list[str]:
    return [k for k in header if k != "__metadata__"]


def edit_shape(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    info = header[_pick(rng, _tensor_names(header))]
    shape = list(info["shape"])
    how = int(rng.integers(4))
    if how == 0 and shape:
        shape[int(rng.integers(len(shape)))] = _pick(rng, INTERESTING)
    elif how == 1:
        shape.append(_pick(rng, [1, 0, 2]))
    elif how == 2 and shape:
        shape = shape[::-1] if rng.random() < 0.5 else shape[:-1]
    else:
        shape = _pick(rng, [[], None, "2", 3, [[2]]])
    info["shape"] = shape
    return _signed(header, body, rng)


def edit_offsets(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    names = _tensor_names(header)
    info = header[_pick(rng, names)]
    how = int(rng.integers(3))
    if how == 0:
        info["data_offsets"][int(rng.integers(2))] = _pick(rng, INTERESTING + [len(body), len(body) + 4])
    elif how == 1 and len(names) > 1:
        other = header[_pick(rng, names)]
        info["data_offsets"], other["data_offsets"] = other["data_offsets"], info["data_offsets"]
    else:
        info["data_offsets"] = _pick(rng, [[0], [0, 0, 0], None, "0,4", [4, 0]])
    return _signed(header, body, rng)


def edit_dtype(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    info = header[_pick(rng, _tensor_names(header))]
    info["dtype"] = _pick(rng, ["F64", "F32", "I32", "I64", "U32", "F16", "BF16", "BOOL", "U8", "I8", "F8_E4M3",
                                "C64", "f32", "XYZ", "", 32, None])
    return _signed(header, body, rng)


def edit_keys(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    names = _tensor_names(header)
    name = _pick(rng, names)
    how = int(rng.integers(6))
    if how == 0:
        header[name + _pick(rng, ["_", "x", "0"])] = header.pop(name)
    elif how == 1:
        del header[name]
    elif how == 2:
        header["extra"] = dict(header[name])
    elif how == 3:
        del header[name][_pick(rng, ["dtype", "shape", "data_offsets"])]
    elif how == 4:
        header[name]["note"] = _pick(rng, INTERESTING)
    else:
        header[_pick(rng, ["__metadata", "__METADATA__", "metadata"])] = header.pop("__metadata__")
    return _signed(header, body, rng)


def edit_metadata(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    meta = header["__metadata__"]
    how = int(rng.integers(5))
    if how == 0:
        meta["format_version"] = _pick(rng, ["1", "2", "4", "", "2.0", "02", " 2", "１"])
    elif how == 1:
        del meta[_pick(rng, list(meta))]
    elif how == 2:
        meta["sha256"] = meta["sha256"][::-1]
    elif how == 3:
        meta[_pick(rng, list(meta))] = _pick(rng, [3, None, [], {}, True])
    else:
        meta["format"] = _pick(rng, ["pt", "RNNKIT", ""])
    return _signed(header, body, rng, p=0.5)


def _layers(arch: Any) -> list[dict[str, Any]]:
    return arch["config"]["layers"] if arch.get("class") == "Sequential" else [arch]


def edit_architecture(data: bytes, rng: Rng) -> bytes:
    def change(arch: Any) -> Any:
        layers = _layers(arch)
        layer = _pick(rng, layers)
        cfg = layer["config"]
        how = int(rng.integers(8))
        if how <= 2 and cfg:
            cfg[_pick(rng, list(cfg))] = _pick(rng, INTERESTING + ["float64", "relu", "tanh"])
        elif how == 3 and cfg:
            del cfg[_pick(rng, list(cfg))]
        elif how == 4:
            cfg[_pick(rng, ["peephole", "seed", "activation", "num_layers", "reset_after"])] = _pick(rng, INTERESTING)
        elif how == 5:
            layer["class"] = _pick(rng, ["RNN", "LSTM", "GRU", "Linear", "Embedding", "LastStep", "MeanPool",
                                         "Dropout", "Sequential", "Conv1d"])
        elif how == 6 and len(layers) > 1:
            i, j = rng.choice(len(layers), 2, replace=False)
            layers[i], layers[j] = layers[j], layers[i]
        elif len(layers) > 1:
            layers.insert(int(rng.integers(len(layers) + 1)), dict(_pick(rng, layers)))
        return None

    data = model_files.edit_architecture(data, change)
    if rng.random() < 0.2:  # unsigned: the checksum must catch it
        header, body = _parts(data)
        header["__metadata__"]["sha256"] = "0" * 64
        data = model_files.join(header, body)
    return data


def claim_more(data: bytes, rng: Rng) -> bytes:
    """An architecture claiming far more than the file holds (re-signed): layers, sizes."""
    def change(arch: Any) -> None:
        sized = [layer["config"] for layer in _layers(arch)
                 if any(k in layer["config"] for k in ("num_layers", "hidden_size", "in_features", "num_embeddings"))]
        if not sized:
            return
        cfg = _pick(rng, sized)
        keys = [k for k in ("num_layers", "hidden_size", "input_size", "proj_size", "in_features", "out_features",
                            "num_embeddings", "embedding_dim") if k in cfg]
        for key in rng.choice(keys, int(rng.integers(1, len(keys) + 1)), replace=False):
            cfg[str(key)] = _pick(rng, [10**9, 2**31, 2**32 - 1, 10**12, 12000, 2**40, cfg[str(key)] + 1])

    return model_files.edit_architecture(data, change)


def edit_architecture_text(data: bytes, rng: Rng) -> bytes:
    def change(arch: Any) -> str:
        text = json.dumps(arch)
        how = int(rng.integers(6))
        if how == 0:  # a key twice, the second value different
            for key in ("reset_after", "bias", "hidden_size", "class", "config", "layers", "nonlinearity",
                        "dropout"):
                at = text.find(f'"{key}": ')
                if at >= 0:
                    return text[:at] + f'"{key}": {json.dumps(_pick(rng, INTERESTING[:12]))}, ' + text[at:]
            return text
        if how == 1:  # nesting, near the limit or far past it
            depth = int(_pick(rng, [55, 59, 60, 61, 64, 65, 1000, 100000]))
            return text.replace('"dropout": ', '"dropout": ' + "[" * depth + "0" + "]" * depth + ", \"x\": ", 1) \
                if rng.random() < 0.5 else "[" * depth + text + "]" * depth
        if how == 2:
            number = _pick(rng, ["1e400", "-1e400", "1e-400", "-0", "01", "1.", ".5", "NaN", "Infinity", "1e999999",
                                 "4.9e-324", "1" * 400])
            return text.replace("0.0", number, 1) if "0.0" in text else text.replace("1", number, 1)
        if how == 3:
            return text.replace('"', '"\\ud800', 1) if rng.random() < 0.5 else text[:-1] + ', "\\udc00x": 1}'
        if how == 4:
            return text + _pick(rng, ["", " ", "x", "}", "\n", "\x00"])
        return text.replace(", ", ",\t", 3)

    return model_files.edit_architecture(data, change)


def edit_header_text(data: bytes, rng: Rng) -> bytes:
    def change(text: str) -> str:
        how = int(rng.integers(5))
        if how == 0:  # a second __metadata__, or a tensor twice
            at = text.find('"__metadata__"')
            if rng.random() < 0.5:
                return text[:-1] + ',"__metadata__":{"format":"rnnkit"}}'
            end = text.find("}", text.find("data_offsets", at))
            first = text.find('"', text.find("},", at) + 1)
            entry = text[first:end + 1]
            return text[:-1] + "," + entry + "}"
        if how == 1:
            depth = int(_pick(rng, [60, 62, 63, 64, 65, 100000]))
            return text[:-1] + ',"deep":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"x":' + "[" * depth + \
                "]" * depth + "}}"
        if how == 2:
            return text.replace('"shape":[', '"shape":[' + _pick(rng, ["1e400,", "-0,", "01,", "1.0,", "2e0,"]), 1)
        if how == 3:
            field = _pick(rng, ['"dtype":"F32",', '"format":"rnnkit",'])
            return text.replace(field, field + field, 1)
        return text.replace('"F32"', '"F\\u0033\\u0032"', 1)

    return _with_header_text(data, change)


def edit_values(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    name = _pick(rng, _tensor_names(header))
    info = header[name]
    begin, end = info["data_offsets"]
    dtype = np.float32 if info["dtype"] == "F32" else np.float64
    values = np.frombuffer(body[begin:end], dtype=dtype).copy()
    if values.size == 0:
        return data
    values[int(rng.integers(values.size))] = _pick(rng, [np.nan, np.inf, -np.inf, 1e-45, 3e38, -0.0])
    return _signed(header, body[:begin] + values.tobytes() + body[end:], rng, p=0.9)


def widen(data: bytes, rng: Rng) -> bytes:
    """A tensor rewritten as float64 (the header's offsets laid out again), sometimes with a
    value float32 cannot hold."""
    header, body = _parts(data)
    entries = model_files.tensors(header, body)
    arrays: dict[str, np.ndarray] = {}
    for name, dtype, shape, raw in entries:
        arrays[name] = np.frombuffer(raw, dtype=np.float32 if dtype == "F32" else np.float64).reshape(shape)
    name = _pick(rng, list(arrays))
    a = arrays[name].astype(np.float64)
    if a.size and rng.random() < 0.5:
        a.reshape(-1)[int(rng.integers(a.size))] = _pick(rng, [1e300, -1e39, 3.5e38, 3.4e38])
    arrays[name] = a
    return model_files.write(arrays, header["__metadata__"])


def version_1(data: bytes, rng: Rng) -> bytes:
    header, body = _parts(data)
    header["__metadata__"]["format_version"] = "1"
    return model_files.join(model_files.sign(header, body), body)


MUTATIONS: dict[str, Callable[[bytes, Rng], bytes]] = {
    f.__name__: f for f in (truncate, flip_header, flip_data, flip_many, size_field, bad_utf8, edit_shape,
                            edit_offsets, edit_dtype, edit_keys, edit_metadata, edit_architecture, claim_more,
                            edit_architecture_text, edit_header_text, edit_values, widen, version_1)
}


def generate(count: int, seed: int = 0, files: Optional[dict[str, bytes]] = None) -> list[tuple[str, bytes]]:
    """``count`` mutated files, (name, bytes): the same seed gives the same files. One in
    eight is mutated twice, and a version-1 copy of a base is mutated like the rest."""
    files = files or base_files()
    rng = np.random.default_rng(seed)
    names, kinds = list(files), list(MUTATIONS)
    out = []
    for i in range(count):
        base = names[i % len(names)]
        data = files[base]
        applied = []
        for _ in range(2 if rng.random() < 0.125 else 1):
            kind = kinds[int(rng.integers(len(kinds)))]
            try:
                data = MUTATIONS[kind](data, rng)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError, UnicodeDecodeError, RecursionError):
                continue  # this mutation does not apply to this (already mutated) file
            applied.append(kind)
        out.append((f"{i:05d}-{base}-{'+'.join(applied) or 'none'}", data))
    return out


def write(out: Path, count: int, seed: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in generate(count, seed):
        path = out / f"{name}.safetensors"
        path.write_bytes(data)
        paths.append(path)
    return paths


# ---- both loaders over the files, in child processes -----------------------------------

_CHILD = r"""
import json, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
import rnnkit as rk
loaders = {"python": rk.load, "runtime32": lambda p: rk.runtime.load(p, np.float32),
           "runtime64": lambda p: rk.runtime.load(p, np.float64)}
with open(sys.argv[2]) as f:
    paths = json.load(f)
for path in paths:
    out = {"path": path}
    for name, load in loaders.items():
        try:
            load(path)
            out[name] = "ok"
        except ValueError as e:
            out[name] = "refused: " + str(e)
        except BaseException as e:
            out[name] = "error " + type(e).__name__ + ": " + str(e)[:300]
    print(json.dumps(out), flush=True)
"""


def outcomes(paths: list[Path], per_file_s: float = 30.0, memory: int = 2 << 30) -> list[dict[str, str]]:
    """What each loader did with each file, in order (see the module's docstring). A child
    process loads the files one after another; one that dies or stops answering is marked
    "crashed" or "hung" for the file it was on, and a new child goes on with the next."""
    results: list[dict[str, str]] = []
    todo = [str(p) for p in paths]
    while todo:
        # the paths go in a file, not down stdin: a pipe full both ways would block both processes
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(todo, f)
        try:
            with subprocess.Popen([sys.executable, "-c", _CHILD, str(memory), f.name], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True) as proc:
                assert proc.stdout
                done = 0
                while done < len(todo):
                    ready, _, _ = select.select([proc.stdout], [], [], per_file_s + (30 if done == 0 else 0))
                    line = proc.stdout.readline() if ready else None
                    if not line:
                        what = "hung" if line is None else "crashed"
                        proc.kill()
                        results.append({"path": todo[done], **{k: what for k in ("python", "runtime32", "runtime64")}})
                        done += 1
                        break
                    results.append(json.loads(line))
                    done += 1
        finally:
            os.unlink(f.name)
        todo = todo[done:]
    return results


# The refusals by design of one loader only (docs/cpp.md): the runtime must know its input's
# size (Python runs a lone Dropout or a pooling layer first on any features), and a float32
# runtime cannot hold a float64 model's values past float32's range.
RUNTIME_ONLY = ("the model has no layer with a size", "a pooling layer needs a sequence before it")
RUNTIME32_ONLY = ("beyond float32's range",)


def disagreement(r: dict[str, str]) -> Optional[str]:
    """Why the loaders' outcomes for one file are not the same, or None."""
    for name in ("python", "runtime32", "runtime64"):
        if not (r[name] == "ok" or r[name].startswith("refused: ")):
            return f"{name}: {r[name]}"
    py, r64, r32 = (r[k] == "ok" for k in ("python", "runtime64", "runtime32"))
    if py != r64 and not (py and any(m in r["runtime64"] for m in RUNTIME_ONLY)):
        return f"rk.load: {r['python']}; runtime64: {r['runtime64']}"
    if r32 != r64 and not (r64 and any(m in r["runtime32"] for m in RUNTIME32_ONLY)):
        return f"runtime64: {r['runtime64']}; runtime32: {r['runtime32']}"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="load each file with both loaders and count")
    args = parser.parse_args()
    paths = write(args.out, args.count, args.seed)
    print(f"wrote {len(paths)} files to {args.out}")
    if args.compare:
        results = outcomes(paths)
        counts = {k: sum(r["python"] == k for r in results) for k in ("crashed", "hung")}
        accepted = sum(r["python"] == "ok" and r["runtime32"] == "ok" for r in results)
        odd = [(r["path"], why) for r in results if (why := disagreement(r))]
        print(f"{len(results)} files: {accepted} accepted by both, {counts['crashed']} crashed, {counts['hung']} hung, "
              f"{len(odd)} accepted by one loader only or answered other than ValueError")
        for path, why in odd[:50]:
            print(f"  {path}: {why}")


if __name__ == "__main__":
    main()
