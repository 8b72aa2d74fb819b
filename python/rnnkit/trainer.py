"""The Trainer: a thin loop over epochs and mini-batches, never over time steps.

Per batch it makes one forward call and one backward call per layer, one loss
call and one optimizer call, all into the C++ core.

    trainer = rk.Trainer(model, loss="cross_entropy", optimizer=rk.Adam(lr=1e-3), clip_grad_norm=1.0)
    history = trainer.fit(x, y, lengths=lengths, epochs=10, batch_size=64, validation_data=(xv, yv, lv))
    trainer.evaluate(x_test, y_test, lengths=l_test)   # {"loss": ..., "accuracy": ...}
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import numpy as np

from . import losses
from .module import Module, as_lengths, check_bool, check_int, check_real, check_seed, got, shape_str
from .optim import Adam, Optimizer, clip_grad_norm

_IGNORE_INDEX = -100  # cross_entropy's default, the one the Trainer uses
_Data = tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]


class Trainer:
    def __init__(
        self,
        model: Module,
        loss: str = "mse",
        optimizer: Optional[Optimizer] = None,
        clip_grad_norm: Optional[float] = None,
        lr_scheduler: Optional[Callable[[Optimizer], Any]] = None,
    ) -> None:
        if not isinstance(model, Module) or not hasattr(model, "backward"):
            raise TypeError(f"model must be an rnnkit model (e.g. rk.Sequential), got {got(model)}")
        self.model = model
        self.loss_name = loss
        self.loss_fn = losses.get(loss)
        self.optimizer = optimizer if optimizer is not None else Adam()
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"optimizer must be an rnnkit optimizer (e.g. rk.Adam()), got {got(self.optimizer)}")
        self.clip_grad_norm = None if clip_grad_norm is None else check_real("clip_grad_norm", clip_grad_norm, 0.0)
        self.scheduler = None
        if lr_scheduler is not None:
            if not callable(lr_scheduler):
                raise TypeError(f"lr_scheduler must be a callable optimizer -> scheduler (e.g. "
                                f"lambda opt: rk.StepLR(opt, 10)), got {got(lr_scheduler)}")
            self.scheduler = lr_scheduler(self.optimizer)
            if not callable(getattr(self.scheduler, "step", None)):
                raise TypeError(f"lr_scheduler(optimizer) must return a scheduler with a step() method, "
                                f"got {got(self.scheduler)}")
        self.history: dict[str, list[float]] = {}

    # ---- data ----------------------------------------------------------------------
    def _axes(self) -> tuple[int, int]:
        axes = getattr(self.model, "_batch_axes", None)
        if axes is not None:
            return axes()
        return (0 if getattr(self.model, "batch_first", True) else 1,) * 2

    def _check_data(self, x: Any, y: Any, lengths: Any, name: str = "x") -> _Data:
        """Everything a pass over the data could fail on, checked at once before any step:
        a batch axis, matching sample counts, lengths, finite values, and the targets against
        the model's output (their shape, class ids in range)."""
        x, y = np.asarray(x), np.asarray(y)
        tname = "y" if name == "x" else f"{name[:-1]}y"
        ax_in, ax_out = self._axes()
        if x.ndim <= ax_in:
            raise ValueError(f"{name} has shape {shape_str(x.shape)}: it needs a batch axis (axis {ax_in})")
        if y.ndim <= ax_out:
            raise ValueError(f"{tname} has shape {shape_str(y.shape)}: it needs a batch axis (axis {ax_out})")
        n = x.shape[ax_in]
        if n == 0:
            raise ValueError(f"{name} has shape {shape_str(x.shape)}: it has no samples (axis {ax_in} is empty)")
        if y.shape[ax_out] != n:
            raise ValueError(f"{name} has {n} samples but its targets have {y.shape[ax_out]} "
                             f"(target shape {shape_str(y.shape)})")
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            first = _first_where(~np.isfinite(x))
            raise ValueError(f"{name} contains NaN or infinite values, first at index {first}")
        if lengths is not None:
            steps = x.shape[1 - ax_in] if x.ndim >= 2 else 1
            lengths = as_lengths(lengths, n, steps)
        self._check_input(x, name)
        self._check_targets(x, y, lengths, tname)
        return x, y, lengths

    def _layers(self) -> list[Module]:
        layers = getattr(self.model, "layers", None)
        return list(layers) if layers is not None else [self.model]

    def _check_input(self, x: np.ndarray, name: str) -> None:
        first = self._layers()[0]
        size = getattr(first, "num_embeddings", None)
        if size is not None:  # token ids: an id out of range would fail in the batch that holds it
            if x.dtype.kind not in "iu":
                raise TypeError(f"{name} must be integer token ids for {first!r}, got dtype {x.dtype}")
            bad = (x < 0) | (x >= size)
            if bad.any():
                i = _first_where(bad)
                raise ValueError(f"{name}[{', '.join(map(str, i))}] = {x[i]} is out of range: "
                                 f"token ids must be in 0..{size - 1} for {first!r}")
            return
        features = getattr(first, "input_size", getattr(first, "in_features", None))
        if features is not None and x.shape[-1] != features:
            raise ValueError(f"{name} has shape {shape_str(x.shape)}: its last axis must be {features}, "
                             f"the input size of {first!r}")

    def _output_shape(self, x: np.ndarray) -> Optional[tuple]:
        """The model's output shape for x, from each layer's _out_shape (no computation); None if unknown."""
        shape: tuple = x.shape
        try:
            for layer in self._layers():
                shape = layer._out_shape(shape)
        except NotImplementedError:
            return None
        return tuple(shape)

    def _check_targets(self, x: np.ndarray, y: np.ndarray, lengths: Optional[np.ndarray], name: str) -> None:
        out = self._output_shape(x)
        if self.loss_name != "cross_entropy":
            if y.dtype.kind not in "fiub":
                raise TypeError(f"{name} must be a real numeric array, got dtype {y.dtype}")
            if out is not None and y.shape != out:
                raise ValueError(f"{name} has shape {shape_str(y.shape)}, expected {shape_str(out)}: "
                                 f"the model's output shape for this input")
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                first = _first_where(~np.isfinite(y))
                raise ValueError(f"{name} contains NaN or infinite values, first at index {first}")
            return
        if y.dtype.kind not in "iu":
            raise TypeError(f"{name} must be integer class ids for cross_entropy, got dtype {y.dtype}")
        if out is None:
            return
        if y.shape != out[:-1]:
            raise ValueError(f"{name} has shape {shape_str(y.shape)}, expected {shape_str(out[:-1])}: one class id "
                             f"per row of the model's output {shape_str(out)}")
        classes = out[-1]
        counted = y != _IGNORE_INDEX
        if lengths is not None and y.ndim == 2:  # per step: positions past a length are not counted
            batch_first = self._axes()[1] == 0
            T = y.shape[1 if batch_first else 0]
            steps = np.arange(T)[None, :] < lengths[:, None]
            counted &= steps if batch_first else steps.T
        bad = counted & ((y < 0) | (y >= classes))
        if bad.any():
            i = _first_where(bad)
            raise ValueError(f"{name}[{', '.join(map(str, i))}] = {y[i]} is out of range: class ids must be in "
                             f"0..{classes - 1} (the model has {classes} outputs) or {_IGNORE_INDEX} to skip")

    @staticmethod
    def _take(a: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
        return a[idx] if axis == 0 else np.take(a, idx, axis=axis)

    def _loss(self, out: np.ndarray, yb: np.ndarray, lb: Optional[np.ndarray]) -> tuple[float, np.ndarray]:
        if self.loss_name == "cross_entropy":
            per_step = out.ndim == 3
            return losses.cross_entropy(out, yb, lengths=lb if per_step else None,
                                        batch_first=self._axes()[1] == 0)
        return self.loss_fn(out, yb)

    def _correct(self, out: np.ndarray, yb: np.ndarray, lb: Optional[np.ndarray]) -> tuple[int, int]:
        return losses.accuracy(out, yb, lb if out.ndim == 3 else None, batch_first=self._axes()[1] == 0)

    # ---- training ------------------------------------------------------------------
    def fit(
        self,
        x: Any,
        y: Any,
        lengths: Any = None,
        epochs: int = 10,
        batch_size: int = 32,
        validation_data: Optional[tuple] = None,
        shuffle: bool = True,
        seed: Optional[int] = 0,
        progress: bool = True,
        early_stopping: Optional[int] = None,
        restore_best_weights: bool = True,
    ) -> dict[str, list[float]]:
        """Train; returns the history: per epoch "loss" (and "accuracy" for cross_entropy),
        and "val_loss"/"val_accuracy" with validation data.

        ``early_stopping``: stop once the monitored loss (val_loss, else loss) has not
        improved for this many epochs; with ``restore_best_weights`` the best epoch's
        weights are put back at the end.

        The data (and the validation data) are checked whole before the first step. A fit
        that raises (a loss that becomes NaN or infinite, out of memory...) puts the model's
        parameters and gradients, its mode, the optimizer's state and the scheduler back as
        they were before the call.
        """
        epochs = check_int("epochs", epochs, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        if early_stopping is not None:
            early_stopping = check_int("early_stopping", early_stopping, 1)
        shuffle = check_bool("shuffle", shuffle)
        seed = check_seed(seed)
        progress = check_bool("progress", progress)
        restore_best_weights = check_bool("restore_best_weights", restore_best_weights)
        data = self._check_data(x, y, lengths)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                what = f"a {type(validation_data).__name__} of {len(validation_data)} items" \
                    if isinstance(validation_data, (tuple, list)) else got(validation_data)
                raise ValueError(f"validation_data must be (x_val, y_val) or (x_val, y_val, lengths_val), got {what}")
            xv, yv = validation_data[0], validation_data[1]
            lv = validation_data[2] if len(validation_data) == 3 else None
            val = self._check_data(xv, yv, lv, name="validation x")
        saved = _Snapshot(self)
        try:
            history = self._train(data, val, epochs, batch_size, shuffle, seed, progress, early_stopping,
                                  restore_best_weights)
        except Exception:
            saved.restore()
            raise
        self.history = history
        return history

    def _train(self, data: _Data, val: Optional[_Data], epochs: int, batch_size: int, shuffle: bool,
               seed: Optional[int], progress: bool, early_stopping: Optional[int],
               restore_best_weights: bool) -> dict[str, list[float]]:
        x, y, lengths = data
        classify = self.loss_name == "cross_entropy"
        ax_in, ax_out = self._axes()
        n = x.shape[ax_in]
        rng = np.random.default_rng(seed)
        bar_cls = _progress_bar() if progress else None

        history: dict[str, list[float]] = {"loss": []}
        if classify:
            history["accuracy"] = []
        if val is not None:
            history["val_loss"] = []
            if classify:
                history["val_accuracy"] = []
        best, best_flat, waited = math.inf, None, 0
        model = self.model
        for epoch in range(1, epochs + 1):
            model.train()
            order = rng.permutation(n) if shuffle else np.arange(n)
            total, seen, correct, counted = 0.0, 0, 0, 0
            batches = range(0, n, batch_size)
            bar = bar_cls(total=len(batches), desc=f"epoch {epoch}/{epochs}", leave=False) if bar_cls else None
            try:
                for b, start in enumerate(batches, 1):
                    idx = order[start : start + batch_size]
                    xb, yb = self._take(x, idx, ax_in), self._take(y, idx, ax_out)
                    lb = None if lengths is None else lengths[idx]
                    out = model(xb, lengths=lb) if lb is not None else model(xb)
                    loss, grad = self._loss(out, yb, lb)
                    if not math.isfinite(loss):
                        raise FloatingPointError(
                            f"the loss became {loss} at epoch {epoch}, batch {b}: training stopped and the model "
                            "put back as it was before fit. Lower the learning rate or clip the gradients."
                        )
                    model.zero_grad()
                    model.backward(grad)
                    if self.clip_grad_norm is not None:
                        clip_grad_norm(model, self.clip_grad_norm)
                    self.optimizer.step(model)
                    total += loss * len(idx)
                    seen += len(idx)
                    if classify:
                        c, k = self._correct(out, yb, lb)
                        correct, counted = correct + c, counted + k
                    if bar:
                        post = {"loss": f"{total / seen:.4f}"}
                        if classify:
                            post["acc"] = f"{correct / max(counted, 1):.3f}"
                        bar.set_postfix(post)
                        bar.update()
            finally:
                if bar:
                    bar.close()
            history["loss"].append(total / seen)
            if classify:
                history["accuracy"].append(correct / max(counted, 1))
            if val is not None:
                metrics = self._evaluate(*val, 256)
                if not math.isfinite(metrics["loss"]):
                    raise FloatingPointError(
                        f"the validation loss became {metrics['loss']} at epoch {epoch}: training stopped and the "
                        "model put back as it was before fit. Lower the learning rate or clip the gradients."
                    )
                history["val_loss"].append(metrics["loss"])
                if classify:
                    history["val_accuracy"].append(metrics["accuracy"])
            if self.scheduler is not None:
                self.scheduler.step()
            if progress:
                print(f"epoch {epoch}/{epochs}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in history.items()))

            monitored = history["val_loss" if val is not None else "loss"][-1]
            if early_stopping is not None:
                if monitored < best:
                    best, waited = monitored, 0
                    if restore_best_weights:
                        best_flat = model._flat.copy()
                else:
                    waited += 1
                    if waited >= early_stopping:
                        break
        if best_flat is not None:
            model._flat[...] = best_flat
        return history

    def evaluate(self, x: Any, y: Any, lengths: Any = None, batch_size: int = 256) -> dict[str, float]:
        """The loss (and accuracy for cross_entropy) over a data set, in eval mode.

        The model's own mode is left alone: the layers run their eval-mode forward directly.
        """
        batch_size = check_int("batch_size", batch_size, 1)
        x, y, lengths = self._check_data(x, y, lengths)
        return self._evaluate(x, y, lengths, batch_size)

    def _evaluate(self, x: np.ndarray, y: np.ndarray, lengths: Optional[np.ndarray],
                  batch_size: int) -> dict[str, float]:
        ax_in, ax_out = self._axes()
        n = x.shape[ax_in]
        model = self.model
        total, correct, counted = 0.0, 0, 0
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            xb, yb = self._take(x, idx, ax_in), self._take(y, idx, ax_out)
            lb = None if lengths is None else lengths[idx]
            out = model._infer(xb, lengths=lb) if lb is not None else model._infer(xb)
            loss, _ = self._loss(out, yb, lb)
            total += loss * len(idx)
            if self.loss_name == "cross_entropy":
                c, k = self._correct(out, yb, lb)
                correct, counted = correct + c, counted + k
        metrics = {"loss": total / n}
        if self.loss_name == "cross_entropy":
            metrics["accuracy"] = correct / max(counted, 1)
        return metrics


class _Snapshot:
    """What a fit changes, to put back when it fails: the model's parameters, gradients and
    mode, the optimizer's state and the scheduler's attributes."""

    def __init__(self, trainer: Trainer) -> None:
        model, opt = trainer.model, trainer.optimizer
        self.trainer = trainer
        self.flat, self.grad = model._flat.copy(), model._grad.copy()
        self.modes = [(m, m.training) for m in [model, *getattr(model, "layers", [])]]
        self.opt = (opt._model, opt.steps, opt.lr)
        # an optimizer not yet bound to this model starts from zeros: nothing to copy
        self.opt_state = {k: v.copy() for k, v in opt.state.items()} if opt._model is model else None
        sched = trainer.scheduler
        self.sched = dict(vars(sched)) if sched is not None and hasattr(sched, "__dict__") else None

    def restore(self) -> None:
        trainer = self.trainer
        model, opt = trainer.model, trainer.optimizer
        model._flat[...] = self.flat
        model._grad[...] = self.grad
        for m, mode in self.modes:
            m.training = mode
        opt._model, opt.steps, opt.lr = self.opt
        if self.opt_state is not None:
            for k, v in self.opt_state.items():
                opt.state[k][...] = v
        elif opt._model is None:
            opt.state = {}
        if self.sched is not None:
            vars(trainer.scheduler).clear()
            vars(trainer.scheduler).update(self.sched)


def _first_where(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))


def _progress_bar() -> Any:
    """tqdm when installed (the [progress] extra), else nothing (one line per epoch is printed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm
