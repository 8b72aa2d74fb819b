"""rnnkit: fast CPU recurrent neural networks (RNN, LSTM, GRU).

The maths lives in an Eigen-based C++ core (``rnnkit._core``); this package
gives it PyTorch's module API over NumPy arrays.
"""

from __future__ import annotations

from ._core import get_num_threads, set_num_threads
from .layers import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU", "get_num_threads", "set_num_threads"]
__version__ = "0.1.0"
