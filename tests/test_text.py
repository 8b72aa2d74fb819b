"""rnnkit.text: standardization, word and character vocabularies, and the TextVectorizer's
padded (N, L) id matrices, checked against exact hand-written expectations."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit import text
from rnnkit.text import PAD, PAD_TOKEN, UNK, UNK_TOKEN, CharVocabulary, TextVectorizer, Vocabulary

PARAGRAPH = (
    "It was the best of times, it was the worst of times; it was the age of wisdom.\n"
    "The quick brown fox jumps over the lazy dog -- twice! Don't you think so?\n"
    "\tNumbers too: 3.14159, 42 and (1 + 1 = 2)."
)


def json_round_trip(obj):
    return json.loads(json.dumps(obj))


# ----------------------------------------------------------------------------- standardize
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, World!", "hello world"),
        ("  many    spaces\tand\nnewlines  ", "many spaces and newlines"),
        ("Don't stop", "dont stop"),
        ("don\u2019t stop", "dont stop"),  # typographic apostrophe
        ("the 90's", "the 90s"),
        ("'quoted' words", "quoted words"),  # apostrophes at word edges are quotes
        ("the students' books", "the students books"),
        ("\u201cSmart quotes\u201d and \u00abguillemets\u00bb", "smart quotes and guillemets"),
        ("wait\u2026 what\u2014really?", "wait what really"),
        ("state-of-the-art", "state of the art"),
        ("snake_case a+b $5 x<y", "snake case a b 5 x y"),  # string.punctuation symbols
        ("PI = 3.14", "pi 3 14"),
        ("caf\u00e9 \u00dcBER", "caf\u00e9 \u00fcber"),  # letters with accents stay letters
        ("costs \u20ac5 \U0001f600", "costs \u20ac5 \U0001f600"),  # non-ASCII symbols are kept
        ("!!! ...", ""),
        ("", ""),
    ],
)
def test_standardize(raw, expected):
    assert text.standardize(raw) == expected
    assert text.split(raw) == expected.split()


def test_standardize_options():
    assert text.standardize("Don't  PANIC!", lower=False) == "Dont PANIC"
    assert text.standardize("Don't  PANIC!", strip_punctuation=False) == "don't panic!"
    assert text.split("Don't  PANIC!", lower=False, strip_punctuation=False) == ["Don't", "PANIC!"]


def test_standardize_rejects_non_str():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        text.standardize(b"hello")


# ----------------------------------------------------------------------------- Vocabulary
def test_reserved_ids():
    assert (PAD, UNK, PAD_TOKEN, UNK_TOKEN) == (0, 1, "<pad>", "<unk>")
    v = Vocabulary(["the", "cat"])
    assert v.tokens == ["<pad>", "<unk>", "the", "cat"]
    assert len(v) == 4
    assert v.token_to_id(PAD_TOKEN) == 0 and v.token_to_id(UNK_TOKEN) == 1
    assert v.token_to_id("cat") == 3
    assert v.token_to_id("dog") == UNK
    assert "cat" in v and "dog" not in v
    # already starting with the reserved tokens: kept as is
    assert Vocabulary(["<pad>", "<unk>", "the"]).tokens == ["<pad>", "<unk>", "the"]
    assert Vocabulary([]).tokens == ["<pad>", "<unk>"]


def test_duplicates_raise():
    with pytest.raises(ValueError, match=r"duplicate token 'cat' at ids 3 and 4"):
        Vocabulary(["the", "cat", "cat"])
    with pytest.raises(ValueError, match=r"duplicate token '<unk>'.*ids 0 and 1"):
        Vocabulary(["the", "<unk>"])
    with pytest.raises(TypeError, match="tokens must contain only str, got int at index 1"):
        Vocabulary(["the", 3])


def test_build_orders_by_frequency_then_alphabetically():
    docs = [["b", "a", "c", "b"], ["c", "d", "b"], ["a", "z"]]  # b:3, a:2, c:2, d:1, z:1
    v = Vocabulary.build(docs)
    assert v.tokens == ["<pad>", "<unk>", "b", "a", "c", "d", "z"]
    # order of appearance does not matter: the result is deterministic
    assert Vocabulary.build([d[::-1] for d in docs[::-1]]) == v


def test_build_max_tokens_and_min_freq():
    docs = [["b", "a", "c", "b"], ["c", "d", "b"], ["a", "z"]]
    assert Vocabulary.build(docs, max_tokens=4).tokens == ["<pad>", "<unk>", "b", "a"]
    assert Vocabulary.build(docs, max_tokens=5).tokens == ["<pad>", "<unk>", "b", "a", "c"]
    assert len(Vocabulary.build(docs, max_tokens=100)) == 7
    assert Vocabulary.build(docs, min_freq=2).tokens == ["<pad>", "<unk>", "b", "a", "c"]
    assert Vocabulary.build(docs, min_freq=3).tokens == ["<pad>", "<unk>", "b"]
    assert Vocabulary.build(docs, max_tokens=3, min_freq=2).tokens == ["<pad>", "<unk>", "b"]
    # reserved tokens in the data are not counted twice
    assert Vocabulary.build([["<unk>", "<unk>", "x", "<pad>"]]).tokens == ["<pad>", "<unk>", "x"]


def test_build_errors():
    with pytest.raises(ValueError, match=r"max_tokens must be >= 3 .*got 2"):
        Vocabulary.build([["a"]], max_tokens=2)
    with pytest.raises(ValueError, match="min_freq must be >= 1, got 0"):
        Vocabulary.build([["a"]], min_freq=0)
    with pytest.raises(TypeError, match="got a str at index 1; split it first"):
        Vocabulary.build([["a"], "b c"])
    with pytest.raises(TypeError, match="tokens must be str, got int"):
        Vocabulary.build([["a", 7]])


def test_encode_decode():
    v = Vocabulary(["the", "cat", "sat"])
    ids = v.encode(["the", "dog", "sat"])
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [2, 1, 4])
    assert v.decode(ids) == ["the", "<unk>", "sat"]
    assert v.decode([0, 3]) == ["<pad>", "cat"]
    assert v.encode([]).shape == (0,) and v.decode([]) == []
    assert v.id_to_token(4) == "sat" and v.id_to_token(np.int64(0)) == "<pad>"


def test_id_out_of_range():
    v = Vocabulary(["the", "cat", "sat"])
    with pytest.raises(IndexError, match=r"id 5 is out of range .* 5 tokens \(valid: 0\.\.4\)"):
        v.id_to_token(5)
    with pytest.raises(IndexError, match=r"id -1 is out of range"):
        v.id_to_token(-1)
    with pytest.raises(IndexError, match=r"id 9 at position 1 is out of range for 5 ids \(valid: 0\.\.4\)"):
        v.decode([2, 9])
    with pytest.raises(TypeError, match="tokens must be a sequence of str, got a single str; split it first"):
        v.encode("the cat")


def test_vocabulary_dict_round_trip():
    v = Vocabulary.build([["x", "y", "y"], ["\u00e9t\u00e9", "y"]])
    d = json_round_trip(v.to_dict())
    assert d == {"tokens": ["<pad>", "<unk>", "y", "x", "\u00e9t\u00e9"]}
    assert Vocabulary.from_dict(d) == v
    with pytest.raises(ValueError, match="expected a dict with a 'tokens' list"):
        Vocabulary.from_dict({"chars": "abc"})


# ----------------------------------------------------------------------------- TextVectorizer
CORPUS = ["The cat sat.", "The dog sat!", "A cat, a dog; the END"]
# counts: the 3, a 2, cat 2, dog 2, sat 2, end 1
CORPUS_TOKENS = ["<pad>", "<unk>", "the", "a", "cat", "dog", "sat", "end"]


def test_fit_builds_vocabulary():
    tv = TextVectorizer().fit(CORPUS)
    assert tv.vocabulary.tokens == CORPUS_TOKENS
    assert tv.vocab_size == 8
    assert TextVectorizer(max_tokens=5).fit(CORPUS).vocabulary.tokens == CORPUS_TOKENS[:5]
    assert TextVectorizer(min_freq=2).fit(CORPUS).vocabulary.tokens == CORPUS_TOKENS[:7]


def test_transform_pads_to_longest():
    tv = TextVectorizer().fit(CORPUS)
    ids, lengths = tv.transform(["the cat", "a dog sat on the mat", "Cat!"])
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    np.testing.assert_array_equal(
        ids,
        [
            [2, 4, 0, 0, 0, 0],
            [3, 5, 6, 1, 2, 1],  # "on" and "mat" are out of vocabulary
            [4, 0, 0, 0, 0, 0],
        ],
    )
    np.testing.assert_array_equal(lengths, [2, 6, 1])


def test_transform_truncates_and_pads_to_max_len():
    tv = TextVectorizer(max_len=3).fit(CORPUS)
    ids, lengths = tv.transform(["the cat sat on the mat", "dog", "a cat sat"])
    np.testing.assert_array_equal(ids, [[2, 4, 6], [5, 0, 0], [3, 4, 6]])
    np.testing.assert_array_equal(lengths, [3, 1, 3])
    # all texts shorter than max_len: still L == max_len
    ids, lengths = TextVectorizer(max_len=4).fit(CORPUS).transform(["dog"])
    np.testing.assert_array_equal(ids, [[5, 0, 0, 0]])


def test_empty_text_is_one_unk():
    tv = TextVectorizer(max_len=3).fit(CORPUS)
    ids, lengths = tv.transform(["", "  ?! ", "cat"])
    np.testing.assert_array_equal(ids, [[1, 0, 0], [1, 0, 0], [4, 0, 0]])
    np.testing.assert_array_equal(lengths, [1, 1, 1])
    ids, lengths = TextVectorizer().fit(CORPUS).transform([""])
    np.testing.assert_array_equal(ids, [[1]])
    np.testing.assert_array_equal(lengths, [1])


def test_transform_of_no_texts():
    ids, lengths = TextVectorizer(max_len=5).fit(CORPUS).transform([])
    assert ids.shape == (0, 5) and lengths.shape == (0,)


def test_fit_transform_accepts_a_generator():
    ids, lengths = TextVectorizer().fit_transform(t for t in CORPUS)
    np.testing.assert_array_equal(ids, [[2, 4, 6, 0, 0, 0], [2, 5, 6, 0, 0, 0], [3, 4, 3, 5, 2, 7]])
    np.testing.assert_array_equal(lengths, [3, 3, 6])


def test_case_and_punctuation_options():
    tv = TextVectorizer(lower=False, strip_punctuation=False).fit(["The cat.", "the cat"])
    assert tv.vocabulary.tokens == ["<pad>", "<unk>", "The", "cat", "cat.", "the"]


def test_config_round_trip():
    tv = TextVectorizer(max_tokens=7, max_len=4, min_freq=1, lower=True).fit(CORPUS)
    cfg = json_round_trip(tv.get_config())
    assert cfg["vocabulary"] == {"tokens": CORPUS_TOKENS[:7]}
    tv2 = TextVectorizer.from_config(cfg)
    assert (tv2.max_tokens, tv2.max_len, tv2.min_freq, tv2.lower, tv2.strip_punctuation) == (7, 4, 1, True, True)
    assert tv2.vocabulary == tv.vocabulary
    new = ["the end of the dog", "", "cats"]
    for a, b in zip(tv.transform(new), tv2.transform(new)):
        np.testing.assert_array_equal(a, b)
    # an unfitted vectorizer round-trips too, and stays unfitted
    assert TextVectorizer.from_config(json_round_trip(TextVectorizer().get_config())).vocabulary is None


def test_transform_before_fit():
    tv = TextVectorizer()
    with pytest.raises(RuntimeError, match=r"not fitted yet: call fit\(texts\)"):
        tv.transform(["hello"])
    with pytest.raises(RuntimeError, match="not fitted yet"):
        tv.vocab_size


@pytest.mark.parametrize(
    "bad, message",
    [
        ("just one text", r"texts must be an iterable of str .*got a single str; wrap it in a list"),
        (b"bytes", r"texts must be an iterable of str .*got a single bytes"),
        (42, "texts must be an iterable of str, got int"),
        (["ok", 3], "texts must contain only str, got int at index 1"),
        ([["already", "split"]], "texts must contain only str, got list at index 0"),
    ],
)
def test_texts_type_errors(bad, message):
    tv = TextVectorizer().fit(CORPUS)
    with pytest.raises(TypeError, match=message):
        tv.transform(bad)
    with pytest.raises(TypeError, match=message):
        TextVectorizer().fit(bad)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(max_tokens=2), ValueError, r"max_tokens must be >= 3 \(<pad>, <unk> and at least one token\), got 2"),
        (dict(max_len=0), ValueError, "max_len must be >= 1, got 0"),
        (dict(min_freq=0), ValueError, "min_freq must be >= 1, got 0"),
        (dict(max_len=2.5), TypeError, "max_len must be an int, got float"),
        (dict(lower="yes"), TypeError, "lower must be a bool, got str"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        TextVectorizer(**kwargs)


def test_transform_many_texts_matches_per_text_encoding():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(3000)])
    texts = [" ".join(words[rng.integers(0, 3000, size=n)]) + "." for n in rng.integers(3, 20, size=10_000)]
    tv = TextVectorizer(max_len=16).fit(texts)
    ids, lengths = tv.transform(texts)
    assert ids.shape == (10_000, 16) and lengths.min() >= 3 and lengths.max() == 16
    for i in (0, 17, 9_999):
        tokens = texts[i].rstrip(".").split()[:16]
        assert lengths[i] == len(tokens)
        np.testing.assert_array_equal(ids[i, : len(tokens)], tv.vocabulary.encode(tokens))
        assert (ids[i, len(tokens) :] == 0).all()


# ----------------------------------------------------------------------------- characters
def test_char_vocabulary_round_trip_on_a_paragraph():
    cv = CharVocabulary.build(PARAGRAPH)
    assert cv.chars == sorted(set(PARAGRAPH))
    assert len(cv) == len(set(PARAGRAPH))
    ids = cv.encode(PARAGRAPH)
    assert ids.dtype == np.int64 and ids.shape == (len(PARAGRAPH),)
    assert ids.min() >= 0 and ids.max() == len(cv) - 1
    assert cv.decode(ids) == PARAGRAPH
    assert cv.decode(ids.tolist()) == PARAGRAPH
    # ids are positions in the sorted characters
    assert cv.chars[0] == "\t" and cv.chars[1] == "\n" and cv.chars[2] == " "
    np.testing.assert_array_equal(cv.encode("It "), [cv.chars.index("I"), cv.chars.index("t"), 2])
    assert cv.encode("").shape == (0,) and cv.decode([]) == ""
    assert "z" in cv and "Z" not in cv


def test_char_vocabulary_unicode():
    s = "na\u00efve caf\u00e9 \u2014 \U0001f600!"
    cv = CharVocabulary.build(s)
    assert cv.decode(cv.encode(s)) == s
    assert len(cv.encode(s)) == len(s)


def test_char_unknown_raises():
    cv = CharVocabulary.build("hello world")
    with pytest.raises(ValueError, match=r"character 'W' \(U\+0057\) at position 6 is not in the vocabulary"):
        cv.encode("hello World")
    with pytest.raises(IndexError, match=r"id 8 at position 0 is out of range for 8 ids"):
        cv.decode([8])


def test_char_unknown_maps_to_unk():
    cv = CharVocabulary.build("hello world", unk="?")
    assert cv.chars == sorted(set("hello world?"))
    assert cv.unk == "?" and cv.chars[cv.unk_id] == "?"
    assert cv.decode(cv.encode("Hello, World!")) == "?ello? ?orld?"
    assert CharVocabulary.build("ab?", unk="?").chars == ["?", "a", "b"]  # unk already present
    with pytest.raises(ValueError, match="unk must be a single character or None, got 'xx'"):
        CharVocabulary.build("abc", unk="xx")


def test_char_vocabulary_dict_round_trip():
    for unk in (None, "~"):
        cv = CharVocabulary.build(PARAGRAPH, unk=unk)
        d = json_round_trip(cv.to_dict())
        assert d == {"chars": "".join(cv.chars), "unk": unk}
        cv2 = CharVocabulary.from_dict(d)
        assert cv2 == cv
        np.testing.assert_array_equal(cv2.encode(PARAGRAPH), cv.encode(PARAGRAPH))


def test_char_vocabulary_errors():
    with pytest.raises(ValueError, match=r"duplicate character 'a'"):
        CharVocabulary("abca")
    with pytest.raises(ValueError, match=r"single characters, got 'ab' at index 1"):
        CharVocabulary(["x", "ab"])
    with pytest.raises(ValueError, match=r"unk '\?' must be one of the characters"):
        CharVocabulary("abc", unk="?")
    with pytest.raises(TypeError, match="text must be a str, got list"):
        CharVocabulary.build(["a", "b"])
    with pytest.raises(TypeError, match="s must be a str, got int"):
        CharVocabulary.build("abc").encode(5)
