"""rnnkit: fast CPU recurrent neural networks (RNN, LSTM, GRU).

The maths lives in an Eigen-based C++ core (``rnnkit._core``); this package
gives it PyTorch's module API over NumPy arrays, and a thin training stack.
"""

from __future__ import annotations

from . import losses, runtime, text
from ._core import get_num_threads, set_num_threads
from .generate import generate
from .io import load, save
from .layers import GRU, LSTM, RNN
from .module import Module
from .nn import Dropout, Embedding, LastStep, Linear, MeanPool
from .optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR, clip_grad_norm
from .sequential import Sequential
from .trainer import Trainer

__all__ = [
    "RNN", "LSTM", "GRU", "Embedding", "Linear", "LastStep", "MeanPool", "Dropout", "Sequential", "Module",
    "SGD", "Adam", "AdamW", "StepLR", "CosineAnnealingLR", "clip_grad_norm", "Trainer", "losses", "text",
    "save", "load", "generate", "runtime", "get_num_threads", "set_num_threads",
]
__version__ = "0.1.0"
