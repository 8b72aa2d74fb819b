"""benchmarks/report.py: the committed RESULTS.md is what it writes from the committed results.json,
and a results file with only the required fields still gives tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_report():
    spec = importlib.util.spec_from_file_location("report", BENCH / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_is_written_from_results_json() -> None:
    report = load_report()
    info = json.loads((BENCH / "results.json").read_text())
    assert report.markdown(info) == (BENCH / "RESULTS.md").read_text(), (
        "benchmarks/RESULTS.md is out of date: run python benchmarks/report.py")


def test_missing_fields_leave_cells_empty(tmp_path: Path) -> None:
    report = load_report()
    rows = [{"case": "inference", "cell": "LSTM", "size": 128, "threads": 1, "ms": {"rnnkit": 5.0}},
            {"case": "lengths-training", "cell": "GRU", "size": 128, "threads": 1, "ms": {"rnnkit": 3.0}},
            {"case": "streaming-python", "cell": "GRU", "size": 8, "threads": 1, "ms": {"rnnkit": 0.5}}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [{"threads": 1, "rows": rows}]}))
    (md,) = report.write(path, draw=False)
    text = md.read_text()
    assert "| inference | LSTM | 128 | 5 |  |" in text
    assert "| training | GRU | 128 |  | 3 |" in text
    assert "| GRU | 8 |" in text and "## Memory" not in text
