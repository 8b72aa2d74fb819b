"""examples/digits.py --quick learns: an LSTM reading the 8x8 digits row by row reaches at
least 85% test accuracy. Skipped when scikit-learn (the data's source) is not installed."""

from __future__ import annotations

from test_example_sentiment import run_quick


def test_digits_quick_learns():
    table = run_quick("digits")
    rnn = next(acc for model, acc in table.items() if model.startswith("rnnkit "))
    assert rnn >= 0.85, table
