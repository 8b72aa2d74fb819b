"""rnnkit against PyTorch 2.13 (CPU) and ONNX Runtime, measured side by side in one run.

    pip install ".[bench]"
    python benchmarks/bench.py                      # threads 1 and 2, every case
    python benchmarks/bench.py --threads 1 --cases inference --sizes 128 --out /tmp/run/results.json
    python benchmarks/bench.py --cases precision --precision int8,bf16 --out /tmp/lowp/results.json

A run writes results.json (--out; benchmarks/results.json by default), then benchmarks/report.py
turns it into RESULTS.md and ratios.png beside it (the plot needs matplotlib; --no-plot skips it),
and prints the tables. `python benchmarks/report.py [results.json]` writes them again from a file.

Each library runs in fresh worker processes of its own, one per thread count and
size, with that many threads: no other library's thread pool is in the process
(ONNX Runtime's and OpenBLAS's idle threads keep spinning for tens of
milliseconds after a call, and on 2 cores they take a core from whatever runs
next). The three libraries' processes for a size run back to back, in an order
rotated from size to size. All three load the same weights and inputs, drawn
with numpy from fixed seeds. A time is the median of --repeats runs after
warm-up in one process; the whole set of processes runs --rounds times, and each
library's time for a case is the lowest of its rounds' medians: a neighbour on a
shared machine slows whatever runs at that moment (on these 2-core machines a
library's 2-thread times moved by up to 1.4x between back-to-back runs), and the
lowest is the least disturbed.
GFLOP/s counts the matrix products only: 2·T·B·G·H·(I + H) per direction for a
forward pass, three times that for a training step (forward, input gradient,
weight gradient). "peak" is a 2048³ float32 GEMM through numpy (OpenBLAS),
measured in a worker of its own before each thread count's cases: the machine's
practical peak. Ratios are the other library's time over rnnkit's (> 1: rnnkit
is faster).

Cases: inference and training steps (B=64, T=100, input = hidden = --sizes,
RNN tanh / LSTM / GRU, float32); variable lengths (uniform in 10..100, packed
sequences in PyTorch; inference, and training steps whose backward takes the
padded output's gradient); streaming (batch 1, input 1, one step per call: the C++
Stream::step through examples/cpp/stream_latency, built here with CMake, and
model.stream(1).step from Python, against PyTorch's LSTMCell/GRUCell, on the
first thread count only); peak RSS of one LSTM training step (B=64, T=100,
H=512), each library in its own process.

Reduced precision (--precision int8,bf16, default none; `--cases precision` runs these alone): the
inference case's cells, sizes, weights and inputs, one forward each, timed as above, with the largest
|out - PyTorch float32 out| over the output sequence (the float32 PyTorch output, computed once per
run by a worker of its own, is every library's reference). Each library's float32 forward is timed
beside them. ONNX Runtime int8: bench's ONNX graph through onnxruntime.quantization.quantize_dynamic
(QInt8, per-tensor), which makes an LSTM com.microsoft's DynamicQuantizeLSTM and leaves the GRU and
RNN operators float32: those are "n/a". PyTorch int8: torch.ao.quantization.quantize_dynamic (qint8
weights) on a container holding the layer, as it swaps children only; it has dynamic LSTM and GRU
modules and no RNN (n/a). PyTorch bf16: torch.autocast("cpu", dtype=torch.bfloat16) around the float
layer; the matrix products' dtypes are checked to be bfloat16 (an LSTM runs oneDNN's bf16 RNN layer;
RNN and GRU their per-step addmm in bf16; GRU's output stays float32, its state update mixing in the
float32 initial state). rnnkit: rk.quantize(layer, "int8" / "bf16"), recorded "missing" where rnnkit
has no rk.quantize. The rows go to results.json's "precision" list, apart from the float tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
B, T = 64, 100  # batch and steps of the inference, training and lengths cases


def timeit(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def gemm_peak(repeats: int) -> float:
    import numpy as np

    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    b = a.T.copy()
    for _ in range(2):
        a @ b
    best = float("inf")  # a peak is the best the machine does: the fastest of 3x the repeats,
    for _ in range(3 * repeats):  # not a median, which a busy spell of a shared machine drags down
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def onnx_model(cell: str, state_dict: dict, I: int, H: int) -> Any:
    """An ONNX model of one ONNX LSTM/GRU/RNN operator with PyTorch's weights (inputs X (T, B, I) and lens)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    G = GATES[cell]
    w, r = state_dict["weight_ih_l0"], state_dict["weight_hh_l0"]
    bias = np.concatenate([state_dict["bias_ih_l0"], state_dict["bias_hh_l0"]])
    # ONNX gate orders: LSTM i,o,f,c (PyTorch i,f,g,o); GRU z,r,h (PyTorch r,z,n)
    order = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}[cell]

    def reorder(m: np.ndarray) -> np.ndarray:
        blocks = np.split(m, G, axis=0)
        return np.concatenate([blocks[k] for k in order], axis=0)

    bias = np.concatenate([reorder(b) for b in np.split(bias, 2)])
    inits = [numpy_helper.from_array(reorder(w)[None].astype(np.float32), "W"),
             numpy_helper.from_array(reorder(r)[None].astype(np.float32), "R"),
             numpy_helper.from_array(bias[None].astype(np.float32), "B")]
    attrs = {"hidden_size": H}
    if cell == "GRU":
        attrs["linear_before_reset"] = 1
    if cell == "RNN":
        attrs["activations"] = ["Tanh"]
    node = helper.make_node(cell, ["X", "W", "R", "B", "lens"], ["Y", "Y_h"], **attrs)
    graph = helper.make_graph(
        [node], "rnn",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", I]),
         helper.make_tensor_value_info("lens", TensorProto.INT32, ["B"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
        inits)
    opsets = [helper.make_opsetid("", 14)]
    # the oldest IR version that opset 14 needs, not the newest onnx knows: an onnx newer
    # than the installed onnxruntime writes an IR version the runtime refuses
    return helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))


def onnx_session(cell: str, state_dict: dict, I: int, H: int, threads: int, model: Any = None) -> Any:
    """An ONNX Runtime session running one ONNX LSTM/GRU/RNN operator with PyTorch's weights (onnx_model's
    graph, or the model given: its int8 form)."""
    import onnxruntime as ort

    model = onnx_model(cell, state_dict, I, H) if model is None else model
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def onnx_int8(model: Any) -> Any:
    """onnx_model's graph through ONNX Runtime's dynamic quantization (int8 weights): an LSTM becomes
    com.microsoft's DynamicQuantizeLSTM; GRU and RNN operators it leaves float (no quantized kernel)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to run its pre-processing (shape inference) first
    with tempfile.TemporaryDirectory() as tmp:
        quantize_dynamic(model, Path(tmp) / "int8.onnx", weight_type=QuantType.QInt8)
        return onnx.load(str(Path(tmp) / "int8.onnx"))


def init_weights(cell: str, I: int, H: int, seed: int) -> dict:
    """One layer's weights, PyTorch's names and initialisation (uniform in +-1/sqrt(H)), from numpy:
    every library's worker loads the same values without importing another library."""
    import numpy as np

    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1.0 / H**0.5
    shapes = {"weight_ih_l0": (G * H, I), "weight_hh_l0": (G * H, H), "bias_ih_l0": (G * H,), "bias_hh_l0": (G * H,)}
    return {name: rng.uniform(-k, k, shape).astype(np.float32) for name, shape in shapes.items()}


def worker(args: argparse.Namespace) -> list[dict]:
    """One library's times for every case of one thread count (a fresh process: no other library's
    thread pool is there to compete for the cores)."""
    import numpy as np

    lib, n = args.lib, args.threads[0]
    if lib == "peak":
        return [{"case": "peak", "gflops": gemm_peak(args.repeats)}]
    if lib == "reference":
        return reference_outputs(args)
    if lib == "rnnkit":
        import rnnkit as rk
        rk.set_num_threads(n)
    else:
        import torch
        torch.set_num_threads(n)
    # OpenBLAS's pools (numpy's, and scipy-openblas's when rnnkit plugs it in) spin for about 0.1 s
    # after start-up; on 2 cores that takes a core from the first case's first runs.
    time.sleep(0.5)
    rows: list[dict] = []

    def record(case: str, cell: str, size: int, ms: float, **extra: Any) -> None:
        rows.append({"case": case, "cell": cell, "size": size, "ms": ms, **extra})
        print(lib, json.dumps(rows[-1]), file=sys.stderr, flush=True)

    table = any(c in args.cases for c in ("inference", "training", "lengths"))
    for size in args.sizes if table else []:
        for c, cell in enumerate(("RNN", "LSTM", "GRU")):
            I = H = size
            sd = init_weights(cell, I, H, seed=c)
            data = np.random.default_rng(100 + c)
            x = data.standard_normal((T, B, I)).astype(np.float32)
            lengths = data.integers(10, 101, size=B)
            go = np.ones((T, B, H), np.float32)
            if lib == "rnnkit":
                rm = getattr(rk, cell)(I, H)
                rm.load_state_dict(sd)

                def rnnkit_step(lens: Any = None) -> None:  # one training step (call rm.train() first)
                    rm(x, lengths=lens)
                    rm.backward(go)
            elif lib == "torch":
                tm = getattr(torch.nn, cell)(I, H)
                tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
                xt = torch.from_numpy(x)
                xg, got = xt.clone().requires_grad_(True), torch.from_numpy(go)  # training's input and dL/dout
            if "inference" in args.cases:
                if lib == "rnnkit":
                    rm.eval()
                    record("inference", cell, size, timeit(lambda: rm(x), args.repeats))
                elif lib == "torch":
                    with torch.no_grad():
                        record("inference", cell, size, timeit(lambda: tm(xt), args.repeats))
                else:
                    sess = onnx_session(cell, sd, I, H, n)
                    feed = {"X": x, "lens": np.full(B, T, dtype=np.int32)}
                    record("inference", cell, size, timeit(lambda: sess.run(None, feed), args.repeats))
            if "training" in args.cases and lib != "onnxruntime":
                if lib == "rnnkit":
                    rm.train()
                    step = rnnkit_step
                else:
                    def step() -> None:
                        out, _ = tm(xg)
                        out.backward(got)
                record("training", cell, size, timeit(step, args.repeats))
            if "lengths" in args.cases and lib != "onnxruntime":
                frac = float(lengths.sum() / (T * B))
                if lib == "rnnkit":
                    rm.eval()
                    record("lengths-inference", cell, size, timeit(lambda: rm(x, lengths=lengths), args.repeats),
                           rnnkit_padded_ms=timeit(lambda: rm(x), args.repeats), real_fraction=frac)
                    rm.train()
                    record("lengths-training", cell, size, timeit(lambda: rnnkit_step(lengths), args.repeats),
                           rnnkit_padded_ms=timeit(rnnkit_step, args.repeats), real_fraction=frac)
                else:
                    def packed(inp: Any) -> Any:
                        return torch.nn.utils.rnn.pack_padded_sequence(inp, torch.from_numpy(lengths),
                                                                       enforce_sorted=False)
                    with torch.no_grad():
                        record("lengths-inference", cell, size, timeit(lambda: tm(packed(xt)), args.repeats))

                    def packed_step() -> None:  # the padded output's gradient, as rnnkit's backward takes it
                        out, _ = tm(packed(xg))
                        torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)[0].backward(got)
                    record("lengths-training", cell, size, timeit(packed_step, args.repeats))

    if "streaming" in args.cases and lib != "onnxruntime":
        xs = np.random.default_rng(0).standard_normal((1, 1)).astype(np.float32)
        steps, state = 2000, {"h": None}
        for cell in ("LSTM", "GRU"):
            for H in (8, 16, 32, 64, 128):
                if lib == "rnnkit":
                    stream = getattr(rk, cell)(1, H, batch_first=True).stream(1)

                    def steps_fn() -> None:
                        for _ in range(steps):
                            stream.step(xs)
                else:
                    tcell, xst = getattr(torch.nn, cell + "Cell")(1, H), torch.from_numpy(xs)
                    state["h"] = None

                    def steps_fn() -> None:
                        with torch.no_grad():
                            for _ in range(steps):
                                state["h"] = tcell(xst, state["h"])
                record("streaming-python", cell, H, timeit(steps_fn, max(3, args.repeats // 3)) * 1e3 / steps,
                       unit="us per step")
    if "precision" in args.cases:
        rows += precision_worker(args)
    return rows


PRECISIONS = ("int8", "bf16")  # --precision's values; every precision case also times float32 ("f32")
QUANTIZED_TORCH = "torch.ao.nn.quantized.dynamic"  # where quantize_dynamic's int8 LSTM and GRU live


def reference_outputs(args: argparse.Namespace) -> list[dict]:
    """The float32 PyTorch output sequence of every precision case, saved for the precision workers
    (args.ref_dir/CELL-SIZE.npy): every library's max error is against the same float32 output."""
    import numpy as np
    import torch

    for size in args.sizes:
        for c, cell in enumerate(("RNN", "LSTM", "GRU")):
            sd = init_weights(cell, size, size, seed=c)
            x = np.random.default_rng(100 + c).standard_normal((T, B, size)).astype(np.float32)
            tm = getattr(torch.nn, cell)(size, size)
            tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
            with torch.no_grad():
                np.save(Path(args.ref_dir) / f"{cell}-{size}.npy", tm(torch.from_numpy(x))[0].numpy())
    return []


def bf16_matmul_dtypes(fn: Callable[[], Any]) -> list[str]:
    """The dtypes of the matrix products one call of fn() dispatches (under autocast: bfloat16 where it
    really runs in bf16), seen by a dispatch mode below autocast."""
    from torch.utils._python_dispatch import TorchDispatchMode

    found: set = set()

    class Seen(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            name = func.overloadpacket.__name__
            if name in ("mm", "addmm", "bmm", "linear", "mkldnn_rnn_layer"):
                found.add(f"{name}:{args[1].dtype}".replace("torch.", ""))
            return func(*args, **(kwargs or {}))

    with Seen():
        fn()
    return sorted(found)


def precision_worker(args: argparse.Namespace) -> list[dict]:
    """One library's reduced-precision inference cases of one thread count: float32 and each of --precision,
    on the inference case's weights and inputs (B=64, T=100, input = hidden), each with its time and the
    largest |out - PyTorch float32 out| over the output sequence. A case the library has no path for is
    recorded "n/a" with the reason; rnnkit's, before rk.quantize exists, "missing"."""
    import warnings

    import numpy as np

    lib, n = args.lib, args.threads[0]
    if lib == "rnnkit":
        import rnnkit as rk
    else:
        import torch
    rows: list[dict] = []

    def record(cell: str, size: int, precision: str, run: Any, to_numpy: Callable[[Any], Any] = np.asarray,
               **extra: Any) -> None:
        """run: the forward to time (returns the output sequence, to_numpy makes it an array), or a status."""
        if callable(run):
            ref = np.load(Path(args.ref_dir) / f"{cell}-{size}.npy")
            out = np.asarray(to_numpy(run()), dtype=np.float32)
            err = float(np.max(np.abs(out - ref)))
            row = {"ms": timeit(run, args.repeats), "max_err": err, "status": "ok"}
        else:
            status, reason = run
            row = {"ms": None, "max_err": None, "status": status, "note": reason}
        rows.append({"case": "precision", "cell": cell, "size": size, "lib": lib, "precision": precision,
                     **row, **extra})
        print(lib, json.dumps(rows[-1]), file=sys.stderr, flush=True)

    for size in args.sizes:
        for c, cell in enumerate(("RNN", "LSTM", "GRU")):
            I = H = size
            sd = init_weights(cell, I, H, seed=c)
            x = np.random.default_rng(100 + c).standard_normal((T, B, I)).astype(np.float32)
            if lib == "rnnkit":
                rm = getattr(rk, cell)(I, H)
                rm.load_state_dict(sd)
                rm.eval()
                record(cell, size, "f32", lambda: rm(x)[0])
                for p in args.precision:
                    if not hasattr(rk, "quantize"):
                        record(cell, size, p, ("missing", "this rnnkit has no rk.quantize"))
                        continue
                    try:
                        q = rk.quantize(rm, p)
                    except NotImplementedError as e:
                        record(cell, size, p, ("n/a", f"rk.quantize: {e}"))
                        continue
                    record(cell, size, p, lambda q=q: q(x)[0])
            elif lib == "torch":
                tm = getattr(torch.nn, cell)(I, H)
                tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
                tm.eval()
                xt = torch.from_numpy(x)

                def forward(m: Any) -> Any:
                    with torch.no_grad():
                        return m(xt)[0]
                record(cell, size, "f32", lambda: forward(tm), lambda t: t.numpy())
                if "int8" in args.precision:
                    # quantize_dynamic swaps a module's children, never the module itself: hence the box
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notices
                        from torch.ao.quantization import quantize_dynamic
                        box = quantize_dynamic(torch.nn.Sequential(tm), {getattr(torch.nn, cell)}, dtype=torch.qint8)
                    qm = box[0]
                    if type(qm).__module__.startswith(QUANTIZED_TORCH):
                        record(cell, size, "int8", lambda: forward(qm), lambda t: t.numpy(),
                               module=f"{type(qm).__module__}.{type(qm).__name__}",
                               engine=torch.backends.quantized.engine)
                    elif cell == "RNN":
                        record(cell, size, "int8", ("n/a", "torch.ao.quantization.quantize_dynamic has no int8 "
                                                    "nn.RNN (only RNNCell): the module stays float32"))
                    else:
                        raise AssertionError(f"quantize_dynamic left {cell} as {type(qm)}: its time would be float32's")
                if "bf16" in args.precision:
                    def autocast_forward() -> Any:
                        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                            return tm(xt)[0]
                    matmuls = bf16_matmul_dtypes(autocast_forward)
                    if not any(m.endswith("bfloat16") for m in matmuls):
                        raise AssertionError(f"autocast ran {cell}'s matrix products as {matmuls}, not bfloat16")
                    record(cell, size, "bf16", autocast_forward, lambda t: t.float().numpy(),
                           out_dtype=str(autocast_forward().dtype).replace("torch.", ""), matmuls=matmuls)
            else:
                feed = {"X": x, "lens": np.full(B, T, dtype=np.int32)}
                sess = onnx_session(cell, sd, I, H, n)
                record(cell, size, "f32", lambda: sess.run(None, feed), lambda y: y[0][:, 0])
                if "int8" in args.precision:
                    q8 = onnx_int8(onnx_model(cell, sd, I, H))
                    ops = [(node.domain or "ai.onnx") + "." + node.op_type for node in q8.graph.node]
                    if cell == "LSTM" and ops != ["com.microsoft.DynamicQuantizeLSTM"]:
                        raise AssertionError(f"quantize_dynamic made the ONNX LSTM {ops}, not DynamicQuantizeLSTM")
                    if ops == ["ai.onnx." + cell]:
                        record(cell, size, "int8", ("n/a", f"onnxruntime.quantization.quantize_dynamic leaves the "
                                                    f"ONNX {cell} operator float32 (no quantized kernel)"))
                    else:
                        qsess = onnx_session(cell, sd, I, H, n, model=q8)
                        record(cell, size, "int8", lambda: qsess.run(None, feed), lambda y: y[0][:, 0], ops=ops)
    return rows


def run_worker(lib: str, n: int, args: argparse.Namespace, sizes: list[int], cases: list[str]) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
    cmd = [sys.executable, __file__, "--worker", lib, "--threads", str(n), "--sizes", ",".join(map(str, sizes)),
           "--cases", ",".join(cases), "--repeats", str(args.repeats)]
    if "precision" in cases:
        cmd += ["--precision", ",".join(args.precision), "--ref-dir", str(args.ref_dir)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{lib} worker with {n} thread(s) failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n: int, args: argparse.Namespace) -> dict:
    """Every case at n threads: each library in its own fresh worker process, one process per size (so
    the three libraries' times for a size are taken minutes apart at most), their order rotated from
    size to size and round to round (the first of back-to-back processes tends to run a little faster on
    a shared machine); each time is the lowest over --rounds rounds. The precision cases (their own
    processes, one per size, in the same rotation) come back apart, under "precision"."""
    peak = 0.0
    libs = ["rnnkit", "torch", "onnxruntime"]
    times: dict = {}
    extras: dict = {}
    lowp: dict = {}  # (cell, size, lib, precision) -> the precision case's row, its lowest time
    table_cases = [c for c in args.cases if c in ("inference", "training", "lengths")]
    jobs = [([size], table_cases) for size in args.sizes if table_cases]
    if "streaming" in args.cases and n == args.threads[0]:
        jobs.append(([], ["streaming"]))
    needs_peak = bool(jobs)  # the float tables' GFLOP/s share of peak; the precision cases have none
    if "precision" in args.cases:
        jobs += [([size], ["precision"]) for size in args.sizes]
    for rnd in range(args.rounds):
        if needs_peak:  # the highest, as times are the lowest
            peak = max(peak, run_worker("peak", n, args, [], [])[0]["gflops"])
        for j, (sizes, cases) in enumerate(jobs):
            k = (j + rnd) % 3
            for lib in libs[k:] + libs[:k]:
                if lib == "onnxruntime" and "inference" not in cases and "precision" not in cases:
                    continue
                for r in run_worker(lib, n, args, sizes, cases):
                    if r["case"] == "precision":
                        # the round with the lowest time (its max error is every round's: same weights, inputs)
                        key = (r["cell"], r["size"], lib, r["precision"])
                        prev = lowp.get(key)
                        if prev is None or (r["ms"] is not None and (prev["ms"] is None or r["ms"] < prev["ms"])):
                            lowp[key] = r
                        continue
                    key = (r["case"], r["cell"], r["size"])
                    ms, best = r.pop("ms"), times.setdefault(key, {})
                    best[lib] = min(ms, best.get(lib, ms))
                    extra = extras.setdefault(key, {})
                    if "rnnkit_padded_ms" in r:  # the lowest, as for every time
                        r["rnnkit_padded_ms"] = min(r["rnnkit_padded_ms"], extra.get("rnnkit_padded_ms", float("inf")))
                    extra.update({k: v for k, v in r.items() if k not in ("case", "cell", "size")})
    rows = []
    for (case, cell, size), ms in times.items():
        ms = {lib: ms[lib] for lib in libs if lib in ms}
        extra = extras[(case, cell, size)]
        if case == "streaming-python":
            flops = 2.0 * GATES[cell] * size * (1 + size) * 1e-3  # per microsecond
        else:
            flops = 2.0 * T * B * GATES[cell] * size * (2 * size) * (3 if case.endswith("training") else 1)
        if case.startswith("lengths-"):
            flops *= extra["real_fraction"]
            extra["target_ms"] = extra["rnnkit_padded_ms"] * extra["real_fraction"] * 1.1
        rows.append({"case": case, "cell": cell, "size": size, "threads": n, "ms": ms,
                     "gflops": {k: flops / v / 1e6 for k, v in ms.items() if v},
                     "ratio": {k: v / ms["rnnkit"] for k, v in ms.items() if k != "rnnkit" and v},
                     "peak_gflops": peak, **extra})
    order = {"inference": 0, "training": 1, "lengths-inference": 2, "lengths-training": 3, "streaming-python": 4}
    rows.sort(key=lambda r: (r["case"] == "streaming-python", r["size"], ("RNN", "LSTM", "GRU").index(r["cell"]),
                             order[r["case"]]))
    def lowp_order(key: tuple) -> tuple:  # size, cell, precision, library
        cell, size, lib, p = key
        return size, ("RNN", "LSTM", "GRU").index(cell), (("f32",) + PRECISIONS).index(p), libs.index(lib)

    precision = [{"threads": n, "cell": cell, "hidden": size, "lib": lib, "precision": p, "ms": r["ms"],
                  "max_err": r["max_err"],
                  **{k: v for k, v in r.items() if k not in ("case", "cell", "size", "lib", "precision", "ms",
                                                             "max_err")}}
                 for (cell, size, lib, p), r in sorted(lowp.items(), key=lambda kv: lowp_order(kv[0]))]
    return {"threads": n, "rows": rows, "precision": precision}


def peak_rss_delta(lib: str) -> float:
    """MiB by which one LSTM training step (B=64, T=100, H=512) raises the peak RSS of a fresh process."""
    code = f"""
import resource, numpy as np
lib = {lib!r}
B, T, H = 64, 100, 512
x = np.random.default_rng(0).standard_normal((T, B, H)).astype(np.float32)
go = np.ones((T, B, H), np.float32)
if lib == "rnnkit":
    import rnnkit as rk
    m = rk.LSTM(H, H)
    step = lambda: (m(x), m.backward(go))
else:
    import torch
    m = torch.nn.LSTM(H, H); xt = torch.from_numpy(x).requires_grad_(True); got = torch.from_numpy(go)
    step = lambda: m(xt)[0].backward(got)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def cpp_stream_latency(cells: tuple = ("LSTM", "GRU"), sizes: tuple = (8, 16, 32, 64, 128),
                       precisions: tuple = ("float32",), rounds: int = 1) -> list[dict]:
    """Per-step latency of the C++ streaming API (examples/cpp/stream_latency, built here with CMake), for
    each precision of the random model's weights; with several precisions they run in turns, `rounds` times,
    and each keeps its lowest figures."""
    cmake = shutil.which("cmake")
    if cmake is None:
        print("cmake not found: skipping the C++ streaming latency", file=sys.stderr)
        return []
    root, build = HERE.parent, HERE.parent / "build" / "bench-cpp"
    configure = [cmake, "-S", str(root), "-B", str(build), "-DRNNKIT_BUILD_EXAMPLES=ON",
                 f"-DPython_EXECUTABLE={sys.executable}"]
    if not (build / "CMakeCache.txt").exists() and shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    subprocess.run(configure, check=True, capture_output=True)
    subprocess.run([cmake, "--build", str(build), "--target", "stream_latency"], check=True, capture_output=True)
    exe = build / "examples" / "cpp" / "stream_latency"
    rows = []
    for cell in cells:
        for H in sizes:
            best: dict[str, dict] = {}
            for _ in range(rounds):
                for p in precisions:
                    out = subprocess.run([str(exe), "--" + cell.lower(), str(H), "--steps", "20000", "--precision", p],
                                         check=True, capture_output=True, text=True).stdout
                    m = re.search(r"median (\d+) ns, p99 (\d+) ns", out)
                    blk = re.search(r"steps in blocks of 100: median (\d+) ns per step", out)
                    assert m and blk, out
                    row = {"cell": cell, "size": H, "median_ns": int(m.group(1)), "p99_ns": int(m.group(2)),
                           "block_ns": int(blk.group(1))}
                    if p != "float32":
                        row["precision"] = p
                    if p not in best or row["block_ns"] < best[p]["block_ns"]:
                        best[p] = row
            rows += [best[p] for p in precisions]
    return rows


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    """The installed versions of the libraries measured and of what they run on (absent: not installed)."""
    from importlib import metadata

    found = {}
    for name in ("rnnkit", "numpy", "torch", "onnxruntime", "onnx", "scipy-openblas32"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def blas_in_use() -> str | None:
    """The BLAS library rnnkit plugged in (its file name), or None: asked in a process of its own."""
    code = "import os, rnnkit; b = rnnkit.blas_library(); print(os.path.basename(b) if b else '')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    ap.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",") if v], default=[128, 256, 512])
    ap.add_argument("--cases", type=lambda s: [v for v in s.split(",") if v],
                    default=["inference", "training", "lengths", "streaming", "memory"],
                    help="comma-separated: inference, training, lengths, streaming, memory, precision (alone, or "
                         "empty with --precision: the precision cases only)")
    ap.add_argument("--precision", type=lambda s: [v for v in s.split(",") if v], default=[],
                    help=f"reduced-precision inference cases, comma-separated from {','.join(PRECISIONS)} "
                         "(default none; --cases precision alone means all of them)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--worker", dest="lib", choices=["peak", "reference", "rnnkit", "torch", "onnxruntime"],
                    help=argparse.SUPPRESS)
    ap.add_argument("--ref-dir", type=Path, help=argparse.SUPPRESS)  # the precision cases' float32 outputs
    ap.add_argument("--no-plot", action="store_true", help="write RESULTS.md without the plot (no matplotlib needed)")
    args = ap.parse_args()
    if unknown := [p for p in args.precision if p not in PRECISIONS]:
        ap.error(f"--precision: {','.join(unknown)} (choose from {','.join(PRECISIONS)})")
    if args.lib:
        print(json.dumps(worker(args)))
        return
    if "precision" in args.cases and not args.precision:
        args.precision = list(PRECISIONS)
    if args.precision and "precision" not in args.cases:
        args.cases.append("precision")
    import report  # benchmarks/report.py, beside this file

    if not args.no_plot and not report.can_plot():  # before the measurements, not after them
        sys.exit("bench.py: the report's plot needs matplotlib (pip install matplotlib, or the [bench] extra); "
                 "--no-plot skips it")
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-") as ref_dir:
        if args.precision:  # the float32 PyTorch outputs every library's error is measured against
            args.ref_dir = ref_dir
            run_worker("reference", 1, args, args.sizes, ["precision"])
        results = [measure(n, args) for n in args.threads]
    precision = [row for res in results for row in res.pop("precision")]
    memory = None
    if "memory" in args.cases:
        memory = {"rnnkit": peak_rss_delta("rnnkit"), "torch": peak_rss_delta("torch")}
    cpp = cpp_stream_latency() if "streaming" in args.cases else []
    cpp_precision = []  # the streaming step with reduced-precision weights, beside float32's, in turns
    if args.precision:
        cpp_precision = cpp_stream_latency(sizes=(8, 16, 32, 64, 128), precisions=("float32", *args.precision),
                                           rounds=3)
    info = {"date": time.strftime("%Y-%m-%d"), "machine": cpu_name(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "versions": versions(), "blas": blas_in_use(),
            "settings": {"threads": args.threads, "sizes": args.sizes, "cases": args.cases, "repeats": args.repeats,
                         "rounds": args.rounds},
            "results": results, "memory_mib": memory, "streaming_cpp": cpp}
    if args.precision:
        info["settings"]["precision"] = args.precision
        info["precision"] = precision
        info["streaming_cpp_precision"] = cpp_precision
        info["precision_run"] = {"date": info["date"], "machine": info["machine"], "versions": info["versions"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=1) + "\n")
    written = report.write(args.out, draw=not args.no_plot)
    print(report.markdown(info))
    print("written: " + ", ".join(str(p) for p in [args.out, *written]))


if __name__ == "__main__":
    main()
