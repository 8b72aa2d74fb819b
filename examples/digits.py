"""Recognise handwritten digits by reading each 8x8 image one pixel row at a time: an LSTM
(or GRU) sees 8 steps of 8 features and classifies the digit from its last state, using
rnnkit's training API (Sequential, LastStep, Trainer with validation data and early stopping).

Data: scikit-learn's `load_digits()` (1,797 images of the UCI optical digits set, bundled with
scikit-learn, which this example needs: `pip install scikit-learn`). Pixels scaled to [0, 1].
Split: stratified 70/10/20 (train/validation/test), seed 0. Baselines: the majority class, and
scikit-learn's multinomial logistic regression on the 64 pixels. `--compare-torch` trains the
same architecture in PyTorch from the same initial weights, on the same batches, with the
same optimizer and early stopping.

    python examples/digits.py [--cell lstm|gru] [--hidden 64] [--epochs 60] [--quick] [--compare-torch]
                              [--precision int8,bf16]

`--precision int8` (or bf16, or int8,bf16) also scores the trained model with its weight matrices
quantized by rk.quantize (int8 or bfloat16) on the same test images, beside the float32 figure.

Exit status 2 when scikit-learn is not installed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import rnnkit as rk


def load_rows() -> tuple[np.ndarray, np.ndarray]:
    """Images as sequences (1797, 8 rows, 8 pixels) in [0, 1], float32, and labels 0..9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        print("digits.py: this example needs scikit-learn for its data set (load_digits);\n"
              "install it with `pip install scikit-learn` and run it again.", file=sys.stderr)
        sys.exit(2)
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def stratified_split(labels: np.ndarray, seed: int, fractions=(0.7, 0.1)) -> tuple[np.ndarray, ...]:
    """Index arrays (train, validation, test) with each class split in the same proportions."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a = int(round(fractions[0] * len(idx)))
        b = a + int(round(fractions[1] * len(idx)))
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            part.append(chunk)
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)


def train_torch(model: rk.Sequential, args, data) -> tuple[float, float, int]:
    """The same network in PyTorch, started from `model`'s weights, trained on the same
    batches with the same optimizer and early stopping. Returns (test accuracy, seconds, epochs)."""
    import torch
    from torch import nn

    torch.set_num_threads(rk.get_num_threads())
    torch.manual_seed(args.seed)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = (nn.LSTM if args.cell == "lstm" else nn.GRU)(8, args.hidden, batch_first=True)
            self.fc = nn.Linear(args.hidden, 10)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])  # the last step (every sequence has 8)

    net = Net()
    sd = model.state_dict()  # rnnkit's names: "0.weight_ih_l0", ..., "2.weight", "2.bias"
    for name, p in net.rnn.named_parameters():
        p.data.copy_(torch.from_numpy(sd[f"0.{name}"]))
    net.fc.weight.data.copy_(torch.from_numpy(sd["2.weight"]))
    net.fc.bias.data.copy_(torch.from_numpy(sd["2.bias"]))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    (x, y), (xv, yv), (xt, yt) = [tuple(torch.from_numpy(a) for a in part) for part in data]

    def evaluate(xe, ye):
        net.eval()
        with torch.no_grad():
            logits = net(xe)
        return float(loss_fn(logits, ye)), float((logits.argmax(1) == ye).double().mean())

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)  # the Trainer's shuffling, batch for batch
    best, best_state, waited, epochs = np.inf, None, 0, 0
    for epoch in range(args.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        for i in range(0, len(y), args.batch_size):
            b = order[i : i + args.batch_size]
            loss = loss_fn(net(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        val_loss, _ = evaluate(xv, yv)
        epochs = epoch + 1
        if val_loss < best:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= args.patience:
                break
    net.load_state_dict(best_state)
    wall = time.perf_counter() - start
    return evaluate(xt, yt)[1], wall, epochs


def precisions(text: str) -> list[str]:
    """--precision: a comma-separated list of rk.quantize's precisions, int8 and bf16."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in ("int8", "bf16") for name in names):
        raise argparse.ArgumentTypeError(f"expected int8, bf16 or int8,bf16, got {text!r}")
    return list(dict.fromkeys(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=60, help="at most this many (early stopping on validation loss)")
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a short run for the test suite")
    ap.add_argument("--compare-torch", action="store_true", help="train the same model in PyTorch too")
    ap.add_argument("--precision", type=precisions, default=[], metavar="int8,bf16",
                    help="after training, also test the model quantized by rk.quantize to these precisions")
    args = ap.parse_args()
    if args.quick:
        args.epochs = min(args.epochs, 15)

    x, y = load_rows()
    tr, va, te = stratified_split(y, args.seed)
    print(f"{len(x)} images read as {x.shape[1]} steps of {x.shape[2]} pixels: "
          f"train {len(tr)}, validation {len(va)}, test {len(te)}")

    results: list[tuple[str, float, float, str]] = []  # (model, test accuracy, seconds, note)
    majority = np.bincount(y[tr]).argmax()
    results.append((f"majority class ({majority})", float(np.mean(y[te] == majority)), 0.0, ""))

    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    logreg = LogisticRegression(max_iter=2000).fit(x[tr].reshape(len(tr), -1), y[tr])
    acc_lr = float(logreg.score(x[te].reshape(len(te), -1), y[te]))
    results.append(("logistic regression, 64 pixels (sklearn)", acc_lr, time.perf_counter() - start, ""))

    # rnnkit: LSTM/GRU over the 8 rows -> the state after the last row -> Linear to 10 classes.
    Cell = rk.LSTM if args.cell == "lstm" else rk.GRU
    model = rk.Sequential(
        Cell(8, args.hidden, batch_first=True, seed=args.seed),
        rk.LastStep(),
        rk.Linear(args.hidden, 10, seed=args.seed + 1),
    )
    model.summary()
    init = model.state_dict()  # PyTorch starts from the same weights
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.Adam(lr=args.lr))
    start = time.perf_counter()
    history = trainer.fit(x[tr], y[tr], epochs=args.epochs, batch_size=args.batch_size,
                          validation_data=(x[va], y[va]), early_stopping=args.patience,
                          seed=args.seed, progress=False)
    wall_rk = time.perf_counter() - start
    for e, (loss, vl, vacc) in enumerate(zip(history["loss"], history["val_loss"], history["val_accuracy"]), 1):
        print(f"epoch {e:2d}  train loss {loss:.4f}  val loss {vl:.4f}  val accuracy {vacc:.3f}")
    acc_rk = trainer.evaluate(x[te], y[te])["accuracy"]
    arch = f"{args.cell.upper()}(8, {args.hidden}) + LastStep"
    results.append((f"rnnkit {arch}", acc_rk, wall_rk, f"{len(history['loss'])} epochs"))

    # The trained model with its weight matrices stored and multiplied in int8 or bfloat16,
    # scored by the same evaluation; "changed": test images whose predicted class differs.
    quantized: list[tuple[str, float, int]] = []  # (precision, test accuracy, changed predictions)
    classes = model.predict(x[te]).argmax(-1)
    for precision in args.precision:
        q = rk.quantize(model, precision)
        acc_q = rk.Trainer(q, loss="cross_entropy").evaluate(x[te], y[te])["accuracy"]
        changed = int(np.sum(q.predict(x[te]).argmax(-1) != classes))
        quantized.append((precision, acc_q, changed))

    if args.compare_torch:
        model.load_state_dict(init)
        acc_t, wall_t, ep_t = train_torch(model, args, [(x[s], y[s]) for s in (tr, va, te)])
        results.append((f"PyTorch {arch}", acc_t, wall_t, f"{ep_t} epochs"))

    print()
    print(f"scikit-learn digits, 8 rows of 8 pixels; test = {len(te)} images (stratified 20%, seed {args.seed})"
          + (" [--quick]" if args.quick else ""))
    w = max(len(r[0]) for r in results) + 2
    print(f"{'model':<{w}}{'test accuracy':>14}{'train time (s)':>16}  notes")
    for name, acc, secs, note in results:
        print(f"{name:<{w}}{acc:>14.3f}{secs:>16.1f}  {note}")
    print(f"{rk.get_num_threads()} thread(s); wall times include the per-epoch validation pass")
    if quantized:
        print(f"\nrnnkit {arch}, quantized by rk.quantize: the same test images (change: against float32)")
        print(f"{'weights':<22}{'test accuracy':>14}{'change':>9}{'changed predictions':>22}")
        print(f"{'float32 (as trained)':<22}{acc_rk:>14.3f}")
        for precision, acc_q, changed in quantized:
            print(f"{precision:<22}{acc_q:>14.3f}{acc_q - acc_rk:>+9.3f}{f'{changed} of {len(te)}':>22}")


if __name__ == "__main__":
    main()
