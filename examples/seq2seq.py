"""Sequence to sequence with an LSTM encoder and an LSTM decoder: reverse (or sort)
the letters of words from Jane Austen's *Pride and Prejudice* ("darcy" -> "ycrad",
with ``--task sort`` "darcy" -> "acdry").

The input and output are sequences of different lengths (the output has an
end-of-word token). The encoder reads the letters (variable lengths through
``lengths``); its final state (h, c) is the decoder's initial state. Training uses
teacher forcing: the decoder reads <sos> + the target word in one call and is
trained to predict the target word + <eos> (cross-entropy per step, padded
steps masked by ``lengths``). The gradient of the decoder's initial state, returned
by ``decoder.backward``, is passed into ``encoder.backward`` as the gradient of the
encoder's final state, so the encoder learns only through it. Testing decodes
greedily, one step at a time, carrying the decoder state through ``hx``.

Data: the distinct words of 3 to 10 letters in the novel (lower-cased,
examples/data/pride_and_prejudice.txt.gz, public domain), split by word (seed 0):
85% train, 15% test, so every test word is unseen in training.
Metrics on the test words: exact match (the whole output word right) and
per-character accuracy (letters right at their position, over the target letters).
Chance per character is about 1/26.

    python examples/seq2seq.py [--task reverse|sort] [--epochs 20] [--hidden 128] [--seed 0] [--threads N]
                               [--quick] [--compare-torch]

``--compare-torch`` trains the same model in PyTorch (same initial weights, data,
batch order and hyper-parameters) and adds its row to the table.
"""

from __future__ import annotations

import argparse
import gzip
import re
import time
from pathlib import Path

import numpy as np

import rnnkit as rk

DATA = Path(__file__).resolve().parent / "data" / "pride_and_prejudice.txt.gz"
PAD, SOS, EOS = 0, 1, 2
LETTERS = "abcdefghijklmnopqrstuvwxyz"
VOCAB = 3 + len(LETTERS)  # <pad>, <sos>, <eos>, a..z
MIN_LEN, MAX_LEN = 3, 10


def load_words(seed: int, test_fraction: float = 0.15) -> tuple[list[str], list[str]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        text = f.read()
    words = sorted({w.lower() for w in re.findall(r"[A-Za-z]+", text) if MIN_LEN <= len(w) <= MAX_LEN})
    order = np.random.default_rng(seed).permutation(len(words))
    n_test = int(round(test_fraction * len(words)))
    return [words[i] for i in order[n_test:]], [words[i] for i in order[:n_test]]


def transform(word: str, task: str) -> str:
    return word[::-1] if task == "reverse" else "".join(sorted(word))


def encode(words: list[str], task: str) -> dict[str, np.ndarray]:
    """Padded id arrays: src (B, 10) the word; dec_in (B, 11) <sos> + target; dec_out (B, 11) target + <eos>."""
    n = len(words)
    src = np.full((n, MAX_LEN), PAD, np.int64)
    dec_in = np.full((n, MAX_LEN + 1), PAD, np.int64)
    dec_out = np.full((n, MAX_LEN + 1), PAD, np.int64)
    for i, w in enumerate(words):
        ids = [3 + LETTERS.index(ch) for ch in w]
        out = [3 + LETTERS.index(ch) for ch in transform(w, task)]
        src[i, : len(w)] = ids
        dec_in[i, : len(w) + 1] = [SOS] + out
        dec_out[i, : len(w) + 1] = out + [EOS]
    lengths = np.array([len(w) for w in words], np.int64)
    return {"src": src, "src_len": lengths, "dec_in": dec_in, "dec_out": dec_out, "dec_len": lengths + 1}


def scores(pred: np.ndarray, data: dict[str, np.ndarray]) -> tuple[float, float]:
    """Exact-match and per-character accuracy of greedy predictions (B, 11) against dec_out."""
    exact, chars_right, chars = 0, 0, 0
    for p, target, n in zip(pred, data["dec_out"], data["src_len"]):
        stop = np.flatnonzero(p == EOS)
        p_word = p[: stop[0]] if len(stop) else p
        exact += len(p_word) == n and bool(np.all(p_word == target[:n]))
        chars_right += int(np.sum(p[:n] == target[:n]))
        chars += int(n)
    return exact / len(pred), chars_right / chars


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


# ---- rnnkit ----------------------------------------------------------------------------
class RkSeq2Seq:
    """Five rnnkit modules, one Adam optimizer each (an optimizer updates one module)."""

    def __init__(self, emb: int, hidden: int, lr: float, seed: int) -> None:
        self.enc_emb = rk.Embedding(VOCAB, emb, padding_idx=PAD, seed=seed)
        self.encoder = rk.LSTM(emb, hidden, batch_first=True, seed=seed + 1)
        self.dec_emb = rk.Embedding(VOCAB, emb, padding_idx=PAD, seed=seed + 2)
        self.decoder = rk.LSTM(emb, hidden, batch_first=True, seed=seed + 3)
        self.head = rk.Linear(hidden, VOCAB, seed=seed + 4)
        self.modules = {"enc_emb": self.enc_emb, "encoder": self.encoder, "dec_emb": self.dec_emb,
                        "decoder": self.decoder, "head": self.head}
        self.optimizers = {name: rk.Adam(lr=lr) for name in self.modules}

    def mode(self, training: bool) -> None:
        for m in self.modules.values():
            m.train(training)

    def train_step(self, b: dict[str, np.ndarray], clip: float) -> float:
        self.mode(True)
        # forward: encoder over the word (lengths), its final (h, c) starts the decoder (teacher forcing)
        _, (h, c) = self.encoder(self.enc_emb(b["src"]), lengths=b["src_len"])
        dec_out, _ = self.decoder(self.dec_emb(b["dec_in"]), hx=(h, c), lengths=b["dec_len"])
        logits = self.head(dec_out)  # (B, 11, VOCAB)
        loss, grad = rk.losses.cross_entropy(logits, b["dec_out"], lengths=b["dec_len"])
        # backward, in reverse order; the decoder's initial-state gradient flows into the encoder
        for m in self.modules.values():
            m.zero_grad()
        grad_dec_x, (grad_h0, grad_c0) = self.decoder.backward(self.head.backward(grad))
        self.dec_emb.backward(grad_dec_x)
        grad_enc_x, _ = self.encoder.backward(None, (grad_h0, grad_c0))
        self.enc_emb.backward(grad_enc_x)
        rk.clip_grad_norm(list(self.modules.values()), clip)  # one joint norm, as torch's
        for name, m in self.modules.items():
            self.optimizers[name].step(m)
        return loss

    def greedy(self, src: np.ndarray, src_len: np.ndarray) -> np.ndarray:
        """Greedy decoding: one decoder call per output position, the state carried through hx."""
        self.mode(False)
        _, state = self.encoder(self.enc_emb(src), lengths=src_len)
        tok = np.full((len(src), 1), SOS, np.int64)
        pred = np.zeros((len(src), MAX_LEN + 1), np.int64)
        for t in range(MAX_LEN + 1):
            out, state = self.decoder(self.dec_emb(tok), hx=state)
            tok = np.argmax(self.head(out), axis=-1)  # (B, 1)
            pred[:, t] = tok[:, 0]
            if np.all(np.any(pred[:, : t + 1] == EOS, axis=1)):
                break
        return pred


def train_rnnkit(train: dict, test: dict, args: argparse.Namespace) -> tuple[RkSeq2Seq, float, float, float]:
    model = RkSeq2Seq(args.emb, args.hidden, args.lr, args.seed)
    rng = np.random.default_rng(args.seed)
    n = len(train["src"])
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for idx in batches(n, args.batch_size, rng):
            total += model.train_step({k: v[idx] for k, v in train.items()}, args.clip) * len(idx)
        if epoch % args.log_every == 0 or epoch == args.epochs:
            exact, char = scores(model.greedy(test["src"], test["src_len"]), test)
            print(f"  rnnkit epoch {epoch:3d}  train loss {total / n:.4f}  test exact {exact:.3f}  char {char:.3f}",
                  flush=True)
    wall = time.perf_counter() - start
    exact, char = scores(model.greedy(test["src"], test["src_len"]), test)
    return model, exact, char, wall


# ---- PyTorch (only with --compare-torch) -----------------------------------------------
def train_torch(rk_init: dict[str, dict], train: dict, test: dict, args: argparse.Namespace) -> tuple[float, float, float]:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(args.seed)
    mods = nn.ModuleDict({
        "enc_emb": nn.Embedding(VOCAB, args.emb, padding_idx=PAD),
        "encoder": nn.LSTM(args.emb, args.hidden, batch_first=True),
        "dec_emb": nn.Embedding(VOCAB, args.emb, padding_idx=PAD),
        "decoder": nn.LSTM(args.emb, args.hidden, batch_first=True),
        "head": nn.Linear(args.hidden, VOCAB),
    })
    for name, state in rk_init.items():  # the same initial weights as the rnnkit model
        mods[name].load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    opt = torch.optim.Adam(mods.parameters(), lr=args.lr)
    ce = nn.CrossEntropyLoss(ignore_index=PAD)  # dec_out is PAD exactly at the padded steps

    def encode_state(src: torch.Tensor, src_len: torch.Tensor) -> tuple:
        packed = pack_padded_sequence(mods["enc_emb"](src), src_len, batch_first=True, enforce_sorted=False)
        return mods["encoder"](packed)[1]

    def greedy(src: np.ndarray, src_len: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            state = encode_state(torch.from_numpy(src), torch.from_numpy(src_len))
            tok = torch.full((len(src), 1), SOS, dtype=torch.int64)
            pred = np.zeros((len(src), MAX_LEN + 1), np.int64)
            for t in range(MAX_LEN + 1):
                out, state = mods["decoder"](mods["dec_emb"](tok), state)
                tok = mods["head"](out).argmax(-1)
                pred[:, t] = tok[:, 0].numpy()
                if np.all(np.any(pred[:, : t + 1] == EOS, axis=1)):
                    break
        return pred

    tensors = {k: torch.from_numpy(v) for k, v in train.items()}
    rng = np.random.default_rng(args.seed)
    n = len(train["src"])
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        mods.train()
        total = 0.0
        for idx_np in batches(n, args.batch_size, rng):
            idx = torch.from_numpy(idx_np)
            b = {k: v[idx] for k, v in tensors.items()}
            state = encode_state(b["src"], b["src_len"])
            out, _ = mods["decoder"](mods["dec_emb"](b["dec_in"]), state)
            logits = mods["head"](out)
            loss = ce(logits.reshape(-1, VOCAB), b["dec_out"].reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(mods.parameters(), args.clip)
            opt.step()
            total += loss.item() * len(idx_np)
        if epoch % args.log_every == 0 or epoch == args.epochs:
            mods.eval()
            exact, char = scores(greedy(test["src"], test["src_len"]), test)
            print(f"  torch  epoch {epoch:3d}  train loss {total / n:.4f}  test exact {exact:.3f}  char {char:.3f}",
                  flush=True)
    wall = time.perf_counter() - start
    mods.eval()
    exact, char = scores(greedy(test["src"], test["src_len"]), test)
    return exact, char, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=["reverse", "sort"], default="reverse")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--emb", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clipping")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="rnnkit (and PyTorch) threads; default: the library's")
    ap.add_argument("--quick", action="store_true", help="a short run for the test suite (8 epochs)")
    ap.add_argument("--compare-torch", action="store_true", help="also train the same model with PyTorch")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.log_every = 8, 4
    if args.threads is not None:
        rk.set_num_threads(args.threads)
    if args.compare_torch:
        import torch

        if args.threads is not None:
            torch.set_num_threads(args.threads)

    train_words, test_words = load_words(args.seed)
    train, test = encode(train_words, args.task), encode(test_words, args.task)
    print(f"task: {args.task} the letters; {len(train_words)} training words, {len(test_words)} test words "
          f"(unseen), lengths {MIN_LEN}..{MAX_LEN}; LSTM({args.emb}, {args.hidden}) encoder -> "
          f"LSTM({args.emb}, {args.hidden}) decoder, "
          f"{args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}", flush=True)

    init = RkSeq2Seq(args.emb, args.hidden, args.lr, args.seed)  # the initial weights, for PyTorch
    rk_init = {name: m.state_dict() for name, m in init.modules.items()}
    model, exact, char, wall = train_rnnkit(train, test, args)
    rows = [("rnnkit", exact, char, wall)]
    if args.compare_torch:
        rows.append(("PyTorch", *train_torch(rk_init, train, test, args)))

    pred = model.greedy(test["src"][:6], test["src_len"][:6])
    for w, p in zip(test_words, pred):
        stop = np.flatnonzero(p == EOS)
        out = "".join(LETTERS[i - 3] if i >= 3 else "?" for i in p[: stop[0] if len(stop) else None])
        print(f"  test word {w!r:<13} -> {out!r:<13} ({'right' if out == transform(w, args.task) else 'wrong'})")

    print()
    print(f"{args.task.capitalize()} the letters of words from Pride and Prejudice; "
          f"test = {len(test_words)} unseen words; greedy decoding")
    print(f"{'model':<10}{'exact match':>13}{'char acc':>10}{'train s':>9}")
    print(f"{'chance':<10}{0.0:>13.3f}{1 / 26:>10.3f}{'':>9}")
    for name, ex, ch, wt in rows:
        print(f"{name:<10}{ex:>13.3f}{ch:>10.3f}{wt:>9.1f}")
    print(f"training time includes the periodic test decoding; {rk.get_num_threads()} rnnkit thread(s)")


if __name__ == "__main__":
    main()
