"""Sequential: layers applied in order, with one parameter buffer for them all.

    model = rk.Sequential(rk.Embedding(V, 64, padding_idx=0),
                          rk.LSTM(64, 128, batch_first=True), rk.LastStep(), rk.Linear(128, C))
    y = model(x, lengths=lengths)       # forward, one C++ call per layer
    model.backward(dL_dy)               # backward, one C++ call per layer

``lengths`` is passed to the recurrent layers and to LastStep/MeanPool; a
recurrent layer passes on only its output sequence (``return_state=True``
returns the final states too, and ``state=`` starts from them: truncated BPTT,
generation). Parameter names are PyTorch's ``nn.Sequential`` names, ``"1.weight_ih_l0"``.
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

import numpy as np

from .layers import _RNNBase
from .module import Module, check_bool, check_int, got, shape_str
from .nn import Embedding, _Pool


class Sequential(Module):
    def __init__(self, *layers: Module) -> None:
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module) or isinstance(layer, Sequential):
                raise TypeError(f"layer {i} must be an rnnkit layer (not a Sequential), got {got(layer)}")
        # A layer's parameter views move into this model's buffer, and its training cache is one
        # slot: a layer twice would keep only one slot's values and cache, and a layer taken
        # from a live Sequential would stop being that model's.
        first: dict[int, int] = {}
        for i, layer in enumerate(layers):
            if id(layer) in first:
                raise ValueError(
                    f"layer {i} ({layer!r}) is the same object as layer {first[id(layer)]}: a layer can appear "
                    "once in a Sequential (make another layer to repeat it)"
                )
            first[id(layer)] = i
            owner = layer._owner() if layer._owner is not None else None
            if owner is not None:
                raise ValueError(
                    f"layer {i} ({layer!r}) already belongs to another Sequential: a layer can belong to one "
                    "Sequential, whose buffer holds its parameters (make a new layer, or copy its state_dict into one)"
                )
        dtypes = {layer.dtype for layer in layers if layer.num_parameters()}
        if len(dtypes) > 1:
            raise ValueError(f"all layers must have the same dtype, got {sorted(d.name for d in dtypes)}")
        self.layers = list(layers)
        self.dtype = dtypes.pop() if dtypes else np.dtype(np.float32)

        # Pooling layers read the layout of the recurrent layer before them.
        recurrent: Optional[_RNNBase] = None
        for layer in self.layers:
            if isinstance(layer, _RNNBase):
                recurrent = layer
            elif isinstance(layer, _Pool) and recurrent is not None:
                layer.batch_first, layer.bidirectional = recurrent.batch_first, recurrent.bidirectional

        # One buffer for every layer's parameters, each layer's views re-homed into it.
        flat = np.empty(sum(layer.num_parameters() for layer in self.layers), dtype=self.dtype)
        grad = np.zeros_like(flat)
        offset = 0
        for layer in self.layers:
            n = layer.num_parameters()
            flat[offset : offset + n] = layer._flat
            layer._bind(flat[offset : offset + n], grad[offset : offset + n])
            layer._owner = weakref.ref(self)
            offset += n
        self._bind(flat, grad)
        self.train()

    def _param_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(f"{i}.{name}", shape) for i, layer in enumerate(self.layers) for name, shape in layer._param_shapes()]

    def get_config(self) -> dict[str, Any]:
        return {"layers": [{"class": type(layer).__name__, "config": layer.get_config()} for layer in self.layers]}

    def train(self, mode: bool = True) -> "Sequential":
        lowp = [layer for layer in self.layers if layer._lowp is not None]
        if mode and lowp:  # before any layer changes mode
            raise RuntimeError(f"this model's {lowp[0]!r} has {lowp[0].precision} weights: it runs inference only. "
                               "Train the float32 model, then rk.quantize it again")
        super().train(mode)
        for layer in self.layers:
            layer.train(mode)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Every layer's state_dict, its keys prefixed with the layer's index ("1.weight_ih_l0")."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.state_dict().items()}

    def _stage_state_dict(self, state_dict: Any, strict: bool) -> Any:
        if not any(layer._lowp is not None for layer in self.layers):
            return super()._stage_state_dict(state_dict, strict)
        # a quantized layer's keys are not its parameters': each layer checks its own
        if not isinstance(state_dict, dict):
            state_dict = dict(state_dict)
        parts: list[dict[str, Any]] = [{} for _ in self.layers]
        for key, value in state_dict.items():
            head, _, rest = str(key).partition(".")
            if not head.isdigit() or int(head) >= len(self.layers):
                if strict:
                    raise ValueError(f"state_dict does not match Sequential: unexpected key '{key}'")
                continue
            parts[int(head)][rest] = value
        commits = [layer._stage_state_dict(part, strict) for layer, part in zip(self.layers, parts)]

        def commit() -> None:
            for c in commits:
                c()

        return commit

    # ---- layout ---------------------------------------------------------------------
    def _batch_axes(self) -> tuple[int, int]:
        """The batch axis of the input and of the output (1 for a time-major model)."""
        axis_in = axis_out = 0
        seen = False
        for layer in self.layers:
            if isinstance(layer, _RNNBase):
                if not seen:
                    axis_in = 0 if layer.batch_first else 1
                    seen = True
                axis_out = 0 if layer.batch_first else 1
            elif isinstance(layer, _Pool):
                axis_out = 0
        return axis_in, axis_out

    # ---- forward / backward ---------------------------------------------------------
    def forward(self, x: Any, lengths: Any = None, state: Optional[list] = None,
                return_state: bool = False) -> Any:
        return self._run(x, lengths, state, return_state, False)

    __call__ = forward

    def _infer(self, x: Any, lengths: Any = None, state: Optional[list] = None, return_state: bool = False) -> Any:
        return self._run(x, lengths, state, return_state, True)

    def _run(self, x: Any, lengths: Any, state: Optional[list], return_state: bool, infer: bool) -> Any:
        """Each layer in turn: its forward, or with ``infer`` its eval-mode forward that keeps and changes nothing."""
        return_state = check_bool("return_state", return_state)
        recurrent = [layer for layer in self.layers if isinstance(layer, _RNNBase)]
        if state is not None and (not isinstance(state, (list, tuple)) or len(state) != len(recurrent)):
            raise ValueError(f"state must be a list with one entry per recurrent layer ({len(recurrent)}), "
                             f"as returned with return_state=True")
        h = x
        states: list[Any] = []  # each recurrent layer's final state
        pooled = False
        for layer in self.layers:
            seq_lengths = None if pooled else lengths
            call = layer._infer if infer else layer
            if isinstance(layer, _RNNBase):
                start = None if state is None else state[len(states)]
                h, final = call(h, start, lengths=seq_lengths)
                states.append(final)
            elif isinstance(layer, _Pool):
                h = call(h, lengths=seq_lengths)
                pooled = True
            else:
                h = call(h)
        return (h, states) if return_state else h

    def backward(self, grad: Any) -> Optional[np.ndarray]:
        """dL/dx (None when the first layer is an Embedding); accumulates every parameter gradient."""
        g = grad
        for layer in reversed(self.layers):
            if isinstance(layer, _RNNBase):
                g, _ = layer.backward(g)
            else:
                g = layer.backward(g)
        return g

    def predict(self, x: Any, lengths: Any = None, batch_size: int = 256) -> np.ndarray:
        """Eval-mode forward in batches of ``batch_size`` along the batch axis.

        The model's mode is not touched (not even for the call: another thread may be training or
        predicting), and no layer's training cache changes: a backward after it still works.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        x = np.asarray(x)
        axis_in, axis_out = self._batch_axes()
        if x.ndim <= axis_in:
            raise ValueError(f"x has shape {shape_str(x.shape)}: it needs a batch axis (axis {axis_in})")
        n = x.shape[axis_in]
        if n == 0:
            raise ValueError(f"x has shape {shape_str(x.shape)}: it has no samples (its batch axis {axis_in} is empty)")
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.shape != (n,):
                raise ValueError(f"lengths has shape {shape_str(lengths.shape)}, expected ({n},): one per sample of x")
        outs = []
        for i in range(0, n, batch_size):
            idx = slice(i, min(i + batch_size, n))
            xb = x[idx] if axis_in == 0 else x[:, idx]
            lb = None if lengths is None else lengths[idx]
            outs.append(self._infer(xb, lengths=lb))
        return np.concatenate(outs, axis=axis_out)

    def stream(self, batch: int = 1) -> Any:
        """A streaming runner in the C++ runtime: ``y_t = s.step(x_t)`` per time step, ``s.reset()``.

        x_t is (batch, features) or token ids (batch,), batch-first whatever the layers' layout;
        y_t is the head's output for that step. Uses the weights as they are now (see rk.runtime).
        """
        from . import runtime

        return runtime.stream(self, batch)

    # ---- description ----------------------------------------------------------------
    def summary(self, print_fn: Any = print) -> str:
        """Each layer's output shape and parameter count (B: batch, T: steps), and the total."""
        first = self.layers[0]
        axis_in, _ = self._batch_axes()
        if isinstance(first, Embedding):
            shape: tuple = ("B", "T") if axis_in == 0 else ("T", "B")
        elif isinstance(first, _RNNBase):
            shape = ("B", "T", first.input_size) if first.batch_first else ("T", "B", first.input_size)
        else:
            shape = ("B", getattr(first, "in_features", "F"))
        rows = []
        for i, layer in enumerate(self.layers):
            shape = layer._out_shape(shape)
            rows.append((f"{i}: {layer!r}", "(" + ", ".join(str(s) for s in shape) + ")", layer.num_parameters()))
        w0 = max(len(r[0]) for r in rows + [("layer", "", 0)])
        w1 = max(len(r[1]) for r in rows + [("", "output shape", 0)])
        lines = [f"{'layer':<{w0}}  {'output shape':<{w1}}  {'parameters':>12}", "-" * (w0 + w1 + 16)]
        lines += [f"{a:<{w0}}  {b:<{w1}}  {c:>12,}" for a, b, c in rows]
        lines += ["-" * (w0 + w1 + 16), f"{'total':<{w0}}  {'':<{w1}}  {self.num_parameters():>12,}"]
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"

