"""Tables and a plot from a benchmark run: results.json -> RESULTS.md and ratios.png beside it.

    python benchmarks/report.py                         # benchmarks/results.json -> benchmarks/RESULTS.md, ratios.png
    python benchmarks/report.py /tmp/run/results.json   # -> /tmp/run/RESULTS.md, /tmp/run/ratios.png
    python benchmarks/report.py --no-plot               # the tables alone (no matplotlib needed)

benchmarks/bench.py writes results.json and then calls this. The plot needs matplotlib (in the
[bench] extra). Any field of results.json beyond a row's case, cell, size and rnnkit time may be
missing (a file from an older bench.py, or figures transcribed from a printed table): its cell in
the tables is left empty, and the run's header says what it has. The reduced-precision rows
(results.json's "precision" list, from bench.py --precision) make a section of their own; a file
without them has none.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
CELLS = ("RNN", "LSTM", "GRU")
CASES = ("inference", "training", "lengths-inference", "lengths-training")
LIBS = {"rnnkit": "rnnkit", "torch": "PyTorch", "onnxruntime": "ONNX Runtime", "onnx": "onnx",
        "numpy": "numpy", "scipy-openblas32": "scipy-openblas32"}

# RTNeural's per-step times (ns, batch 1, input 1; its Eigen backend, measured on another AVX-512
# Zen 4 machine): a reference, not a same-run ratio.
RTNEURAL_NS = {"LSTM": {8: 75, 16: 103, 32: 202, 64: 798, 128: 2850},
               "GRU": {8: 82, 16: 94, 32: 184, 64: 594, 128: 2010}}


# ---- numbers -------------------------------------------------------------------------------
def fmt_ms(v: Optional[float]) -> str:
    """3 significant figures, no exponent: 5.23, 62.1, 829."""
    if v is None:
        return ""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def fmt(v: Optional[float], spec: str) -> str:
    return "" if v is None else format(v, spec)


def ratio(row: dict, lib: str) -> Optional[float]:
    """The other library's time over rnnkit's: as recorded, else from the two times."""
    if lib in row.get("ratio", {}):
        return row["ratio"][lib]
    ms = row.get("ms", {})
    if ms.get(lib) and ms.get("rnnkit"):
        return ms[lib] / ms["rnnkit"]
    return None


def rows_of(info: dict, threads: int, cases: tuple[str, ...]) -> list[dict]:
    res = next((r for r in info.get("results", []) if r["threads"] == threads), {"rows": []})
    rows = [r for r in res["rows"] if r["case"] in cases]
    return sorted(rows, key=lambda r: (r["size"], CELLS.index(r["cell"]), cases.index(r["case"])))


def thread_counts(info: dict) -> list[int]:
    return [r["threads"] for r in info.get("results", []) if r.get("rows")]


def peak(info: dict, threads: int) -> Optional[float]:
    rows = rows_of(info, threads, CASES + ("streaming-python",))
    return next((r["peak_gflops"] for r in rows if r.get("peak_gflops")), None)


# ---- RESULTS.md --------------------------------------------------------------------------
def header(info: dict) -> list[str]:
    machine = info.get("machine") or "unknown machine"
    cores = f", {info['cpu_count']} cores" if info.get("cpu_count") else ""
    lines = ["# rnnkit benchmark results", "",
             f"- Machine: {machine}{cores}" + (f"; run on {info['date']}" if info.get("date") else "")]
    versions = info.get("versions") or {}
    if info.get("python"):
        versions = {"Python": info["python"], **versions}
    if versions:
        lines.append("- Versions: " + ", ".join(f"{LIBS.get(k, k)} {v}" for k, v in versions.items()))
    if "blas" in info:
        lines.append(f"- rnnkit's BLAS: {info['blas'] or 'none (its own kernels and Eigen)'}")
    settings = info.get("settings") or {}
    if settings:
        lines.append("- Settings: `" + " ".join(f"--{k} {','.join(map(str, v)) if isinstance(v, list) else v}"
                                                for k, v in settings.items()) + "`")
    if info.get("note"):
        lines.append(f"- {info['note']}")
    lines += ["",
              "Written by `benchmarks/report.py` from `results.json`, which `benchmarks/bench.py` writes (its "
              "docstring says how each figure is measured). Ratios are the other library's time over rnnkit's "
              "(> 1: rnnkit is faster). GFLOP/s counts the matrix products only; \"of peak\" is its share of a "
              "2048³ float32 GEMM through numpy on the same machine and thread count.", ""]
    return lines


def steps_tables(info: dict) -> list[str]:
    if not any(rows_of(info, n, ("inference", "training")) for n in thread_counts(info)):
        return []  # a run of other cases alone (--cases precision): no heading, no plot of nothing
    lines = ["## Inference and training steps", "",
             "B = 64, T = 100, input size = hidden size, float32; a training step is a forward and a backward "
             "(ONNX Runtime runs inference only).", "",
             "![rnnkit's speed against PyTorch and ONNX Runtime](ratios.png)", ""]
    for n in thread_counts(info):
        rows = rows_of(info, n, ("inference", "training"))
        if not rows:
            continue
        p = peak(info, n)
        lines += [f"### {n} thread{'s' if n > 1 else ''}" + (f" (GEMM peak {p:.0f} GFLOP/s)" if p else ""), "",
                  "| case | cell | size | rnnkit ms | PyTorch ms | ORT ms | PyTorch / rnnkit | ORT / rnnkit "
                  "| rnnkit GFLOP/s | of peak |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in rows:
            ms, gf = r.get("ms", {}), r.get("gflops", {}).get("rnnkit")
            share = gf / r["peak_gflops"] if gf and r.get("peak_gflops") else None
            lines.append(f"| {r['case']} | {r['cell']} | {r['size']} | {fmt_ms(ms.get('rnnkit'))} | "
                         f"{fmt_ms(ms.get('torch'))} | {fmt_ms(ms.get('onnxruntime'))} | "
                         f"{fmt(ratio(r, 'torch'), '.2f')} | {fmt(ratio(r, 'onnxruntime'), '.2f')} | "
                         f"{fmt(gf, '.0f')} | {fmt(share, '.0%')} |")
        lines.append("")
    return lines


def lengths_tables(info: dict) -> list[str]:
    body = []
    for n in thread_counts(info):
        rows = rows_of(info, n, ("lengths-inference", "lengths-training"))
        if not rows:
            continue
        body += [f"### {n} thread{'s' if n > 1 else ''}", "",
                 "| case | cell | size | real steps | rnnkit with lengths ms | rnnkit padded ms | lengths / padded "
                 "| target | PyTorch packed ms | PyTorch / rnnkit |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in rows:
            ms, padded, frac = r.get("ms", {}), r.get("rnnkit_padded_ms"), r.get("real_fraction")
            rel = ms["rnnkit"] / padded if padded and ms.get("rnnkit") else None
            target = r["target_ms"] / padded if padded and r.get("target_ms") else (frac * 1.1 if frac else None)
            body.append(f"| {r['case'].removeprefix('lengths-')} | {r['cell']} | {r['size']} | {fmt(frac, '.0%')} | "
                        f"{fmt_ms(ms.get('rnnkit'))} | {fmt_ms(padded)} | {fmt(rel, '.2f')} | {fmt(target, '.2f')} | "
                        f"{fmt_ms(ms.get('torch'))} | {fmt(ratio(r, 'torch'), '.2f')} |")
        body.append("")
    if not body:
        return []
    return ["## Variable lengths", "",
            "Lengths uniform in 10..100 (\"real steps\": their share of the padded batch), the same B, T and sizes; "
            "rnnkit skips the steps past each length, PyTorch runs packed sequences. A training step's backward "
            "takes the padded output's gradient. \"target\" is the share of real steps plus 10%, as a fraction of "
            "rnnkit's padded time.", ""] + body


PRECISIONS = ("f32", "int8", "bf16")
PRECISION_LIBS = ("rnnkit", "torch", "onnxruntime")


def fmt_err(v: Optional[float]) -> str:
    """2 significant figures in exponent form (1.4e-02); 0 as 0."""
    if v is None:
        return ""
    return "0" if v == 0 else f"{v:.1e}"


def precision_tables(info: dict) -> list[str]:
    """The reduced-precision cases (results.json's "precision" rows, one per thread count, cell, hidden size,
    library and precision): times, max errors against PyTorch's float32 output, and ratios."""
    rows = info.get("precision") or []
    if not rows:
        return []
    by = {(r["threads"], r["cell"], r["hidden"], r["lib"], r["precision"]): r for r in rows}

    def ms_of(n: int, cell: str, H: int, lib: str, p: str) -> Optional[float]:
        return (by.get((n, cell, H, lib, p)) or {}).get("ms")

    def over(a: Optional[float], b: Optional[float]) -> str:
        return fmt(a / b if a and b else None, ".2f")

    def shown(r: Optional[dict]) -> tuple[str, str]:  # (ms, max err) cells: a status where there is no time
        if r is None:
            return "", ""
        if r.get("ms") is None:
            return r.get("status") or "", ""
        return fmt_ms(r["ms"]), fmt_err(r.get("max_err"))

    body = []
    for n in sorted({r["threads"] for r in rows}):
        keys = sorted({(r["cell"], r["hidden"]) for r in rows if r["threads"] == n},
                      key=lambda k: (k[1], CELLS.index(k[0])))
        body += [f"### {n} thread{'s' if n > 1 else ''}", "",
                 "| cell | hidden | precision | rnnkit ms | rnnkit max err | PyTorch ms | PyTorch max err | ORT ms "
                 "| ORT max err | rnnkit f32 / rnnkit | PyTorch / rnnkit | ORT / rnnkit |",
                 "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for cell, H in keys:
            for p in PRECISIONS:
                found = [by.get((n, cell, H, lib, p)) for lib in PRECISION_LIBS]
                if not any(found):
                    continue
                cells = [c for r in found for c in shown(r)]
                mine = ms_of(n, cell, H, "rnnkit", p)
                f32 = over(ms_of(n, cell, H, "rnnkit", "f32"), mine) if p != "f32" else ""
                body.append(f"| {cell} | {H} | {p} | " + " | ".join(cells) + f" | {f32} | "
                            f"{over(ms_of(n, cell, H, 'torch', p), mine)} | "
                            f"{over(ms_of(n, cell, H, 'onnxruntime', p), mine)} |")
        body.append("")
    notes = {}  # why a case has no time: one line per reason, naming its cases
    for r in rows:
        if r.get("ms") is None and r.get("note"):
            notes.setdefault((r["status"], r["note"]), set()).add(f"{LIBS.get(r['lib'], r['lib'])} {r['precision']} "
                                                                  f"{r['cell']}")
    body += [f"- {status}: {', '.join(sorted(cases))}: {note}" for (status, note), cases in notes.items()]
    engines = sorted({r["engine"] for r in rows if r.get("engine")})
    run = info.get("precision_run") or {}
    when = f"Measured {run['date']} on {run['machine']}. " if run.get("date") and run.get("machine") else ""
    return ["## Reduced precision", "", when +
            "Inference, B = 64, T = 100, input size = hidden size, the float tables' weights and inputs. \"max err\" "
            "is the largest |out - float32 out| over the output sequence, every library's against PyTorch's float32 "
            "output on the same weights and inputs. ORT int8: `onnxruntime.quantization.quantize_dynamic` (QInt8, "
            "per-tensor) of the ONNX graph, which makes an LSTM `com.microsoft.DynamicQuantizeLSTM`. PyTorch int8: "
            "`torch.ao.quantization.quantize_dynamic` (qint8 weights" +
            (f", engine {', '.join(engines)}" if engines else "") + "). PyTorch bf16: `torch.autocast(\"cpu\", "
            "dtype=torch.bfloat16)` around the float32 layer. rnnkit: `rk.quantize(layer, \"int8\" / \"bf16\")`. "
            "Ratios are times over rnnkit's in the same precision (> 1: rnnkit is faster); \"rnnkit f32 / rnnkit\" "
            "is rnnkit's float32 time over its int8 or bf16 time (> 1: the reduced precision is faster). n/a: the "
            "library has no such path (the reason is below the tables); missing: not measured (this rnnkit has no "
            "`rk.quantize`); empty: not run.", ""] + body + [""]


def streaming_table(info: dict) -> list[str]:
    n = next(iter(thread_counts(info)), None)
    python = {(r["cell"], r["size"]): r for r in rows_of(info, n, ("streaming-python",))} if n else {}
    cpp = {(r["cell"], r["size"]): r for r in info.get("streaming_cpp") or []}
    if not python and not cpp:
        return []
    lines = ["## Streaming", "",
             "Batch 1, input 1, one step per call, 1 thread. C++: `Stream::step`, timed by "
             "`examples/cpp/stream_latency` one step at a time (median and 99th percentile, including a clock read) "
             "and in blocks of 100 steps. Python: `model.stream(1).step(x_t)`. PyTorch: `LSTMCell`/`GRUCell` "
             "called per step under `no_grad`. RTNeural: reference times of its Eigen backend, measured on another "
             "AVX-512 Zen 4 machine (not in the same run).", "",
             "| cell | hidden | C++ median ns | C++ p99 ns | C++ in blocks of 100, ns | RTNeural ns | "
             "C++ / RTNeural | Python us | PyTorch us | PyTorch / Python |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for cell, H in sorted(set(python) | set(cpp), key=lambda k: (CELLS.index(k[0]), k[1])):
        c, p = cpp.get((cell, H), {}), python.get((cell, H), {})
        rtn = RTNEURAL_NS.get(cell, {}).get(H)
        block = c.get("block_ns")
        ms = p.get("ms", {})
        lines.append(f"| {cell} | {H} | {fmt(c.get('median_ns'), 'd')} | {fmt(c.get('p99_ns'), 'd')} | "
                     f"{fmt(block, 'd')} | {fmt(rtn, 'd')} | {fmt(block / rtn if block and rtn else None, '.2f')} | "
                     f"{fmt(ms.get('rnnkit'), '.2f')} | {fmt(ms.get('torch'), '.2f')} | "
                     f"{fmt(ratio(p, 'torch') if p else None, '.1f')} |")
    return lines + [""]


def streaming_precision_table(info: dict) -> list[str]:
    """The C++ streaming step with int8 / bf16 weights beside float32's (results.json's
    "streaming_cpp_precision", run in turns, lowest of rounds, in blocks of 100 steps)."""
    rows = info.get("streaming_cpp_precision") or []
    if not rows:
        return []
    by = {(r["cell"], r["size"], r.get("precision", "float32")): r["block_ns"] for r in rows}
    precisions = [p for p in ("float32", *PRECISIONS) if any(k[2] == p for k in by)]
    lines = ["## Streaming in reduced precision", "",
             "The C++ `Stream::step` of a random 1-layer model (batch 1, input 1, 1 thread) with its weight "
             "matrices in each precision (`stream_latency --precision`), ns per step in blocks of 100; the "
             "precisions run in turns, and each keeps its lowest of three rounds. RTNeural: as above.", "",
             "| cell | hidden | " + " | ".join(f"{p} ns" for p in precisions) + " | " +
             " | ".join(f"{p} / float32" for p in precisions[1:]) + " | " +
             " | ".join(f"{p} / RTNeural" for p in precisions[1:]) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in range(3 * len(precisions) - 2)) + " |"]
    for cell, H in sorted({(k[0], k[1]) for k in by}, key=lambda k: (CELLS.index(k[0]), k[1])):
        f32, rtn = by.get((cell, H, "float32")), RTNEURAL_NS.get(cell, {}).get(H)
        ns = [by.get((cell, H, p)) for p in precisions]
        lines.append(f"| {cell} | {H} | " + " | ".join(fmt(v, "d") for v in ns) + " | " +
                     " | ".join(fmt(v / f32 if v and f32 else None, ".2f") for v in ns[1:]) + " | " +
                     " | ".join(fmt(v / rtn if v and rtn else None, ".2f") for v in ns[1:]) + " |")
    return lines + [""]


def memory_line(info: dict) -> list[str]:
    mem = info.get("memory_mib")
    if not mem or "rnnkit" not in mem:
        return []
    line = f"One LSTM training step (B = 64, T = 100, H = 512) raises a fresh process's peak RSS by {mem['rnnkit']:.0f} MiB"
    if mem.get("torch"):
        line += f"; PyTorch's by {mem['torch']:.0f} MiB (rnnkit / PyTorch {mem['rnnkit'] / mem['torch']:.2f})"
    return ["## Memory", "", line + ".", ""]


def markdown(info: dict) -> str:
    lines = (header(info) + steps_tables(info) + lengths_tables(info) + precision_tables(info) +
             streaming_table(info) + streaming_precision_table(info) + memory_line(info))
    return "\n".join(lines).rstrip() + "\n"


# ---- ratios.png --------------------------------------------------------------------------
def can_plot() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(info: dict, path: Path) -> None:
    """Bars of PyTorch's and ONNX Runtime's time over rnnkit's, per case, cell and size, one colour per
    thread count; the line at 1 is parity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("torch", ("inference", "training"), "PyTorch time / rnnkit time"),
              ("onnxruntime", ("inference",), "ONNX Runtime time / rnnkit time (inference)")]
    counts = thread_counts(info)
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), gridspec_kw={"height_ratios": [2, 1]})
    width = 0.8 / max(len(counts), 1)
    for ax, (lib, cases, title) in zip(axes, panels):
        keys = sorted({(r["case"], r["cell"], r["size"]) for n in counts for r in rows_of(info, n, cases)},
                      key=lambda k: (cases.index(k[0]), k[2], CELLS.index(k[1])))
        for j, n in enumerate(counts):
            by_key = {(r["case"], r["cell"], r["size"]): ratio(r, lib) for r in rows_of(info, n, cases)}
            xs = [i + (j - (len(counts) - 1) / 2) * width for i, k in enumerate(keys) if by_key.get(k)]
            ys = [by_key[k] for k in keys if by_key.get(k)]
            ax.bar(xs, ys, width, label=f"{n} thread{'s' if n > 1 else ''}")
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([f"{cell}-{size}\n{case}" for case, cell, size in keys], fontsize=7)
        ax.set_title(title + "  (> 1: rnnkit faster)", fontsize=10)
        ax.set_xlim(-0.6, len(keys) - 0.4)
        if keys:
            ax.legend(fontsize=8, loc="upper right")
    subtitle = ", ".join(x for x in (info.get("machine"), info.get("date")) if x)
    fig.suptitle("rnnkit against PyTorch and ONNX Runtime, B = 64, T = 100, float32" +
                 (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(results: Path, draw: bool = True) -> list[Path]:
    """RESULTS.md (and ratios.png) beside results.json; returns the paths written."""
    info = json.loads(results.read_text())
    md = results.with_name("RESULTS.md")
    md.write_text(markdown(info))
    written = [md]
    if draw:
        plot(info, results.with_name("ratios.png"))
        written.append(results.with_name("ratios.png"))
    return written


def main(argv: Optional[list[str]] = None) -> Any:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="?", default=HERE / "results.json")
    ap.add_argument("--no-plot", action="store_true", help="write RESULTS.md only")
    args = ap.parse_args(argv)
    if not args.no_plot and not can_plot():
        raise SystemExit("report.py: the plot needs matplotlib (pip install matplotlib, or the [bench] extra); "
                         "--no-plot writes the tables alone")
    for path in write(args.results, draw=not args.no_plot):
        print(path)


if __name__ == "__main__":
    main()
