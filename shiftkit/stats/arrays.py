"""The few operations that differ between torch tensors and numpy arrays.

The per-unit and per-site statistics after a measurement's reduction run on
the host, in numpy (see :mod:`shiftkit.stats.compare`: a numpy operation on a
few thousand float64 values costs about a third of a torch one, and a
measurement makes ~150 of them); the same functions also take torch tensors,
as users and tests call them. Everything else is written with operators and
functions both libraries spell alike (``where``, ``log1p``, ``sqrt``, ...,
reached through :func:`namespace`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def namespace(x: Any):
    """``numpy`` for a numpy array (or a number), ``torch`` for a tensor."""
    return torch if isinstance(x, Tensor) else np


def at_least(v, floor):
    """``v`` raised to ``floor`` (a number or an array that broadcasts)."""
    return torch.clamp(v, min=floor) if isinstance(v, Tensor) else np.maximum(v, floor)


def xlogy(x, y):
    """``x * log(y)``, 0 where ``x`` is 0 (so ``0 log 0 = 0``)."""
    if isinstance(x, Tensor):
        return torch.xlogy(x, y)
    zero = x == 0
    return np.where(zero, 0.0, x * np.log(np.where(zero, 1.0, y)))


def take_along(x, index):
    """``x[..., index[..., j]]`` along the last axis (``torch.gather`` / ``np.take_along_axis``)."""
    return x.gather(-1, index) if isinstance(x, Tensor) else np.take_along_axis(x, index, -1)


def as_float64(x):
    """``x`` as float64 of its own kind (a tensor keeps its device)."""
    return x.double() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)


def host64(t: Tensor) -> np.ndarray:
    """A tensor as a float64 numpy array on the host (no copy for a CPU float64 tensor)."""
    return t.detach().to("cpu", torch.float64).numpy()
