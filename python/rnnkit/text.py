"""Text preprocessing for recurrent models: standardize, split, map tokens to ids, pad.

The word pipeline follows Keras' ``TextVectorization`` and torchtext's vocab:

    text --standardize--> "dont panic" --split--> ["dont", "panic"]
         --Vocabulary--> [57, 1] --pad/truncate to L--> ids (N, L), lengths (N,)

Shapes: N = number of texts, L = ``max_len`` (or the longest text when it is None),
V = vocabulary size. Ids 0 and 1 are reserved in every word vocabulary:

    0  <pad>   fills the tail of short rows (post-padding); ``lengths`` says where it starts
    1  <unk>   any token the vocabulary does not know

``CharVocabulary`` is the character-level counterpart (no reserved ids: a character
model predicts every id), with an optional ``unk`` character.

Everything round-trips through JSON (``to_dict``/``from_dict``, ``get_config``/
``from_config``), so a vocabulary can be stored in a model file's metadata.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np

__all__ = [
    "PAD",
    "UNK",
    "PAD_TOKEN",
    "UNK_TOKEN",
    "standardize",
    "split",
    "Vocabulary",
    "TextVectorizer",
    "CharVocabulary",
]

PAD = 0
UNK = 1
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
_RESERVED = (PAD_TOKEN, UNK_TOKEN)


# ----------------------------------------------------------------------------- validation
def _check_int(name: str, value: Any, minimum: int, why: str = "") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{why}, got {value}")
    return int(value)


def _check_optional_int(name: str, value: Any, minimum: int, why: str = "") -> int | None:
    return None if value is None else _check_int(name, value, minimum, why)


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


_MAX_TOKENS_WHY = " (<pad>, <unk> and at least one token)"


def _as_texts(texts: Any) -> list[str]:
    """texts as a list of str, or a TypeError that says what was passed instead."""
    if isinstance(texts, (str, bytes)):
        # iterating a str would silently treat each character as a document
        raise TypeError(
            f"texts must be an iterable of str (one per document), got a single {type(texts).__name__}; "
            "wrap it in a list"
        )
    try:
        items = list(iter(texts))
    except TypeError:
        raise TypeError(f"texts must be an iterable of str, got {type(texts).__name__}") from None
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise TypeError(f"texts must contain only str, got {type(t).__name__} at index {i}")
    return items


def _as_ids(name: str, ids: Any, size: int) -> np.ndarray:
    """ids as a 1-D int64 array with every value in [0, size), or IndexError/TypeError."""
    arr = np.asarray(ids)
    if arr.size == 0:
        return arr.reshape(0).astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    bad = (arr < 0) | (arr >= size)
    if bad.any():
        i = int(np.argmax(bad))
        raise IndexError(f"id {int(arr[i])} at position {i} is out of range for {size} ids (valid: 0..{size - 1})")
    return arr.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------- standardize
class _PunctuationToSpace(dict):
    """A ``str.translate`` table: punctuation -> " ", anything else -> itself.

    Punctuation is every ``string.punctuation`` character (which includes ASCII symbols such
    as ``$+<=>^`|~``) and every Unicode "P*" category character (quotes, dashes, "…").
    Other symbols (€, ©, emoji) are kept: they often carry meaning. The table fills itself
    one distinct character at a time, so importing the module scans no Unicode tables.
    """

    def __missing__(self, code: int) -> int:
        ch = chr(code)
        value = 32 if ch in string.punctuation or unicodedata.category(ch).startswith("P") else code
        self[code] = value
        return value


_PUNCTUATION = _PunctuationToSpace()
# an apostrophe between two letters/digits is part of the word: don't -> dont, 90's -> 90s
_INNER_APOSTROPHE = re.compile(r"(?<=[^\W_])['\u2019](?=[^\W_])")


def split(text: str, *, lower: bool = True, strip_punctuation: bool = True) -> list[str]:
    """The tokens of ``standardize(text)``: ``split("Don't panic!") == ["dont", "panic"]``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    if strip_punctuation:
        text = _INNER_APOSTROPHE.sub("", text).translate(_PUNCTUATION)
    return text.split()


def standardize(text: str, *, lower: bool = True, strip_punctuation: bool = True) -> str:
    """Lower-case, drop apostrophes inside words, replace other punctuation by a space, and
    collapse whitespace: ``standardize("  Don't PANIC -- it's “fine”!") == "dont panic its fine"``.
    """
    return " ".join(split(text, lower=lower, strip_punctuation=strip_punctuation))


# ----------------------------------------------------------------------------- Vocabulary
class Vocabulary:
    """An id <-> token mapping for words; ids are positions, 0 is <pad> and 1 is <unk>.

    ``Vocabulary(["the", "cat"])`` has tokens ``["<pad>", "<unk>", "the", "cat"]``: the two
    reserved tokens are prepended unless ``tokens`` already starts with them.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of str, got a single str")
        tokens = list(tokens)
        for i, t in enumerate(tokens):
            if not isinstance(t, str):
                raise TypeError(f"tokens must contain only str, got {type(t).__name__} at index {i}")
        if tokens[:2] != list(_RESERVED):
            tokens = [*_RESERVED, *tokens]
        index: dict[str, int] = {}
        for i, t in enumerate(tokens):
            if t in index:
                if t in _RESERVED:
                    raise ValueError(
                        f"duplicate token {t!r}: {PAD_TOKEN!r} and {UNK_TOKEN!r} may only appear as ids 0 and 1"
                    )
                raise ValueError(f"duplicate token {t!r} at ids {index[t]} and {i}")
            index[t] = i
        self._tokens = tokens
        self._index = index

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], max_tokens: int | None = None, min_freq: int = 1
    ) -> Vocabulary:
        """Count tokens over ``token_lists`` (one token list per text) and keep the most
        frequent, ties broken alphabetically, so that ``len(vocab) <= max_tokens`` (the count
        includes <pad> and <unk>). Tokens seen fewer than ``min_freq`` times are dropped."""
        max_tokens = _check_optional_int("max_tokens", max_tokens, 3, _MAX_TOKENS_WHY)
        min_freq = _check_int("min_freq", min_freq, 1)
        if isinstance(token_lists, (str, bytes)):
            got = type(token_lists).__name__
            raise TypeError(f"token_lists must be an iterable of token lists, got a single {got}")
        counts: Counter[str] = Counter()
        for i, tokens in enumerate(token_lists):
            if isinstance(tokens, str):
                # Counter.update("some text") would count characters
                raise TypeError(f"token_lists must contain token lists, got a str at index {i}; split it first")
            counts.update(tokens)
        for t in counts:  # distinct tokens only: cheap
            if not isinstance(t, str):
                raise TypeError(f"tokens must be str, got {type(t).__name__} ({t!r})")
        for t in _RESERVED:
            counts.pop(t, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_tokens is not None:
            ranked = ranked[: max_tokens - len(_RESERVED)]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    __hash__ = None  # type: ignore[assignment]  # compared by value, so not hashable (like a list)

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self._tokens[:6])
        return f"Vocabulary({len(self)} tokens: {head}{', ...' if len(self) > 6 else ''})"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; ``UNK`` (1) when it is not in the vocabulary."""
        return self._index.get(token, UNK)

    def id_to_token(self, i: int) -> str:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"id must be an int, got {type(i).__name__}")
        if not 0 <= i < len(self._tokens):
            n = len(self._tokens)
            raise IndexError(f"id {i} is out of range for a vocabulary of {n} tokens (valid: 0..{n - 1})")
        return self._tokens[i]

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token list -> int64 ids (L,); unknown tokens -> ``UNK``."""
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of str, got a single str; split it first")
        get = self._index.get
        return np.array([get(t, UNK) for t in tokens], dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Ids (L,) -> tokens, <pad> included (slice a row by its length to drop them)."""
        arr = _as_ids("ids", ids, len(self._tokens))
        return [self._tokens[i] for i in arr.tolist()]

    def to_dict(self) -> dict[str, Any]:
        """``{"tokens": [...]}``, JSON-serialisable; ``Vocabulary.from_dict`` inverts it."""
        return {"tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vocabulary:
        if not isinstance(d, Mapping) or "tokens" not in d:
            raise ValueError(f"expected a dict with a 'tokens' list (from Vocabulary.to_dict), got {d!r:.80}")
        return cls(d["tokens"])


# ----------------------------------------------------------------------------- TextVectorizer
class TextVectorizer:
    """Texts -> padded int64 id matrix, as Keras' ``TextVectorization(output_mode="int")``.

    ``fit(texts)`` builds the vocabulary from the standardized, split texts (at most
    ``max_tokens`` entries, <pad> and <unk> included; tokens seen fewer than ``min_freq``
    times dropped). ``transform(texts) -> (ids, lengths)``:

        ids      (N, L) int64  first L tokens of each text, post-padded with PAD (0),
                               unknown tokens -> UNK (1)
        lengths  (N,)   int64  tokens per row after truncation, in 1..L

    L is ``max_len``, or the longest text when ``max_len`` is None. A text with no tokens
    becomes a single <unk> of length 1: recurrent layers need every length >= 1.
    """

    def __init__(
        self,
        max_tokens: int | None = 20000,
        max_len: int | None = None,
        min_freq: int = 1,
        lower: bool = True,
        strip_punctuation: bool = True,
    ) -> None:
        self.max_tokens = _check_optional_int("max_tokens", max_tokens, 3, _MAX_TOKENS_WHY)
        self.max_len = _check_optional_int("max_len", max_len, 1)
        self.min_freq = _check_int("min_freq", min_freq, 1)
        self.lower = _check_bool("lower", lower)
        self.strip_punctuation = _check_bool("strip_punctuation", strip_punctuation)
        self.vocabulary: Vocabulary | None = None

    def __repr__(self) -> str:
        fitted = "not fitted" if self.vocabulary is None else f"vocab_size={len(self.vocabulary)}"
        return f"TextVectorizer(max_tokens={self.max_tokens}, max_len={self.max_len}, {fitted})"

    def _split(self, text: str) -> list[str]:
        return split(text, lower=self.lower, strip_punctuation=self.strip_punctuation)

    def _fitted_vocabulary(self) -> Vocabulary:
        if self.vocabulary is None:
            raise RuntimeError("this TextVectorizer is not fitted yet: call fit(texts) (or fit_transform) first")
        return self.vocabulary

    @property
    def vocab_size(self) -> int:
        """len(vocabulary), <pad> and <unk> included: the ``num_embeddings`` of an embedding."""
        return len(self._fitted_vocabulary())

    def fit(self, texts: Iterable[str]) -> TextVectorizer:
        texts = _as_texts(texts)
        self.vocabulary = Vocabulary.build(map(self._split, texts), self.max_tokens, self.min_freq)
        return self

    def transform(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        vocab = self._fitted_vocabulary()
        texts = _as_texts(texts)
        get, max_len = vocab._index.get, self.max_len
        # one dict lookup per token; truncate before the lookup ([:None] keeps everything)
        rows = [[get(t, UNK) for t in self._split(text)[:max_len]] or [UNK] for text in texts]
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))  # (N,)
        L = max_len if max_len is not None else int(lengths.max(initial=0))
        ids = np.zeros((len(rows), L), dtype=np.int64)  # (N, L), PAD == 0
        # boolean-mask assignment fills row by row, left to right: exactly the post-padded layout
        ids[np.arange(L) < lengths[:, None]] = np.fromiter(
            chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum())
        )
        return ids, lengths

    def fit_transform(self, texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        texts = _as_texts(texts)  # a generator can be read only once
        return self.fit(texts).transform(texts)

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments and the vocabulary (None before fit), JSON-serialisable."""
        return {
            "max_tokens": self.max_tokens,
            "max_len": self.max_len,
            "min_freq": self.min_freq,
            "lower": self.lower,
            "strip_punctuation": self.strip_punctuation,
            "vocabulary": None if self.vocabulary is None else self.vocabulary.to_dict(),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TextVectorizer:
        kwargs = dict(config)
        vocab = kwargs.pop("vocabulary", None)
        tv = cls(**kwargs)
        tv.vocabulary = None if vocab is None else Vocabulary.from_dict(vocab)
        return tv


# ----------------------------------------------------------------------------- characters
class CharVocabulary:
    """An id <-> character mapping for character-level models; ids are positions 0..V-1.

    No id is reserved: a character model's softmax covers every id. ``encode`` raises on a
    character it does not know, unless the vocabulary has an ``unk`` character to map it to.
    Encoding and decoding work on whole strings at once through their code points
    (UTF-32), so a corpus of megabytes encodes without a Python loop per character.
    """

    def __init__(self, chars: Sequence[str], unk: str | None = None) -> None:
        chars = list(chars)
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r} at index {i}")
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise ValueError(f"duplicate character {dup!r} in chars")
        if unk is not None and unk not in chars:
            raise ValueError(f"unk {unk!r} must be one of the characters")
        self._chars = chars
        self.unk = unk
        self._codes = _code_points(chars)  # (V,)
        # code point -> id, -1 for unknown; the last entry stands for every code point above
        # the vocabulary's largest (1 KiB for ASCII text, 1 MiB with emoji)
        self._lookup = np.full(int(self._codes.max(initial=0)) + 2, -1, dtype=np.int64)
        self._lookup[self._codes] = np.arange(len(chars), dtype=np.int64)

    @classmethod
    def build(cls, text: str, unk: str | None = None) -> CharVocabulary:
        """Every distinct character of ``text`` (plus ``unk`` when given), sorted."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if unk is not None and (not isinstance(unk, str) or len(unk) != 1):
            raise ValueError(f"unk must be a single character or None, got {unk!r}")
        return cls(sorted(set(text) | ({unk} if unk is not None else set())), unk)

    def __len__(self) -> int:
        return len(self._chars)

    def __contains__(self, ch: object) -> bool:
        return ch in self._chars

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocabulary) and (self._chars, self.unk) == (other._chars, other.unk)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CharVocabulary({len(self)} chars: {''.join(self._chars)[:40]!r}, unk={self.unk!r})"

    @property
    def chars(self) -> list[str]:
        """All characters in id order (a copy)."""
        return list(self._chars)

    @property
    def unk_id(self) -> int | None:
        return None if self.unk is None else self._chars.index(self.unk)

    def encode(self, s: str) -> np.ndarray:
        """str -> int64 ids (len(s),)."""
        if not isinstance(s, str):
            raise TypeError(f"s must be a str, got {type(s).__name__}")
        codes = _code_points(s)  # (n,)
        ids = self._lookup[np.minimum(codes, len(self._lookup) - 1)]  # (n,) int64
        known = ids >= 0
        if not known.all():
            if self.unk is None:
                i = int(np.argmin(known))
                raise ValueError(
                    f"character {s[i]!r} (U+{ord(s[i]):04X}) at position {i} is not in the vocabulary; "
                    "build it with unk='?' (or another character) to map unknown characters"
                )
            ids[~known] = self.unk_id
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Ids (n,) -> str."""
        arr = _as_ids("ids", ids, len(self._chars))
        return self._codes[arr].astype("<u4").tobytes().decode("utf-32-le", errors="surrogatepass")

    def to_dict(self) -> dict[str, Any]:
        """``{"chars": "...", "unk": ...}``, JSON-serialisable; ``from_dict`` inverts it."""
        return {"chars": "".join(self._chars), "unk": self.unk}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CharVocabulary:
        if not isinstance(d, Mapping) or not isinstance(d.get("chars"), str):
            raise ValueError(f"expected a dict with a 'chars' str (from CharVocabulary.to_dict), got {d!r:.80}")
        return cls(d["chars"], d.get("unk"))


def _code_points(chars: str | Sequence[str]) -> np.ndarray:
    """The Unicode code points of a str (or a list of 1-char strs) as uint32 (n,)."""
    s = chars if isinstance(chars, str) else "".join(chars)
    # NumPy stores a str as UCS-4 (one uint32 per code point): viewing that buffer is ~10x
    # faster than s.encode("utf-32"). ``[:len(s)]``: '' is stored as one NUL.
    return np.array(s).reshape(1).view(np.uint32)[: len(s)]
