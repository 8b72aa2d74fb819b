"""Optimizers over a model's one flat parameter buffer, one C++ pass per step
(``cpp/include/rnnkit/optim.h``), with PyTorch's exact update rules; global-norm
gradient clipping; PyTorch's StepLR and CosineAnnealingLR schedules.

    opt = rk.Adam(lr=1e-3)
    model.zero_grad(); ...; model.backward(g)
    rk.clip_grad_norm(model, 1.0)
    opt.step(model)
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _core
from .module import Module, check_bool, check_int, check_real, got, is_number


def _check_nonneg(name: str, value: Any) -> float:
    return check_real(name, value, 0.0)


def _check_betas(betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a tuple of two numbers in [0, 1), e.g. (0.9, 0.999), got {got(betas)}")
    for i, b in enumerate(betas):
        if not is_number(b):
            raise TypeError(f"betas must be two numbers in [0, 1), got {betas!r}: betas[{i}] is {got(b)}")
        if not 0.0 <= b < 1.0:  # NaN fails this too
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}: betas[{i}] = {b} is out of range")
    return float(betas[0]), float(betas[1])


class Optimizer:
    """Holds the hyper-parameters and the per-parameter state of one model."""

    def __init__(self, lr: float) -> None:
        self.lr = _check_nonneg("lr", lr)
        self._model: Optional[Module] = None
        self.state: dict[str, np.ndarray] = {}
        self.steps = 0

    def _bind(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model must be an rnnkit module, got {got(model)}")
        if self._model is not model:
            if self._model is not None:
                raise ValueError("this optimizer already updates another model; make one optimizer per model")
            self._model = model
            self.state = {name: np.zeros_like(model._flat) for name in self._state_names()}
            self.steps = 0

    def _state_names(self) -> tuple[str, ...]:
        return ()

    def step(self, model: Module) -> None:
        """One update of every parameter of ``model`` from its accumulated gradients."""
        self._bind(model)
        self.steps += 1
        self._update(model._flat, model._grad)

    def _update(self, params: np.ndarray, grads: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (dampening 0), Nesterov and L2 weight decay."""

    def __init__(self, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.momentum = _check_nonneg("momentum", momentum)
        self.nesterov = check_bool("nesterov", nesterov)
        self.weight_decay = _check_nonneg("weight_decay", weight_decay)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")

    def _state_names(self) -> tuple[str, ...]:
        return ("momentum_buffer",)

    def _update(self, params: np.ndarray, grads: np.ndarray) -> None:
        _core.sgd_step(params, grads, self.state["momentum_buffer"], self.lr, self.momentum, self.nesterov,
                       self.weight_decay, self.steps == 1)

    def __repr__(self) -> str:
        return f"SGD(lr={self.lr}, momentum={self.momentum}, nesterov={self.nesterov}, weight_decay={self.weight_decay})"


class Adam(Optimizer):
    """Adam (PyTorch's: L2 weight decay added to the gradient)."""

    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        self.betas = _check_betas(betas)
        self.eps = _check_nonneg("eps", eps)
        self.weight_decay = _check_nonneg("weight_decay", weight_decay)

    def _state_names(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _update(self, params: np.ndarray, grads: np.ndarray) -> None:
        _core.adam_step(params, grads, self.state["exp_avg"], self.state["exp_avg_sq"], self.lr, self.betas[0],
                        self.betas[1], self.eps, self.weight_decay, self._decoupled, self.steps)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay})"


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the step)."""

    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(lr, betas, eps, weight_decay)


def clip_grad_norm(model: Union[Module, Sequence[Module]], max_norm: float) -> float:
    """Scale every gradient of ``model`` (or of several modules together, e.g. an
    encoder and a decoder) so that their global L2 norm is at most ``max_norm``
    (torch.nn.utils.clip_grad_norm_); returns the norm before clipping."""
    models = [model] if isinstance(model, Module) else list(model) if isinstance(model, (list, tuple)) else None
    if not models or not all(isinstance(m, Module) for m in models):
        raise TypeError(f"model must be an rnnkit module or a list of them, got {type(model).__name__}")
    max_norm = _check_nonneg("max_norm", max_norm)
    if len(models) == 1:
        return float(_core.clip_grad_norm(models[0]._grad, max_norm))
    # the joint norm first (max_norm = inf measures without clipping), then one scale for all
    norm = math.sqrt(sum(_core.clip_grad_norm(m._grad, math.inf) ** 2 for m in models))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for m in models:
            m._grad *= m._grad.dtype.type(coef)
    return norm


class _Scheduler:
    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an rnnkit optimizer (e.g. rk.SGD), got {got(optimizer)}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(self.optimizer.lr)

    def _next_lr(self, lr: float) -> float:
        raise NotImplementedError


class StepLR(_Scheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (PyTorch's StepLR)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_int("step_size", step_size, 1)
        self.gamma = _check_nonneg("gamma", gamma)

    def _next_lr(self, lr: float) -> float:
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class CosineAnnealingLR(_Scheduler):
    """Cosine decay from the initial rate to ``eta_min`` over ``T_max`` epochs
    (PyTorch's CosineAnnealingLR, in its recursive form, so the rates agree exactly)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = check_int("T_max", T_max, 1)
        self.eta_min = _check_nonneg("eta_min", eta_min)

    def _next_lr(self, lr: float) -> float:
        e, T, lo = self.last_epoch, self.T_max, self.eta_min
        if (e - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - lo) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * e / T)) / (1 + math.cos(math.pi * (e - 1) / T)) * (lr - lo) + lo
