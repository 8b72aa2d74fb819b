"""examples/seq2seq.py --quick learns: the LSTM encoder-decoder reverses unseen words from
Pride and Prejudice far above chance (exact match >= 0.3 and per-character accuracy >= 0.7;
chance per character is about 1/26)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# "model  exact match  char acc  train s" rows, e.g. "rnnkit   0.958   0.981   11.0"
ROW = re.compile(r"^(?P<model>\S+)\s+(?P<exact>[01]\.\d{3})\s+(?P<char>[01]\.\d{3})\s+(?P<secs>\d+\.\d)\s*$")


def test_seq2seq_quick_reverses_unseen_words():
    env = dict(os.environ)
    # libgomp's default spin-waiting makes 2-thread runs several times slower on shared cores
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "seq2seq.py"), "--quick"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"seq2seq.py failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    rows = {m["model"]: (float(m["exact"]), float(m["char"]))
            for m in map(ROW.match, proc.stdout.splitlines()) if m}
    assert "rnnkit" in rows, f"no rnnkit row in the results table:\n{proc.stdout[-3000:]}"
    exact, char = rows["rnnkit"]
    assert exact >= 0.3, proc.stdout[-2000:]
    assert char >= 0.7, proc.stdout[-2000:]
