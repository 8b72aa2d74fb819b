"""rk.generate: sampling from a Sequential(Embedding, recurrent..., Linear) language model.

Oracles: with the Linear's weight zeroed the logits are its bias at every step, so the
draws must follow softmax(bias / temperature) (a chi-square test over many draws); at a
tiny temperature the draws must be the greedy argmax, computed here step by step through
Sequential's state, and also by running prompt + generated ids through the model in one
forward (which shows that the state is carried from step to step).
"""

from __future__ import annotations

import numpy as np
import pytest

F64 = np.float64
V = 7


def lm(rk, kind="lstm", dtype=F64, seed=0):
    rec = {
        "lstm": lambda: rk.LSTM(4, 6, batch_first=True, dtype=dtype, seed=seed + 1),
        "gru2": lambda: rk.GRU(4, 6, num_layers=2, batch_first=True, dtype=dtype, seed=seed + 1),
        "rnn": lambda: rk.RNN(4, 6, batch_first=True, dtype=dtype, seed=seed + 1),
    }[kind]()
    model = rk.Sequential(
        rk.Embedding(V, 4, dtype=dtype, seed=seed),
        rec,
        rk.Linear(6, V, dtype=dtype, seed=seed + 2),
    )
    # larger output weights: well separated logits, so argmax has no near-ties
    model.parameters()["2.weight"][...] *= 4.0
    return model


PROMPT = np.array([1, 4, 2, 2, 6])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_result_length_dtype_and_range(rk, dtype):
    ids = rk.generate(lm(rk, dtype=dtype), PROMPT, 25, seed=0)
    assert isinstance(ids, np.ndarray)
    assert ids.shape == (25,) and ids.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < V


def test_prompt_of_one_token_and_list_prompt(rk):
    model = lm(rk)
    a = rk.generate(model, np.array([3]), 5, seed=1)
    b = rk.generate(model, [3], 5, seed=1)
    assert a.shape == (5,)
    np.testing.assert_array_equal(a, b)


def test_deterministic_per_seed(rk):
    model = lm(rk)
    before = model.state_dict()
    a = rk.generate(model, PROMPT, 40, temperature=1.5, seed=3)
    b = rk.generate(model, PROMPT, 40, temperature=1.5, seed=3)
    c = rk.generate(model, PROMPT, 40, temperature=1.5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for k, v in model.state_dict().items():  # generation does not touch the weights
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_distribution_follows_softmax(rk, temperature):
    model = lm(rk)
    bias = np.array([1.0, 0.0, -1.0, 2.0, 0.5, -0.5, 0.2])
    model.parameters()["2.weight"][...] = 0.0  # logits = bias whatever the input
    model.parameters()["2.bias"][...] = bias
    n = 4000
    ids = rk.generate(model, PROMPT, n, temperature=temperature, seed=11)
    counts = np.bincount(ids, minlength=V)
    z = bias / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    expected = n * p
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 22.46, (chi2, counts, expected)  # 6 degrees of freedom, p = 0.001


def greedy_step_by_step(model, prompt, length):
    """Greedy decoding through Sequential's own state: run the prompt, then one id at a time.
    Returns the ids and the smallest gap between the two largest logits met on the way."""
    model.eval()
    logits, state = model(np.asarray(prompt)[None, :], return_state=True)
    ids, gaps = [], []
    for _ in range(length):
        last = logits[0, -1]
        top2 = np.sort(last)[-2:]
        gaps.append(top2[1] - top2[0])
        ids.append(int(np.argmax(last)))
        logits, state = model(np.array([[ids[-1]]]), state=state, return_state=True)
    return np.array(ids), min(gaps)


def depends_on_history(prompt, ids):
    """True when some id is followed by different ids at different places: a model that
    saw only the last id (no state carried) could not have produced the sequence."""
    seq = [int(prompt[-1])] + [int(i) for i in ids]
    followers: dict[int, set] = {}
    for a, b in zip(seq[:-1], seq[1:]):
        followers.setdefault(a, set()).add(b)
    return any(len(f) > 1 for f in followers.values())


# model seeds whose greedy continuations of both prompts depend on the history, have no
# near-ties, and differ between the prompts (so the checks below can tell a wrong decoder)
GREEDY_SEEDS = {"lstm": 18, "gru2": 5, "rnn": 11}
OTHER_PROMPT = np.array([3, 0, 1, 5, 6])  # the same last id as PROMPT


@pytest.mark.parametrize("kind", list(GREEDY_SEEDS))
def test_low_temperature_is_greedy(rk, kind):
    model = lm(rk, kind, seed=GREEDY_SEEDS[kind])
    for prompt in (PROMPT, OTHER_PROMPT):
        want, gap = greedy_step_by_step(model, prompt, 20)
        assert gap > 1e-3 and depends_on_history(prompt, want)  # the test's own preconditions
        got = rk.generate(model, prompt, 20, temperature=1e-6, seed=0)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", list(GREEDY_SEEDS))
def test_state_is_carried(rk, kind):
    """Greedy ids equal the argmax of one forward over prompt + generated ids, at every position."""
    model = lm(rk, kind, seed=GREEDY_SEEDS[kind])
    length = 20
    P = len(PROMPT)
    results = []
    for prompt in (PROMPT, OTHER_PROMPT):
        got = rk.generate(model, prompt, length, temperature=1e-6, seed=2)
        assert depends_on_history(prompt, got)
        logits = model.eval()(np.concatenate([prompt, got])[None, :])[0]  # (P + length, V)
        np.testing.assert_array_equal(np.argmax(logits[P - 1 : P - 1 + length], axis=1), got)
        results.append(got)
    # the whole prompt is run, not only its last id
    assert not np.array_equal(results[0], results[1])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(temperature=0.0),
        dict(temperature=-1.0),
        dict(prompt=np.array([], dtype=np.int64)),
        dict(prompt=np.array([[1, 2], [3, 4]])),
        dict(prompt=np.array([1, V])),
        dict(prompt=np.array([1, -1])),
        dict(length=-1),
    ],
    ids=["temp0", "temp_neg", "empty_prompt", "prompt_2d", "id_too_big", "id_negative", "length_neg"],
)
def test_bad_arguments(rk, kwargs):
    args = dict(prompt=PROMPT, length=5, temperature=1.0, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        rk.generate(lm(rk), args.pop("prompt"), args.pop("length"), **args)


def test_float_prompt_rejected(rk):
    with pytest.raises((TypeError, ValueError)):
        rk.generate(lm(rk), np.array([1.5, 2.0]), 5, seed=0)
