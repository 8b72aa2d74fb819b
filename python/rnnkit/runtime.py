"""The C++ inference runtime (``rnnkit::Model``) from Python.

``model.stream(batch)`` on a Sequential or a recurrent layer gives a streaming
runner: one C++ call per time step, the state kept in C++ between calls::

    s = model.stream(batch=1)
    for x_t in readings:                 # x_t: (batch, input_size), or token ids (batch,)
        y_t = s.step(x_t)                # (batch, output_size): the head's output for this step
    s.reset()                            # back to the zero state

It runs exactly the code a C++ program runs after ``rnnkit::Model::load``, on a
snapshot of the weights taken when ``stream`` is called (train more, call
``stream`` again). Whatever the layers' ``batch_first``, the runtime's inputs are
batch-first. ``rk.runtime.load(path)`` opens a model file with the C++ loader
itself, as an embedded program would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import _core
from .module import check_dtype, check_int

ModelFileError = _core.ModelFileError


def _runtime_class(dtype: Any) -> Any:
    return _core.Runtime32 if check_dtype(dtype) == np.float32 else _core.Runtime64


def from_model(model: Any) -> Any:
    """The C++ runtime's copy of an rnnkit Sequential or layer (its weights as they are now)."""
    arch = json.dumps({"class": type(model).__name__, "config": model.get_config()})
    return _runtime_class(model.dtype).from_tensors(arch, model.state_dict())


def stream(model: Any, batch: int = 1) -> Any:
    """A streaming runner over ``model`` for ``batch`` sequences (see the module's docstring)."""
    return from_model(model).stream(check_int("batch", batch, 1))


def load(path: Union[str, os.PathLike], dtype: Any = np.float32) -> Any:
    """Open a model file with the C++ loader; computes in ``dtype`` (float32 or float64)."""
    cls = _runtime_class(dtype)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return cls.load(str(path))
