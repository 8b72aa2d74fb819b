"""rnnkit against PyTorch 2.13 (CPU) and ONNX Runtime, measured side by side in one run.

    pip install ".[bench]"
    python benchmarks/bench.py                      # threads 1 and 2, every case
    python benchmarks/bench.py --threads 1 --cases inference --sizes 128 --out /tmp/run/results.json

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


def onnx_session(cell: str, state_dict: dict, I: int, H: int, threads: int) -> Any:
    """An ONNX Runtime session running one ONNX LSTM/GRU/RNN operator with PyTorch's weights."""
    import numpy as np
    import onnxruntime as ort
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
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


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

    for size in args.sizes:
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
    return rows


def run_worker(lib: str, n: int, args: argparse.Namespace, sizes: list[int], cases: list[str]) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
    cmd = [sys.executable, __file__, "--worker", lib, "--threads", str(n), "--sizes", ",".join(map(str, sizes)),
           "--cases", ",".join(cases), "--repeats", str(args.repeats)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{lib} worker with {n} thread(s) failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n: int, args: argparse.Namespace) -> dict:
    """Every case at n threads: each library in its own fresh worker process, one process per size (so
    the three libraries' times for a size are taken minutes apart at most), their order rotated from
    size to size and round to round (the first of back-to-back processes tends to run a little faster on
    a shared machine); each time is the lowest over --rounds rounds."""
    peak = 0.0
    libs = ["rnnkit", "torch", "onnxruntime"]
    times: dict = {}
    extras: dict = {}
    table_cases = [c for c in args.cases if c in ("inference", "training", "lengths")]
    jobs = [([size], table_cases) for size in args.sizes if table_cases]
    if "streaming" in args.cases and n == args.threads[0]:
        jobs.append(([], ["streaming"]))
    for rnd in range(args.rounds):
        peak = max(peak, run_worker("peak", n, args, [], [])[0]["gflops"])  # the highest, as times are the lowest
        for j, (sizes, cases) in enumerate(jobs):
            k = (j + rnd) % 3
            for lib in libs[k:] + libs[:k]:
                if lib == "onnxruntime" and "inference" not in cases:
                    continue
                for r in run_worker(lib, n, args, sizes, cases):
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
    return {"threads": n, "rows": rows}


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


def cpp_stream_latency(cells: tuple = ("LSTM", "GRU"), sizes: tuple = (8, 16, 32, 64, 128)) -> list[dict]:
    """Per-step latency of the C++ streaming API (examples/cpp/stream_latency, built here with CMake)."""
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
            out = subprocess.run([str(exe), "--" + cell.lower(), str(H), "--steps", "20000"],
                                 check=True, capture_output=True, text=True).stdout
            m = re.search(r"median (\d+) ns, p99 (\d+) ns", out)
            blk = re.search(r"steps in blocks of 100: median (\d+) ns per step", out)
            assert m and blk, out
            rows.append({"cell": cell, "size": H, "median_ns": int(m.group(1)), "p99_ns": int(m.group(2)),
                         "block_ns": int(blk.group(1))})
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
    ap.add_argument("--cases", type=lambda s: s.split(","),
                    default=["inference", "training", "lengths", "streaming", "memory"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--worker", dest="lib", choices=["peak", "rnnkit", "torch", "onnxruntime"], help=argparse.SUPPRESS)
    ap.add_argument("--no-plot", action="store_true", help="write RESULTS.md without the plot (no matplotlib needed)")
    args = ap.parse_args()
    if args.lib:
        print(json.dumps(worker(args)))
        return
    import report  # benchmarks/report.py, beside this file

    if not args.no_plot and not report.can_plot():  # before the measurements, not after them
        sys.exit("bench.py: the report's plot needs matplotlib (pip install matplotlib, or the [bench] extra); "
                 "--no-plot skips it")
    results = [measure(n, args) for n in args.threads]
    memory = None
    if "memory" in args.cases:
        memory = {"rnnkit": peak_rss_delta("rnnkit"), "torch": peak_rss_delta("torch")}
    cpp = cpp_stream_latency() if "streaming" in args.cases else []
    info = {"date": time.strftime("%Y-%m-%d"), "machine": cpu_name(), "cpu_count": os.cpu_count(),
            "python": platform.python_version(), "versions": versions(), "blas": blas_in_use(),
            "settings": {"threads": args.threads, "sizes": args.sizes, "cases": args.cases, "repeats": args.repeats,
                         "rounds": args.rounds},
            "results": results, "memory_mib": memory, "streaming_cpp": cpp}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(info, indent=1) + "\n")
    written = report.write(args.out, draw=not args.no_plot)
    print(report.markdown(info))
    print("written: " + ", ".join(str(p) for p in [args.out, *written]))


if __name__ == "__main__":
    main()
