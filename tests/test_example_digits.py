"""examples/digits.py --quick learns: an LSTM reading the 8x8 digits row by row reaches at
least 85% test accuracy, and quantized to int8 or bfloat16 it scores about the same. Skipped
when scikit-learn (the data's source) is not installed."""

from __future__ import annotations

from test_example_sentiment import run_quick


def test_digits_quick_learns():
    table = run_quick("digits", "--precision", "int8,bf16")
    rnn = next(acc for model, acc in table.items() if model.startswith("rnnkit "))
    assert rnn >= 0.85, table
    assert abs(table["int8"] - rnn) <= 0.02 and abs(table["bf16"] - rnn) <= 0.02, table
