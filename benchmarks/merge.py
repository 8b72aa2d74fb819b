"""Merge one run's reduced-precision results into another results.json, then rewrite its report.

    python benchmarks/merge.py /tmp/run/results.json [benchmarks/results.json]

A `bench.py --cases precision` run measures the int8 / bfloat16 cases alone; this copies its
"precision", "streaming_cpp_precision" and "precision_run" entries into the full run's file (the
float tables stay as they were measured, with their own date) and writes RESULTS.md and
ratios.png beside it (report.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import report

KEYS = ("precision", "streaming_cpp_precision", "precision_run")


def main(argv: list[str]) -> None:
    if not 1 <= len(argv) <= 2:
        sys.exit(__doc__)
    source = json.loads(Path(argv[0]).read_text())
    target = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "results.json"
    info = json.loads(target.read_text())
    source.setdefault("precision_run", {k: source.get(k) for k in ("date", "machine", "versions")})
    missing = [k for k in KEYS if k not in source]
    if missing:
        sys.exit(f"{argv[0]} has no {', '.join(missing)}: run bench.py with --precision")
    info.update({k: source[k] for k in KEYS})
    target.write_text(json.dumps(info, indent=1) + "\n")
    print("written: " + ", ".join(str(p) for p in [target, *report.write(target, draw=report.can_plot())]))


if __name__ == "__main__":
    main(sys.argv[1:])
