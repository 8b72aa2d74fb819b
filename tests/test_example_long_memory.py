"""examples/long_memory.py --quick learns the adding problem at T = 100: the LSTM and the
GRU get well below the variance baseline (always predicting 1.0, MSE about 0.167)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# "   T  cell   baseline  rnnkit MSE  / baseline  rnnkit s" rows, e.g. " 100  LSTM   0.1605   0.0003   0.002   12.5"
ROW = re.compile(r"^\s*(?P<T>\d+)\s{2}(?P<cell>\S.*?)\s{2,}(?P<baseline>\d+\.\d{4})\s+(?P<mse>\d+\.\d{4})\s+"
                 r"(?P<ratio>\d+\.\d{3})\s+(?P<secs>\d+\.\d)\b")


def run_quick() -> dict[str, tuple[float, float]]:
    """Run the example with --quick; returns {cell: (baseline MSE, test MSE)} for T = 100."""
    env = dict(os.environ)
    # libgomp's default spin-waiting makes 2-thread runs several times slower on shared cores
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "long_memory.py"), "--quick"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"long_memory.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    table = {}
    for line in proc.stdout.splitlines():
        m = ROW.match(line)
        if m and int(m["T"]) == 100:
            table[m["cell"]] = (float(m["baseline"]), float(m["mse"]))
    assert table, f"no results table in the output:\n{proc.stdout[-3000:]}"
    return table


def test_long_memory_quick_gated_cells_beat_baseline():
    table = run_quick()
    assert set(table) == {"vanilla RNN (tanh)", "LSTM", "GRU"}, table
    baseline = table["LSTM"][0]
    assert 0.14 < baseline < 0.19, table  # Var(u1 + u2) = 1/6
    assert table["LSTM"][1] < 0.5 * baseline, table
    assert table["GRU"][1] < 0.5 * baseline, table
