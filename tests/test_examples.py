"""The weather and character-model examples, run with --quick, learn:
the weather LSTM beats persistence; the character LSTM beats the unigram baseline."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), "--quick", *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def table_value(out: str, row: str) -> float:
    match = re.search(r"^\| " + re.escape(row) + r"[^|]*\|\s*([0-9.]+)", out, re.M)
    assert match, f"no row {row!r} in:\n{out}"
    return float(match.group(1))


def test_weather_lstm_beats_persistence(tmp_path: Path) -> None:
    out = run_example("weather_forecast.py", "--out", str(tmp_path))
    persistence = table_value(out, "persistence")
    lstm = table_value(out, "LSTM")
    assert lstm < persistence, out
    assert (tmp_path / "weather_lstm_quick.safetensors").is_file()


def test_char_lm_beats_unigram() -> None:
    out = run_example("char_lm.py")
    unigram = table_value(out, "unigram")
    lstm = table_value(out, "rnnkit")
    assert lstm < unigram - 0.5, out
    assert "sample (temperature" in out
