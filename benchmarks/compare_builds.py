"""Two builds of rnnkit against each other, alternating, on the same machine and inputs.

    python benchmarks/compare_builds.py --a /path/to/venv-a/bin/python --b /path/to/venv-b/bin/python
    python benchmarks/compare_builds.py --a ... --b ... --cells LSTM --sizes 128 --threads 1 --rounds 9
    python benchmarks/compare_builds.py --a ... --b ... --env-b RNNKIT_ISA=avx2 --cases stream

Each interpreter imports its own installed rnnkit. For every case (cell, hidden size, thread
count, inference or training step; B=64, T=100, input = hidden; or "stream": one streaming step
of batch 1 from Python, model.stream(1).step, timed over 1000 steps, in microseconds) the two
builds run in turns, a fresh worker process each time, --rounds times; a worker times --repeats
calls after warm-up and reports the lowest. --env-a / --env-b set environment variables for one
build's workers (RNNKIT_ISA=avx2 runs a dispatched build's AVX2 core). The table gives each build's lowest over all its rounds and the ratio b/a
(< 1: b is faster), with the spread of a's rounds beside it: on a shared machine the ratio means
something only where it is outside that spread. With --stream-a/--stream-b (two builds of
examples/cpp/stream_latency) the C++ streaming step is compared the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

WORKER = r"""
import json, sys, time
import numpy as np
import rnnkit as rk

cell, H, threads, case, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rk.set_num_threads(threads)
B, T = 64, 100
rng = np.random.default_rng(0)
m = getattr(rk, cell)(H, H, batch_first=True, seed=0)
x = rng.standard_normal((B, T, H)).astype(np.float32)
g = rng.standard_normal((B, T, H)).astype(np.float32)
if case == "inference":
    m.eval()
    def step():
        m(x)
elif case == "stream":
    m.eval()
    s = m.stream(1)
    xt = x[:1, 0]
    def step():
        for _ in range(1000):
            s.step(xt)
else:
    m.train()
    def step():
        out = m(x)
        m.backward(g)
for _ in range(3):
    step()
best = float("inf")
for _ in range(repeats):
    t0 = time.perf_counter()
    step()
    best = min(best, time.perf_counter() - t0)
print(json.dumps(best * 1e3))  # ms per call; for "stream", us per step
"""


def run_worker(python: str, args: list[str], env: dict | None = None) -> float:
    out = subprocess.run([python, "-c", WORKER, *args], check=True, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return float(out.stdout.strip().splitlines()[-1])


def run_stream(exe: str, cell: str, H: int) -> float:
    out = subprocess.run([exe, f"--{cell.lower()}", str(H), "--steps", "20000"], check=True, capture_output=True,
                         text=True).stdout
    m = re.search(r"steps in blocks of 100: median ([0-9.]+) ns", out)
    if not m:
        raise RuntimeError(f"unexpected output from {exe}:\n{out}")
    return float(m.group(1))


def compare(label: str, fa, fb, rounds: int) -> dict:
    a, b = [], []
    for r in range(rounds):
        first, second = (fa, fb) if r % 2 == 0 else (fb, fa)  # alternate which build goes first
        x, y = first(), second()
        (a if first is fa else b).append(x)
        (b if first is fa else a).append(y)
    row = {"case": label, "a": min(a), "b": min(b), "ratio": min(b) / min(a), "a_spread": max(a) / min(a)}
    print(f"{label:34s} a {row['a']:9.3f}  b {row['b']:9.3f}  b/a {row['ratio']:.3f}  (a's rounds spread "
          f"{row['a_spread']:.3f})", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--a", required=True, help="python of the first build (the baseline)")
    p.add_argument("--b", required=True, help="python of the second build")
    p.add_argument("--cells", nargs="+", default=["RNN", "LSTM", "GRU"])
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 512])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--cases", nargs="+", default=["inference", "training"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stream-a", help="stream_latency built from the first build's tree")
    p.add_argument("--stream-b", help="stream_latency built from the second build's tree")
    p.add_argument("--stream-sizes", nargs="+", type=int, default=[16, 64, 128])
    p.add_argument("--env-a", action="append", default=[], metavar="KEY=VALUE", help="environment for a's workers")
    p.add_argument("--env-b", action="append", default=[], metavar="KEY=VALUE", help="environment for b's workers")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args()
    env_a = dict(kv.split("=", 1) for kv in args.env_a)
    env_b = dict(kv.split("=", 1) for kv in args.env_b)

    rows = []
    for threads in args.threads:
        for H in args.sizes:
            for cell in args.cells:
                for case in args.cases:
                    if case == "stream" and threads != args.threads[0]:
                        continue  # a step of batch 1 runs on one thread
                    w = [cell, str(H), str(threads), case, str(args.repeats)]
                    unit = "us/step" if case == "stream" else f"{threads}t ms"
                    rows.append(compare(f"{cell}-{H} {case} {unit}", lambda w=w: run_worker(args.a, w, env_a),
                                        lambda w=w: run_worker(args.b, w, env_b), args.rounds))
    if args.stream_a and args.stream_b:
        for cell in ("LSTM", "GRU"):
            for H in args.stream_sizes:
                rows.append(compare(f"stream {cell}-{H} ns/step", lambda c=cell, h=H: run_stream(args.stream_a, c, h),
                                    lambda c=cell, h=H: run_stream(args.stream_b, c, h), args.rounds))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
