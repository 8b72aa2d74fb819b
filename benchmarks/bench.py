"""rnnkit against PyTorch 2.13 (CPU) and ONNX Runtime, measured side by side in one run.

    pip install ".[bench]"
    python benchmarks/bench.py                      # threads 1 and 2, every case; table + benchmarks/results.json
    python benchmarks/bench.py --threads 1 --cases inference --sizes 128

For each thread count a fresh worker process runs every case (so numpy's
OpenBLAS, PyTorch and ONNX Runtime all start with that many threads). Times are
medians of --repeats runs after warm-up. GFLOP/s counts the matrix products
only: 2·T·B·G·H·(I + H) per direction for a forward pass, three times that for
a training step (forward, input gradient, weight gradient). "peak" is a
2048³ float32 GEMM through numpy (OpenBLAS) in the same worker: the machine's
practical peak. Ratios are the other library's time over rnnkit's (> 1: rnnkit
is faster).

Cases: inference and training steps (B=64, T=100, input = hidden = --sizes,
RNN tanh / LSTM / GRU, float32); variable lengths (uniform in 10..100, packed
sequences in PyTorch); streaming (batch 1, input 1, one step per call: the C++
Stream::step through examples/cpp/stream_latency, built here with CMake, and
model.stream(1).step from Python, against PyTorch's LSTMCell/GRUCell); peak RSS of one LSTM training step (B=64, T=100, H=512), each library
in its own process.
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def worker(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    import rnnkit as rk

    n = args.threads[0]
    torch.set_num_threads(n)
    rk.set_num_threads(n)
    rows: list[dict] = []
    peak = gemm_peak(args.repeats)
    B, T = 64, 100
    rng = np.random.default_rng(0)

    def record(case: str, cell: str, size: int, flops: float, times: dict, **extra: Any) -> None:
        rk_ms = times["rnnkit"]
        row = {"case": case, "cell": cell, "size": size, "threads": n, "ms": times,
               "gflops": {k: flops / v / 1e6 for k, v in times.items() if v},
               "ratio": {k: v / rk_ms for k, v in times.items() if k != "rnnkit" and v},
               "peak_gflops": peak, **extra}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    for size in args.sizes:
        for cell in ("RNN", "LSTM", "GRU"):
            I = H = size
            G = GATES[cell]
            torch.manual_seed(0)
            tm = getattr(torch.nn, cell)(I, H)
            sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
            rm = getattr(rk, cell)(I, H)
            rm.load_state_dict(sd)
            x = rng.standard_normal((T, B, I)).astype(np.float32)
            xt = torch.from_numpy(x)
            fwd_flops = 2.0 * T * B * G * H * (I + H)
            if "inference" in args.cases:
                rm.eval()
                sess = onnx_session(cell, sd, I, H, n)
                lens = np.full(B, T, dtype=np.int32)
                with torch.no_grad():
                    times = {"rnnkit": timeit(lambda: rm(x), args.repeats),
                             "torch": timeit(lambda: tm(xt), args.repeats),
                             "onnxruntime": timeit(lambda: sess.run(None, {"X": x, "lens": lens}), args.repeats)}
                record("inference", cell, size, fwd_flops, times)
            if "training" in args.cases:
                rm.train()
                go = np.ones((T, B, H), np.float32)
                got = torch.from_numpy(go)
                xg = xt.clone().requires_grad_(True)

                def rk_step() -> None:
                    rm(x)
                    rm.backward(go)

                def torch_step() -> None:
                    out, _ = tm(xg)
                    out.backward(got)

                times = {"rnnkit": timeit(rk_step, args.repeats), "torch": timeit(torch_step, args.repeats)}
                record("training", cell, size, 3 * fwd_flops, times)
            if "lengths" in args.cases:
                lengths = rng.integers(10, 101, size=B)
                frac = lengths.sum() / (T * B)
                def packed_in() -> Any:
                    return torch.nn.utils.rnn.pack_padded_sequence(xt, torch.from_numpy(lengths),
                                                                   enforce_sorted=False)

                rm.eval()
                with torch.no_grad():
                    t_rk = timeit(lambda: rm(x, lengths=lengths), args.repeats)
                    t_pad = timeit(lambda: rm(x), args.repeats)
                    t_torch = timeit(lambda: tm(packed_in()), args.repeats)
                record("lengths-inference", cell, size, fwd_flops * frac, {"rnnkit": t_rk, "torch": t_torch},
                       rnnkit_padded_ms=t_pad, real_fraction=float(frac),
                       target_ms=t_pad * frac * 1.1)

    if "streaming" in args.cases:
        for cell in ("LSTM", "GRU"):
            for H in (8, 16, 32, 64, 128):
                torch.manual_seed(0)
                tcell = getattr(torch.nn, cell + "Cell")(1, H)
                stream = getattr(rk, cell)(1, H, batch_first=True).stream(1)
                xs = rng.standard_normal((1, 1)).astype(np.float32)
                xst = torch.from_numpy(xs)
                steps = 2000
                state = {"t": None}

                def rk_steps() -> None:
                    for _ in range(steps):
                        stream.step(xs)

                def torch_steps() -> None:
                    with torch.no_grad():
                        for _ in range(steps):
                            state["t"] = tcell(xst, state["t"])

                us = {"rnnkit": timeit(rk_steps, max(3, args.repeats // 3)) * 1e3 / steps,
                      "torch": timeit(torch_steps, max(3, args.repeats // 3)) * 1e3 / steps}
                record("streaming-python", cell, H, 2.0 * GATES[cell] * H * (1 + H) * 1e-3,
                       us, unit="us per step")
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


# RTNeural's per-step figures quoted in the performance issue (ns, batch 1, input 1;
# Eigen backend on an AVX-512 Zen 4: another machine, so a reference, not a same-run ratio).
RTNEURAL_NS = {"LSTM": {8: 75, 16: 103, 32: 202, 64: 798, 128: 2850},
               "GRU": {8: 82, 16: 94, 32: 184, 64: 594, 128: 2010}}


def print_streaming(results: list[dict], cpp: list[dict]) -> None:
    """One table: C++ step, Python step (model.stream), PyTorch LSTMCell/GRUCell per step."""
    python = {(r["cell"], r["size"]): r for r in results[0]["rows"] if r["case"] == "streaming-python"}
    if not python and not cpp:
        return
    print("\n## Streaming, batch 1, input 1: per-step latency (1 thread)")
    print("| cell | hidden | C++ Stream::step median | p99 | C++ in blocks of 100 | RTNeural (quoted) | "
          "Python stream.step | PyTorch cell call | PyTorch/Python |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted(set(python) | {(r["cell"], r["size"]) for r in cpp}, key=lambda k: (k[0] != "LSTM", k[1]))
    for cell, H in keys:
        c = next((r for r in cpp if r["cell"] == cell and r["size"] == H), None)
        p = python.get((cell, H))
        rtn = RTNEURAL_NS.get(cell, {}).get(H)
        cpp_cols = (f"{c['median_ns']} ns | {c['p99_ns']} ns | {c['block_ns']} ns | " + (f"{rtn} ns" if rtn else "")
                    if c else " | | | ")
        py_cols = f"{p['ms']['rnnkit']:.2f} us | {p['ms']['torch']:.2f} us | {p['ratio']['torch']:.1f}" if p else " | | "
        print(f"| {cell} | {H} | {cpp_cols} | {py_cols} |")


def print_table(results: list[dict], memory: dict | None) -> None:
    for res in results:
        rows = res["rows"]
        if not rows:
            continue
        print(f"\n## {res['threads']} thread(s); float32 GEMM peak (numpy/OpenBLAS) {rows[0]['peak_gflops']:.0f} GFLOP/s")
        print("| case | cell | size | rnnkit | PyTorch | ONNX RT | PyTorch/rnnkit | ORT/rnnkit | rnnkit GFLOP/s | of peak |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            unit = " us" if r.get("unit") else " ms"
            ms, ratio = r["ms"], r["ratio"]
            ort = f"{ms['onnxruntime']:.2f}{unit}" if "onnxruntime" in ms else ""
            ort_ratio = f"{ratio['onnxruntime']:.2f}" if "onnxruntime" in ratio else ""
            extra = ""
            if "target_ms" in r:
                extra = f" (padded {r['rnnkit_padded_ms']:.2f} ms; target <= {r['target_ms']:.2f})"
            gf = r["gflops"]["rnnkit"]
            print(f"| {r['case']} | {r['cell']} | {r['size']} | {ms['rnnkit']:.2f}{unit}{extra} | "
                  f"{ms['torch']:.2f}{unit} | {ort} | {ratio['torch']:.2f} | {ort_ratio} | "
                  f"{gf:.1f} | {gf / r['peak_gflops']:.0%} |")
    if memory:
        print(f"\nPeak RSS increase of one LSTM training step (B=64, T=100, H=512): rnnkit {memory['rnnkit']:.0f} MiB, "
              f"PyTorch {memory['torch']:.0f} MiB, ratio {memory['rnnkit'] / memory['torch']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2])
    ap.add_argument("--sizes", type=lambda s: [int(v) for v in s.split(",")], default=[128, 256, 512])
    ap.add_argument("--cases", type=lambda s: s.split(","),
                    default=["inference", "training", "lengths", "streaming", "memory"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    results = []
    for n in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}
        cmd = [sys.executable, __file__, "--worker", "--threads", str(n), "--sizes", ",".join(map(str, args.sizes)),
               "--cases", ",".join(args.cases), "--repeats", str(args.repeats)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"worker with {n} thread(s) failed:\n{out.stderr[-4000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    memory = None
    if "memory" in args.cases:
        memory = {"rnnkit": peak_rss_delta("rnnkit"), "torch": peak_rss_delta("torch")}
    cpp = cpp_stream_latency() if "streaming" in args.cases else []
    info = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "results": results, "memory_mib": memory, "streaming_cpp": cpp}
    args.out.write_text(json.dumps(info, indent=1))
    print(f"# rnnkit benchmarks, {info['date']}, {os.cpu_count()} cores")
    print_table(results, memory)
    print_streaming(results, cpp)
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
