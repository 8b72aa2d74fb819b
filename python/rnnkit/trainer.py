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
from .module import Module, as_lengths, check_int, shape_str
from .optim import Adam, Optimizer, clip_grad_norm


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
            raise TypeError(f"model must be an rnnkit model (e.g. rk.Sequential), got {type(model).__name__}")
        self.model = model
        self.loss_name = loss
        self.loss_fn = losses.get(loss)
        self.optimizer = optimizer if optimizer is not None else Adam()
        if not isinstance(self.optimizer, Optimizer):
            raise TypeError(f"optimizer must be an rnnkit optimizer, got {type(self.optimizer).__name__}")
        self.clip_grad_norm = clip_grad_norm
        self.scheduler = lr_scheduler(self.optimizer) if lr_scheduler is not None else None
        self.history: dict[str, list[float]] = {}

    # ---- data ----------------------------------------------------------------------
    def _axes(self) -> tuple[int, int]:
        axes = getattr(self.model, "_batch_axes", None)
        if axes is not None:
            return axes()
        return (0 if getattr(self.model, "batch_first", True) else 1,) * 2

    def _check_data(self, x: Any, y: Any, lengths: Any, name: str = "x") -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        x, y = np.asarray(x), np.asarray(y)
        ax_in, ax_out = self._axes()
        if x.ndim <= ax_in or y.ndim <= ax_out:
            raise ValueError(f"{name} and its targets need a batch axis")
        n = x.shape[ax_in]
        if y.shape[ax_out] != n:
            raise ValueError(f"{name} has {n} samples but its targets have {y.shape[ax_out]} "
                             f"(target shape {shape_str(y.shape)})")
        if lengths is not None:
            steps = x.shape[1 - ax_in] if x.ndim >= 2 else 1
            lengths = as_lengths(lengths, n, steps)
        return x, y, lengths

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
        """
        epochs = check_int("epochs", epochs, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        if early_stopping is not None:
            early_stopping = check_int("early_stopping", early_stopping, 1)
        x, y, lengths = self._check_data(x, y, lengths)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, lengths_val)")
            val = self._check_data(*validation_data, name="validation x") if len(validation_data) == 3 \
                else self._check_data(validation_data[0], validation_data[1], None, name="validation x")
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
            for b, start in enumerate(batches, 1):
                idx = order[start : start + batch_size]
                xb, yb = self._take(x, idx, ax_in), self._take(y, idx, ax_out)
                lb = None if lengths is None else lengths[idx]
                out = model(xb, lengths=lb) if lb is not None else model(xb)
                loss, grad = self._loss(out, yb, lb)
                if not math.isfinite(loss):
                    if bar:
                        bar.close()
                    raise FloatingPointError(
                        f"the loss became {loss} at epoch {epoch}, batch {b}: training stopped. "
                        "Check the data for NaN/inf, or lower the learning rate / clip the gradients."
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
            if bar:
                bar.close()
            history["loss"].append(total / seen)
            if classify:
                history["accuracy"].append(correct / max(counted, 1))
            if val is not None:
                metrics = self.evaluate(*val)
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
        self.history = history
        return history

    def evaluate(self, x: Any, y: Any, lengths: Any = None, batch_size: int = 256) -> dict[str, float]:
        """The loss (and accuracy for cross_entropy) over a data set, in eval mode."""
        batch_size = check_int("batch_size", batch_size, 1)
        x, y, lengths = self._check_data(x, y, lengths)
        ax_in, ax_out = self._axes()
        n = x.shape[ax_in]
        model = self.model
        was_training = model.training
        model.eval()
        total, correct, counted = 0.0, 0, 0
        try:
            for start in range(0, n, batch_size):
                idx = np.arange(start, min(start + batch_size, n))
                xb, yb = self._take(x, idx, ax_in), self._take(y, idx, ax_out)
                lb = None if lengths is None else lengths[idx]
                out = model(xb, lengths=lb) if lb is not None else model(xb)
                loss, _ = self._loss(out, yb, lb)
                total += loss * len(idx)
                if self.loss_name == "cross_entropy":
                    c, k = self._correct(out, yb, lb)
                    correct, counted = correct + c, counted + k
        finally:
            model.train(was_training)
        metrics = {"loss": total / n}
        if self.loss_name == "cross_entropy":
            metrics["accuracy"] = correct / max(counted, 1)
        return metrics


def _progress_bar() -> Any:
    """tqdm when installed (the [progress] extra), else nothing (one line per epoch is printed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm
