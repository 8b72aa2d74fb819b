"""The two loaders agree: rk.load (Python) and rk.runtime.load (the C++ runtime) read
every architecture against one table (rnnkit._core.architecture_table()), so each file
below is accepted by both or refused by both, and a refusal says the same thing in both,
naming the layer, its class, the option, the value got and what was expected.

Each fixture is a real model saved with rk.save whose architecture (the JSON in the
metadata) is then edited, the checksum recomputed for the edit (tests/model_files.py);
the tensors are left as they were.
"""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import pytest

import model_files
import rnnkit as rk
from rnnkit import architecture

safetensors = pytest.importorskip("safetensors")

LAYERS = {cls.__name__: cls for cls in (rk.RNN, rk.LSTM, rk.GRU, rk.Embedding, rk.Linear, rk.LastStep, rk.MeanPool,
                                       rk.Dropout)}
# LSTM(peepholes=...) exists once the core computes peepholes; until then the table knows the option
# and the Python layer does not, so the fixtures that set it wait for it.
HAS_PEEPHOLES = "peepholes" in inspect.signature(rk.LSTM).parameters


def _bases() -> dict[str, rk.Module]:
    return {
        # layer 0 Embedding, 1 LSTM, 2 LastStep, 3 Dropout, 4 Linear
        "seq": rk.Sequential(rk.Embedding(10, 4, padding_idx=0, seed=1),
                             rk.LSTM(4, 5, batch_first=True, seed=2), rk.LastStep(), rk.Dropout(0.2),
                             rk.Linear(5, 3, seed=3)),
        # layer 0 Linear, 1 RNN, 2 MeanPool, 3 Linear
        "rnn": rk.Sequential(rk.Linear(3, 4, seed=1), rk.RNN(4, 6, nonlinearity="relu", bidirectional=True, seed=2),
                             rk.MeanPool(), rk.Linear(12, 2, seed=3)),
        "gru": rk.GRU(3, 4, num_layers=2, reset_after=False, bias=False, seed=1),
        "lstm_proj": rk.LSTM(3, 6, proj_size=2, batch_first=True, seed=1),
        "linear": rk.Linear(3, 2, seed=1),
        "embedding": rk.Embedding(10, 4, seed=1),
        "gru_gru": rk.Sequential(rk.GRU(3, 4, batch_first=True, seed=1), rk.GRU(4, 4, batch_first=True, seed=2)),
    }


BASES = _bases()

Edit = Callable[[dict], Optional[Union[dict, str]]]


def config(arch: dict, layer: Optional[int]) -> dict:
    return arch["config"] if layer is None else arch["config"]["layers"][layer]["config"]


def set_option(layer: Optional[int], key: str, value: Any) -> Edit:
    def edit(arch: dict) -> None:
        config(arch, layer)[key] = value
    return edit


def drop_option(layer: Optional[int], key: str) -> Edit:
    def edit(arch: dict) -> None:
        del config(arch, layer)[key]
    return edit


def raw(change: Callable[[str], str]) -> Edit:
    """An edit of the architecture's text itself (for what a dict cannot hold)."""
    return lambda arch: change(json.dumps(arch))


def set_class(layer: int, name: str) -> Edit:
    def edit(arch: dict) -> None:
        arch["config"]["layers"][layer]["class"] = name
    return edit


def layers(change: Callable[[list], Any]) -> Edit:
    def edit(arch: dict) -> None:
        change(arch["config"]["layers"])
    return edit


def both(*edits: Edit) -> Edit:
    def edit(arch: dict) -> None:
        for e in edits:
            e(arch)
    return edit


# name -> (base, edit, None: both load it; or a part of the message both give)
ACCEPTED = {
    "seq_as_saved": ("seq", None),
    "rnn_as_saved": ("rnn", None),
    "gru_as_saved": ("gru", None),
    "lstm_proj_as_saved": ("lstm_proj", None),
    "linear_as_saved": ("linear", None),
    "embedding_as_saved": ("embedding", None),
    "defaults_left_out": ("seq", both(*(drop_option(1, k) for k in ("num_layers", "bias", "dropout", "dtype",
                                                                     "bidirectional", "proj_size")),
                                      drop_option(0, "padding_idx"), drop_option(4, "bias"), drop_option(3, "p"))),
    "whole_number_written_as_float": ("seq", set_option(1, "hidden_size", 5.0)),
    "padding_idx_from_the_end": ("seq", set_option(0, "padding_idx", -10)),
    "padding_idx_null": ("seq", set_option(0, "padding_idx", None)),
    "dropout_zero_as_int": ("seq", set_option(1, "dropout", 0)),
    "relu_to_tanh": ("rnn", set_option(1, "nonlinearity", "tanh")),
    "float64": ("gru", set_option(None, "dtype", "float64")),
}
if HAS_PEEPHOLES:
    ACCEPTED["peepholes_false"] = ("seq", set_option(1, "peepholes", False))

L1 = "layer 1 (LSTM): "
REFUSED = {
    # unknown option
    "unknown_option": ("seq", set_option(1, "peephole", True), L1 + "unknown option 'peephole'; LSTM takes input_size"),
    "unknown_option_linear": ("seq", set_option(4, "activation", "relu"),
                              "layer 4 (Linear): unknown option 'activation'"),
    "seed_is_not_an_option": ("linear", set_option(None, "seed", 0), "layer 0 (Linear): unknown option 'seed'"),
    "option_of_another_class": ("gru", set_option(None, "proj_size", 0), "layer 0 (GRU): unknown option 'proj_size'"),
    "option_given_twice": ("seq", raw(lambda s: s.replace('"hidden_size": 5', '"hidden_size": 5, "hidden_size": 5')),
                           'duplicate key "hidden_size"'),
    # missing
    "missing_size": ("seq", drop_option(1, "hidden_size"), L1 + "option 'hidden_size' is missing"),
    "missing_in_features": ("linear", drop_option(None, "in_features"), "option 'in_features' is missing"),
    # wrong type
    "int_as_string": ("seq", set_option(1, "hidden_size", "5"),
                      L1 + "option 'hidden_size' must be a whole number >= 1, got \"5\""),
    "int_as_bool": ("seq", set_option(1, "num_layers", True),
                    L1 + "option 'num_layers' must be a whole number >= 1, got true"),
    "bool_as_number": ("seq", set_option(1, "bias", 1), L1 + "option 'bias' must be true or false, got 1"),
    "bool_as_null": ("seq", set_option(4, "bias", None),
                     "layer 4 (Linear): option 'bias' must be true or false, got null"),
    "number_as_string": ("seq", set_option(1, "dropout", "0.1"), L1 + "option 'dropout' must be a number, got \"0.1\""),
    "number_as_bool": ("seq", set_option(3, "p", False),
                       "layer 3 (Dropout): option 'p' must be a number, got false"),
    "string_as_number": ("seq", set_option(1, "dtype", 32),
                         L1 + 'option \'dtype\' must be "float32" or "float64", got 32'),
    "index_as_string": ("seq", set_option(0, "padding_idx", "0"),
                        "layer 0 (Embedding): option 'padding_idx' must be a whole number or null, got \"0\""),
    "pool_bool_as_list": ("seq", set_option(2, "batch_first", [True]),
                          "layer 2 (LastStep): option 'batch_first' must be true or false, got a list"),
    # out of range, or not one of the values allowed
    "size_zero": ("seq", set_option(1, "hidden_size", 0),
                  L1 + "option 'hidden_size' must be a whole number >= 1, got 0"),
    "size_fraction": ("seq", set_option(1, "hidden_size", 2.5),
                      L1 + "option 'hidden_size' must be a whole number >= 1, got 2.5"),
    "size_huge": ("linear", set_option(None, "out_features", 1e13),
                  "option 'out_features' must be a whole number <= 1000000000000, got 10000000000000"),
    "num_layers_negative": ("gru", set_option(None, "num_layers", -2),
                            "layer 0 (GRU): option 'num_layers' must be a whole number >= 1, got -2"),
    "proj_size_negative": ("lstm_proj", set_option(None, "proj_size", -1),
                           "layer 0 (LSTM): option 'proj_size' must be a whole number >= 0, got -1"),
    "dropout_one": ("seq", set_option(1, "dropout", 1.0), L1 + "option 'dropout' must be in [0, 1), got 1"),
    "p_negative": ("seq", set_option(3, "p", -0.1), "layer 3 (Dropout): option 'p' must be in [0, 1), got -0.1"),
    "nonlinearity_unknown": ("rnn", set_option(1, "nonlinearity", "sigmoid"),
                             'layer 1 (RNN): option \'nonlinearity\' must be "tanh" or "relu", got "sigmoid"'),
    "dtype_unknown": ("gru", set_option(None, "dtype", "float16"),
                      'layer 0 (GRU): option \'dtype\' must be "float32" or "float64", got "float16"'),
    "index_fraction": ("seq", set_option(0, "padding_idx", 1.5),
                       "layer 0 (Embedding): option 'padding_idx' must be a whole number or null, got 1.5"),
    # the classes' checks across options
    "proj_size_not_smaller": ("lstm_proj", set_option(None, "proj_size", 6),
                              "layer 0 (LSTM): proj_size must be smaller than hidden_size (6), got 6"),
    "padding_idx_past_the_end": ("seq", set_option(0, "padding_idx", 10),
                                 "layer 0 (Embedding): padding_idx must be in -10..9 (num_embeddings is 10), got 10"),
    "padding_idx_before_the_start": ("seq", set_option(0, "padding_idx", -11),
                                     "layer 0 (Embedding): padding_idx must be in -10..9 (num_embeddings is 10), "
                                     "got -11"),
    # unknown classes and malformed entries
    "unknown_class": ("seq", set_class(4, "Conv1d"),
                      'layer 4 is an unknown layer "Conv1d"; the layers are Embedding, RNN, LSTM, GRU, Linear, '
                      "LastStep, MeanPool, Dropout"),
    "nested_sequential": ("seq", set_class(3, "Sequential"), 'layer 3 is an unknown layer "Sequential"'),
    "unknown_top_class": ("linear", lambda arch: {**arch, "class": "Dense"}, 'layer 0 is an unknown layer "Dense"'),
    "class_lower_case": ("seq", set_class(1, "lstm"), 'layer 1 is an unknown layer "lstm"'),
    "layer_not_an_object": ("seq", layers(lambda ls: ls.__setitem__(3, [])), "layer 3 is not an object"),
    "config_not_an_object": ("seq", layers(lambda ls: ls[3].__setitem__("config", 0.2)),
                             'layer 3 needs a "class" name and a "config" object'),
    "no_layers": ("seq", layers(lambda ls: ls.clear()), 'a Sequential architecture needs a non-empty "layers" list'),
    "not_an_object": ("seq", lambda arch: [arch], 'the architecture must be {"class": ..., "config": {...}}'),
    # how the layers fit together
    "sizes_do_not_chain": ("seq", set_option(4, "in_features", 6),
                           "layer 4 (Linear): in_features is 6 but the layer before gives 5 features"),
    "input_size_does_not_chain": ("seq", set_option(1, "input_size", 3),
                                  "layer 1 (LSTM): input_size is 3 but the layer before gives 4 features"),
    "embedding_not_first": ("seq", layers(lambda ls: ls.insert(1, ls.pop(0))),
                            "layer 1 (Embedding): an Embedding must be the first layer"),
    "recurrent_after_pool": ("seq", layers(lambda ls: ls.insert(3, {"class": "LSTM", "config": {"input_size": 5,
                                                                                          "hidden_size": 5}})),
                             "layer 3 (LSTM(5, 5)): a recurrent layer cannot follow LastStep or MeanPool"),
    "pooled_twice": ("seq", layers(lambda ls: ls.insert(3, copy.deepcopy(ls[2]))),
                     "layer 3 (LastStep()): the sequence is already pooled"),
    "batch_first_disagrees": ("gru_gru", set_option(1, "batch_first", False),
                              "layer 1 (GRU(4, 4)): the recurrent layers disagree on batch_first"),
    "dtype_disagrees": ("seq", set_option(4, "dtype", "float64"),
                        'layer 4 (Linear(5, 3)): dtype "float64" differs from the layers\' before it ("float32")'),
    # not JSON as the C++ reader reads it
    "nan": ("seq", raw(lambda s: s.replace('"dropout": 0.0', '"dropout": NaN')), "not valid JSON"),
}
if HAS_PEEPHOLES:
    REFUSED["peepholes_as_number"] = ("seq", set_option(1, "peepholes", 1),
                                      L1 + "option 'peepholes' must be true or false, got 1")
    REFUSED["peepholes_on_gru"] = ("gru", set_option(None, "peepholes", False),
                                   "layer 0 (GRU): unknown option 'peepholes'")


def write(tmp_path: Path, base: str, edit: Optional[Edit]) -> Path:
    """BASES[base] saved by rk.save, its architecture then edited and the checksum recomputed."""
    saved = tmp_path / "saved.safetensors"
    rk.save(BASES[base], saved)
    data = saved.read_bytes()
    if edit is not None:
        data = model_files.edit_architecture(data, edit)
    path = tmp_path / f"{base}.safetensors"
    path.write_bytes(data)
    return path


def refusal(load: Callable[[Path], Any], path: Path) -> str:
    with pytest.raises(ValueError) as e:
        load(path)
    return str(e.value)


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_both_loaders_accept(tmp_path: Path, name: str) -> None:
    base, edit = ACCEPTED[name]
    path = write(tmp_path, base, edit)
    model, runtime = rk.load(path), rk.runtime.load(path)
    assert model.num_parameters() == runtime.num_parameters
    # the summary lines come from the table on both sides
    arch = json.loads(safetensors.safe_open(str(path), framework="np").metadata()["architecture"])
    entries = arch["config"]["layers"] if arch["class"] == "Sequential" else [arch]
    lines = []
    for i, entry in enumerate(entries):
        cls, values, _ = architecture.read_config(entry, i)
        lines.append(architecture.summary(cls, values))
    assert runtime.summary().splitlines() == lines


@pytest.mark.parametrize("name", list(REFUSED))
def test_both_loaders_refuse_with_the_same_message(tmp_path: Path, name: str) -> None:
    base, edit, expected = REFUSED[name]
    path = write(tmp_path, base, edit)
    python, cpp = refusal(rk.load, path), refusal(rk.runtime.load, path)
    assert expected in python, python
    assert expected in cpp, cpp
    if "not valid JSON" not in python:  # the JSON readers word their own errors; all else is one message
        assert python.split("has an invalid architecture: ", 1)[1] == cpp.split(f"{path}: ", 1)[1]


def test_a_model_without_a_size_runs_only_in_python(tmp_path: Path) -> None:
    """The one difference, by design: the runtime must know its input's size."""
    path = tmp_path / "dropout.safetensors"
    rk.save(rk.Dropout(0.3), path)
    assert isinstance(rk.load(path), rk.Dropout)
    assert "no layer with a size" in refusal(rk.runtime.load, path)
    rk.save(rk.Sequential(rk.MeanPool(), rk.Linear(3, 2)), path)
    assert rk.load(path).num_parameters() == 8
    assert "layer 0 (MeanPool): a pooling layer needs a sequence before it" in refusal(rk.runtime.load, path)


def test_save_refuses_what_load_would_refuse(tmp_path: Path) -> None:
    model = rk.Sequential(rk.GRU(3, 4, batch_first=True), rk.GRU(4, 4))
    with pytest.raises(ValueError, match="cannot save.*layer 1 .*disagree on batch_first"):
        rk.save(model, tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


# ---- the table itself -------------------------------------------------------------------

def _instances() -> dict[str, rk.Module]:
    models = {
        "RNN": rk.RNN(3, 4, nonlinearity="relu"), "LSTM": rk.LSTM(3, 4, proj_size=2), "GRU": rk.GRU(3, 4),
        "Embedding": rk.Embedding(5, 2, padding_idx=1), "Linear": rk.Linear(3, 2), "LastStep": rk.LastStep(),
        "MeanPool": rk.MeanPool(), "Dropout": rk.Dropout(0.1),
    }
    return models


def test_the_table_has_every_python_layer() -> None:
    assert set(architecture.TABLE) == set(LAYERS)


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_table_lists_every_option_get_config_writes(name: str) -> None:
    """A new option must be added to the table too (and so to the C++ loader), not to one side only."""
    keys = [opt["key"] for opt in architecture.TABLE[name]["options"]]
    written = _instances()[name].get_config()
    assert set(written) <= set(keys), f"{name}.get_config() writes {sorted(set(written) - set(keys))}, not in the table"
    # what get_config writes, read back against the table, is what it wrote
    _, values, given = architecture.read_config({"class": name, "config": written}, 0)
    assert given == written


@pytest.mark.parametrize("name", list(LAYERS))
def test_the_tables_defaults_are_the_python_constructors(name: str) -> None:
    params = inspect.signature(LAYERS[name]).parameters
    for opt in architecture.TABLE[name]["options"]:
        key = opt["key"]
        if key == "precision":  # set by rk.quantize, not by the constructor: a new layer's weights are float32
            assert key not in params and opt["default"] == "float32"
            continue
        if key not in params:
            assert key == "peepholes" and not HAS_PEEPHOLES, f"the table's {name}.{key} is no argument of {name}()"
            continue
        default = params[key].default
        if opt["required"]:
            assert default is inspect.Parameter.empty, f"{name}.{key}"
            continue
        if key == "dtype":
            default = np.dtype(default).name
        assert default == opt["default"] and type(default) is type(opt["default"]), (
            f"{name}({key}={default!r}) but the table's default is {opt['default']!r}")


def test_the_table_reads_as_documented() -> None:
    lstm = {opt["key"]: opt for opt in architecture.TABLE["LSTM"]["options"]}
    assert lstm["hidden_size"] == {"key": "hidden_size", "type": "int", "required": True, "minimum": 1,
                                   "maximum": 10**12, "summary": "positional"}
    assert lstm["dropout"]["minimum"] == 0 and lstm["dropout"]["maximum"] == 1 and lstm["dropout"]["default"] == 0
    assert lstm["peepholes"] == {"key": "peepholes", "type": "bool", "required": False, "default": False,
                                 "summary": "not_default"}
    assert architecture.TABLE["LSTM"]["checks"] == [
        {"kind": "smaller_than", "option": "proj_size", "other": "hidden_size"}]
    assert architecture.TABLE["LSTM"]["role"] == "recurrent" and architecture.TABLE["LSTM"]["input"] == "input_size"
    assert architecture.TABLE["Dropout"]["input"] is None
