"""A character-level LSTM language model on Jane Austen's *Pride and Prejudice*:
truncated backpropagation through time with the state carried across batches,
validation bits per character against the unigram baseline, and a sample
generated with temperature.

    python examples/char_lm.py [--quick] [--compare-torch] [--precision int8,bf16] [--epochs 3] [--hidden 256]
                               [--temperature 0.7]

The text (public domain; examples/data/pride_and_prejudice.txt.gz) is split
into the first 90% for training and the last 10% for validation. Training
cuts the text into --batch-size parallel streams and walks them --bptt
characters at a time; each window starts from the state the previous window
ended in, and its gradient stops there (truncated BPTT).

--precision int8 (or bf16, or int8,bf16) also measures the trained model with
its weight matrices quantized by rk.quantize (the LSTM's and the Linear
layer's; the embedding stays float32) on the same validation text, and prints
its bits per character beside the float32 figure.
"""

from __future__ import annotations

import argparse
import gzip
import math
import time
from pathlib import Path

import numpy as np

import rnnkit as rk

DATA = Path(__file__).resolve().parent / "data" / "pride_and_prejudice.txt.gz"


def streams(ids: np.ndarray, batch: int) -> np.ndarray:
    """(batch, n) parallel streams of consecutive characters."""
    n = len(ids) // batch
    return ids[: n * batch].reshape(batch, n)


def build(vocab: int, args: argparse.Namespace) -> rk.Sequential:
    return rk.Sequential(
        rk.Embedding(vocab, args.embed, seed=args.seed),
        rk.LSTM(args.embed, args.hidden, batch_first=True, seed=args.seed + 1),
        rk.Linear(args.hidden, vocab, seed=args.seed + 2),
    )


def bits_per_char(model: rk.Sequential, data: np.ndarray, bptt: int) -> float:
    """Mean cross-entropy in bits of predicting each next character, state carried through the text."""
    was_training = model.training
    model.eval()
    s = streams(data, 8)
    state, total, count = None, 0.0, 0
    for i in range(0, s.shape[1] - 1, bptt):
        x, y = s[:, i : i + bptt], s[:, i + 1 : i + bptt + 1]
        x = x[:, : y.shape[1]]
        logits, state = model(x, state=state, return_state=True)
        loss, _ = rk.losses.cross_entropy(logits, y)
        total, count = total + loss * y.size, count + y.size
    model.train(was_training)  # a quantized model stays in eval mode: it cannot train
    return total / count / math.log(2)


def train_rnnkit(train: np.ndarray, valid: np.ndarray, vocab: int, args: argparse.Namespace) -> tuple:
    model = build(vocab, args)
    opt = rk.Adam(lr=args.lr)
    s = streams(train, args.batch_size)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        state = None
        for i in range(0, s.shape[1] - 1, args.bptt):
            x, y = s[:, i : i + args.bptt], s[:, i + 1 : i + args.bptt + 1]
            x = x[:, : y.shape[1]]
            logits, state = model(x, state=state, return_state=True)
            loss, grad = rk.losses.cross_entropy(logits, y)
            model.zero_grad()
            model.backward(grad)  # the gradient stops at this window's initial state
            rk.clip_grad_norm(model, args.clip)
            opt.step(model)
        print(f"epoch {epoch + 1}: last batch loss {loss / math.log(2):.3f} bits/char")
    wall = time.perf_counter() - start
    return model, bits_per_char(model, valid, args.bptt), wall


def train_torch(train: np.ndarray, valid: np.ndarray, vocab: int, args: argparse.Namespace) -> tuple:
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(rk.get_num_threads())
    emb = torch.nn.Embedding(vocab, args.embed)
    lstm = torch.nn.LSTM(args.embed, args.hidden, batch_first=True)
    head = torch.nn.Linear(args.hidden, vocab)
    params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)

    def run(x: np.ndarray, state: object) -> tuple:
        out, state = lstm(emb(torch.as_tensor(x)), state)
        return head(out), state

    s = streams(train, args.batch_size)
    start = time.perf_counter()
    for _ in range(args.epochs):
        state = None
        for i in range(0, s.shape[1] - 1, args.bptt):
            x, y = s[:, i : i + args.bptt], s[:, i + 1 : i + args.bptt + 1]
            logits, state = run(x[:, : y.shape[1]], state)
            state = tuple(h.detach() for h in state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), torch.as_tensor(y).reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, args.clip)
            opt.step()
    wall = time.perf_counter() - start
    with torch.no_grad():
        v = streams(valid, 8)
        state, total, count = None, 0.0, 0
        for i in range(0, v.shape[1] - 1, args.bptt):
            x, y = v[:, i : i + args.bptt], v[:, i + 1 : i + args.bptt + 1]
            logits, state = run(x[:, : y.shape[1]], state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), torch.as_tensor(y).reshape(-1))
            total, count = total + loss.item() * y.size, count + y.size
    return total / count / math.log(2), wall


def precisions(text: str) -> list[str]:
    """--precision: a comma-separated list of rk.quantize's precisions, int8 and bf16."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(name not in ("int8", "bf16") for name in names):
        raise argparse.ArgumentTypeError(f"expected int8, bf16 or int8,bf16, got {text!r}")
    return list(dict.fromkeys(names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run for the test suite")
    ap.add_argument("--compare-torch", action="store_true", help="train the same model in PyTorch too")
    ap.add_argument("--precision", type=precisions, default=[], metavar="int8,bf16",
                    help="after training, also measure the model quantized by rk.quantize to these precisions")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--embed", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with gzip.open(DATA, "rt", encoding="ascii") as f:
        text = f.read()
    if args.quick:
        text = text[:120_000]
        args.epochs, args.hidden = 2, 96
    vocab = rk.text.CharVocabulary.build(text)
    ids = vocab.encode(text)
    split = int(0.9 * len(ids))
    train, valid = ids[:split], ids[split:]

    counts = np.bincount(train, minlength=len(vocab)) + 1.0  # add-one smoothing
    p = counts / counts.sum()
    unigram = -np.mean(np.log2(p[valid]))

    model, bpc, wall = train_rnnkit(train, valid, len(vocab), args)
    # The trained model with its weight matrices stored and multiplied in int8 or bfloat16.
    quantized = {precision: bits_per_char(rk.quantize(model, precision), valid, args.bptt)
                 for precision in args.precision}
    torch_bpc = torch_wall = None
    if args.compare_torch:
        torch_bpc, torch_wall = train_torch(train, valid, len(vocab), args)

    prompt = "It is a truth universally acknowledged"
    sample = rk.generate(model, vocab.encode(prompt), 300, temperature=args.temperature, seed=args.seed)

    print(f"\nPride and Prejudice, {len(train):,} training / {len(valid):,} validation characters, "
          f"{len(vocab)} distinct; LSTM({args.hidden}), {args.epochs} epoch(s), windows of {args.bptt}")
    header = f"| {'model':<34} | {'validation bits/char':>20} | {'train s':>7} |"
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    print(f"| {'unigram frequencies (baseline)':<34} | {unigram:>20.3f} | {'':>7} |")
    print(f"| {'rnnkit Embedding+LSTM+Linear':<34} | {bpc:>20.3f} | {wall:>7.1f} |")
    if torch_bpc is not None:
        print(f"| {'PyTorch, same model and data':<34} | {torch_bpc:>20.3f} | {torch_wall:>7.1f} |")
    if quantized:
        print("\nThe rnnkit model quantized by rk.quantize, on the same validation text (change: against float32)")
        header = f"| {'weights':<34} | {'validation bits/char':>20} | {'change':>7} |"
        print(header)
        print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
        print(f"| {'float32 (as trained)':<34} | {bpc:>20.4f} | {'':>7} |")
        for precision, q_bpc in quantized.items():
            print(f"| {precision:<34} | {q_bpc:>20.4f} | {q_bpc - bpc:>+7.4f} |")
    print(f"\nsample (temperature {args.temperature}):\n{prompt}{vocab.decode(sample)}")


if __name__ == "__main__":
    main()
