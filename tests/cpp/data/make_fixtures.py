"""Write the model files the C++ tests load (tests/cpp/test_model.cpp), with
Python's rk.save, and next to each the inputs and Python's predictions:

    <name>.safetensors           the model, as rk.save writes it
    <name>.expected.safetensors  x (float32 features, or int64 ids), lengths (int64), y (float32)

    python tests/cpp/data/make_fixtures.py

tests/test_runtime.py checks that these files still load and predict the same
in Python, so they cannot silently drift from rk.save. Small on purpose (KBs).
v1/ keeps two model files as rk.save wrote them in format version 1, which both
loaders must go on reading (tests/cpp/test_files.cpp, tests/test_file_hardening.py);
this script leaves them alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import safetensors.numpy

import rnnkit as rk

HERE = Path(__file__).resolve().parent
B, T = 3, 7


def fixtures() -> dict[str, tuple[rk.Module, np.ndarray]]:
    """name -> (model, batch-first input): one per-step stack and one classifier over token ids."""
    rng = np.random.default_rng(2026)
    lstm = rk.Sequential(rk.LSTM(3, 6, num_layers=2, proj_size=4, batch_first=True, seed=1), rk.Linear(4, 2, seed=2))
    gru = rk.Sequential(rk.Embedding(11, 5, padding_idx=0, seed=3), rk.GRU(5, 6, batch_first=True, seed=4),
                        rk.LastStep(), rk.Linear(6, 3, seed=5))
    return {
        "lstm_proj_per_step": (lstm, rng.standard_normal((B, T, 3)).astype(np.float32)),
        "embedding_gru_last": (gru, rng.integers(1, 11, (B, T)).astype(np.int64)),
    }


def expected(model: rk.Module, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(model.eval().predict(x, lengths=lengths), dtype=np.float32)


def main() -> None:
    lengths = np.array([T, 2, 5], dtype=np.int64)
    for name, (model, x) in fixtures().items():
        rk.save(model, HERE / f"{name}.safetensors")
        tensors = {"x": x, "lengths": lengths, "y": expected(model, x, lengths)}
        safetensors.numpy.save_file(tensors, str(HERE / f"{name}.expected.safetensors"))
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
