"""Forecast the next hour's temperature at Newark airport (EWR) from the
previous 5 hours: vanilla RNN, LSTM and GRU against the persistence and
linear-regression baselines, mean absolute error in deg C on a chronological
test split (the last 20% of 2013).

    python examples/weather_forecast.py [--quick] [--compare-torch] [--precision int8,bf16] [--epochs 30]
                                        [--out examples/output]

The trained LSTM is saved with rk.save to <out>/weather_lstm.safetensors with
the input standardisation folded into its weights, so it maps raw deg C
readings (B, 5, 1) straight to the next hour in deg C: the C++ forecast example
loads it. With matplotlib installed, <out>/weather_forecast.png plots the
LSTM's forecast against the truth over a test week. A --quick run (a few
epochs, the LSTM alone) writes weather_lstm_quick.safetensors and
weather_forecast_quick.png instead, so it never replaces a full run's files.

--precision int8 (or bf16, or int8,bf16) also runs each trained model with its
weight matrices quantized by rk.quantize, on the same test hours, and prints
its MAE beside the float32 one; the quantized LSTM is saved beside the float
one, as weather_lstm_int8.safetensors (or _bf16), and the C++ forecast example
runs it the same way.

Needs safetensors for the model file (`pip install safetensors`, or the
[examples] extra), and torch for --compare-torch: exit status 2 when one is
missing, before any training.

Data: NOAA hourly observations, the nycflights13 `weather` table (CC0), in
examples/data/nyc_weather_2013.csv.gz.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import rnnkit as rk

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "nyc_weather_2013.csv.gz"
LAGS = 5


def load_series(origin: str = "EWR") -> np.ndarray:
    """Hourly temperature in deg C on a regular hourly grid; the few gaps linearly interpolated."""
    hours, temps = [], []
    with gzip.open(DATA, "rt") as f:
        for row in csv.DictReader(f):
            if row["origin"] != origin or not row["temp"]:
                continue
            t = datetime.strptime(row["time_hour"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            hours.append(int(t.timestamp()) // 3600)
            temps.append((float(row["temp"]) - 32.0) * 5.0 / 9.0)
    h, v = np.array(hours), np.array(temps)
    order = np.argsort(h)
    grid = np.arange(h[order][0], h[order][-1] + 1)
    return np.interp(grid, h[order], v[order])


def windows(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, LAGS, 1) windows of the previous hours and (N, 1) next-hour targets."""
    idx = np.arange(LAGS)[None, :] + np.arange(len(series) - LAGS)[:, None]
    return series[idx][:, :, None], series[LAGS:, None]


def make_model(cell: str, hidden: int, seed: int) -> rk.Sequential:
    layer = {"rnn": rk.RNN, "lstm": rk.LSTM, "gru": rk.GRU}[cell](1, hidden, batch_first=True, seed=seed)
    return rk.Sequential(layer, rk.LastStep(), rk.Linear(hidden, 1, seed=seed + 1))


def fold_standardisation(model: rk.Sequential, mean: float, std: float) -> None:
    """Rewrite the weights so the model takes and returns raw deg C:
    W_ih x' = W_ih (x - mean)/std  ->  W_ih/std · x  with  b_ih - W_ih·mean/std;
    y = std · y' + mean  ->  Linear weight · std, bias · std + mean."""
    p = model.parameters()
    p["0.bias_ih_l0"][...] -= p["0.weight_ih_l0"].sum(axis=1) * mean / std
    p["0.weight_ih_l0"][...] /= std
    p["2.weight"][...] *= std
    p["2.bias"][...] = p["2.bias"] * std + mean


def train_rnnkit(cell: str, data: dict, args: argparse.Namespace) -> tuple[rk.Sequential, float]:
    model = make_model(cell, args.hidden, args.seed)
    trainer = rk.Trainer(model, loss="mse", optimizer=rk.Adam(lr=args.lr), clip_grad_norm=1.0,
                         lr_scheduler=lambda opt: rk.CosineAnnealingLR(opt, T_max=args.epochs))
    start = time.perf_counter()
    trainer.fit(data["x_tr"], data["y_tr"], epochs=args.epochs, batch_size=args.batch_size,
                validation_data=(data["x_va"], data["y_va"]), early_stopping=args.patience,
                seed=args.seed, progress=False)
    return model, time.perf_counter() - start


def train_torch(cell: str, data: dict, args: argparse.Namespace) -> tuple[np.ndarray, float]:
    """The same model, data, optimizer, schedule and early stopping in PyTorch; returns test predictions."""
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(rk.get_num_threads())
    rnn_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    rnn, head = rnn_cls(1, args.hidden, batch_first=True), torch.nn.Linear(args.hidden, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    x_tr, y_tr = (torch.tensor(data[k], dtype=torch.float32) for k in ("x_tr", "y_tr"))
    x_va, y_va = (torch.tensor(data[k], dtype=torch.float32) for k in ("x_va", "y_va"))

    def predict(x: torch.Tensor) -> torch.Tensor:
        out, _ = rnn(x)
        return head(out[:, -1])

    rng = np.random.default_rng(args.seed)
    best, best_state, waited = float("inf"), None, 0
    start = time.perf_counter()
    for _ in range(args.epochs):
        for idx in np.array_split(rng.permutation(len(x_tr)), np.ceil(len(x_tr) / args.batch_size)):
            idx_t = torch.as_tensor(idx)
            loss = torch.nn.functional.mse_loss(predict(x_tr[idx_t]), y_tr[idx_t])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        sched.step()
        with torch.no_grad():
            val = torch.nn.functional.mse_loss(predict(x_va), y_va).item()
        if val < best:
            best, waited = val, 0
            best_state = [p.detach().clone() for p in params]
        else:
            waited += 1
            if waited >= args.patience:
                break
    with torch.no_grad():
        for p, b in zip(params, best_state):
            p.copy_(b)
        pred = predict(torch.tensor(data["x_te"], dtype=torch.float32)).numpy()
    return pred, time.perf_counter() - start


def plot_week(path: Path, truth: np.ndarray, forecast: np.ndarray) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no plot drawn"
    hours = np.arange(len(truth))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(hours, truth, label="observed", color="black", lw=1.2)
    ax.plot(hours, forecast, label="LSTM forecast (1 h ahead)", color="tab:orange", lw=1.0)
    ax.set_xlabel("hour of the test week")
    ax.set_ylabel("temperature at EWR (deg C)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def precisions(text: str) -> list[str]:
    """--precision: a comma-separated list of rk.quantize's precisions, int8 and bf16."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in ("int8", "bf16") for name in names):
        raise argparse.ArgumentTypeError(f"expected int8, bf16 or int8,bf16, got {text!r}")
    return list(dict.fromkeys(names))


def check_requirements(args: argparse.Namespace) -> None:
    """Exit with status 2 before any training if a package the run needs is missing."""
    needed = [("safetensors", "this example saves its LSTM with rk.save, which needs safetensors")]
    if args.compare_torch:
        needed.append(("torch", "--compare-torch trains the same models in PyTorch"))
    for module, why in needed:
        try:
            __import__(module)
        except ImportError:
            print(f"weather_forecast.py: {why};\ninstall it with `pip install {module}` and run it again.",
                  file=sys.stderr)
            sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a short run of the LSTM alone (for the test suite); its files get a _quick suffix")
    ap.add_argument("--compare-torch", action="store_true", help="train the same models in PyTorch too")
    ap.add_argument("--precision", type=precisions, default=[], metavar="int8,bf16",
                    help="after training, also test each model quantized by rk.quantize to these precisions")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated: rnn, lstm, gru (lstm is always trained)")
    ap.add_argument("--out", type=Path, default=HERE / "output")
    args = ap.parse_args()
    check_requirements(args)
    if args.quick:
        args.epochs, args.lr = 8, 3e-3
    suffix = "_quick" if args.quick else ""
    cells = ["lstm"] if args.quick else sorted(set(args.cells.split(",")) | {"lstm"}, key="rnn lstm gru".find)

    series = load_series()
    x, y = windows(series)
    n_test = len(x) // 5
    n_train = len(x) - n_test
    n_val = n_train // 8  # the last eighth of the training span, chronologically
    mean, std = x[:n_train].mean(), x[:n_train].std()
    xs, ys = (x - mean) / std, (y - mean) / std
    data = dict(x_tr=xs[: n_train - n_val], y_tr=ys[: n_train - n_val], x_va=xs[n_train - n_val : n_train],
                y_va=ys[n_train - n_val : n_train], x_te=xs[n_train:])
    x_te, y_te = x[n_train:], y[n_train:, 0]

    rows = [("persistence (last hour)", np.abs(x_te[:, -1, 0] - y_te).mean(), None, None, None)]
    design = np.c_[x[:n_train, :, 0], np.ones(n_train)]
    coef = np.linalg.lstsq(design, y[:n_train, 0], rcond=None)[0]
    rows.append(("linear regression, 5 lags", np.abs(np.c_[x_te[:, :, 0], np.ones(n_test)] @ coef - y_te).mean(),
                 None, None, None))
    models, maes = {}, {}
    for cell in cells:
        model, wall = train_rnnkit(cell, data, args)
        fold_standardisation(model, mean, std)
        models[cell] = model
        maes[cell] = mae = np.abs(model.predict(x_te)[:, 0] - y_te).mean()
        t_mae = t_wall = None
        if args.compare_torch:
            pred, t_wall = train_torch(cell, data, args)
            t_mae = np.abs(pred[:, 0] * std + mean - y_te).mean()
        rows.append((f"{cell.upper()}({args.hidden}) + Linear", mae, wall, t_mae, t_wall))

    # The trained (float32) models with their weight matrices stored and multiplied in
    # int8 or bfloat16, on the same raw deg C test windows.
    quantized = {}  # (cell, precision) -> (test MAE, largest change of a forecast)
    quantized_lstm = {}  # precision -> the quantized LSTM model, saved below
    for cell, model in models.items():
        forecast = model.predict(x_te)[:, 0]
        for precision in args.precision:
            q = rk.quantize(model, precision)
            q_forecast = q.predict(x_te)[:, 0]
            quantized[cell, precision] = (np.abs(q_forecast - y_te).mean(), np.abs(q_forecast - forecast).max())
            if cell == "lstm":
                quantized_lstm[precision] = q

    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / f"weather_lstm{suffix}.safetensors"
    rk.save(models["lstm"], saved)
    for precision, q in quantized_lstm.items():
        rk.save(q, args.out / f"weather_lstm{suffix}_{precision}.safetensors")
    week = slice(0, 24 * 7)
    note = plot_week(args.out / f"weather_forecast{suffix}.png", y_te[week], models["lstm"].predict(x_te[week])[:, 0])

    print(f"\nEWR 2013, next-hour temperature from the previous {LAGS} hours; "
          f"train {n_train - n_val}, validation {n_val}, test {n_test} hours (chronological)")
    header = f"| {'model':<28} | {'rnnkit MAE (C)':>14} | {'train s':>7} |"
    if args.compare_torch:
        header += f" {'PyTorch MAE (C)':>15} | {'train s':>7} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, mae, wall, t_mae, t_wall in rows:
        line = f"| {name:<28} | {mae:>14.3f} | {'' if wall is None else f'{wall:.1f}':>7} |"
        if args.compare_torch:
            line += f" {'' if t_mae is None else f'{t_mae:.3f}':>15} | {'' if t_wall is None else f'{t_wall:.1f}':>7} |"
        print(line)
    if args.precision:
        print("\nThe same models quantized by rk.quantize, on the same test hours (MAE in deg C; change: "
              "against float32; largest: the largest change of one forecast)")
        header = f"| {'model':<28} | {'float32 MAE':>11} |"
        for precision in args.precision:
            header += f" {precision + ' MAE':>9} | {'change':>7} | {'largest':>7} |"
        print(header)
        print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
        for cell in cells:
            line = f"| {f'{cell.upper()}({args.hidden}) + Linear':<28} | {maes[cell]:>11.4f} |"
            for precision in args.precision:
                q_mae, change = quantized[cell, precision]
                line += f" {q_mae:>9.4f} | {q_mae - maes[cell]:>+7.4f} | {change:>7.4f} |"
            print(line)
    print(f"\n{rk.get_num_threads()} thread(s); saved the LSTM (deg C in, deg C out) to {saved}; {note}")
    if args.precision:
        print("the quantized LSTM beside it: "
              + ", ".join(f"weather_lstm{suffix}_{precision}.safetensors" for precision in args.precision))


if __name__ == "__main__":
    main()
