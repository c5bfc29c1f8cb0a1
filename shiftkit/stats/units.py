"""Which elements of an activation tensor belong to which unit.

Units are features (the last dimension) for ``Linear``-style tensors and
channels (dimension 1) for ``Conv``/``BatchNorm``-style tensors, pooled over
batch and space as BatchNorm does; ``None`` pools every element into one unit.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Unit layouts: features are the last dimension, channels are dimension 1.
FEATURES = -1
CHANNELS = 1


def reduce_dims(ndim: int, unit_dim: int | None) -> tuple[int, ...]:
    """The dimensions to sum over so that one value per unit is left.

    Args:
        ndim: number of dimensions of the activation tensor.
        unit_dim: ``-1`` (features, last dim), ``1`` (channels) or ``None``
            (pooled: every element belongs to one single unit).
    """
    if unit_dim is None:
        return tuple(range(ndim))
    unit = unit_dim % ndim
    return tuple(d for d in range(ndim) if d != unit)


def num_units(x: Tensor, unit_dim: int | None) -> int:
    """How many units ``x`` holds under the layout ``unit_dim``."""
    if unit_dim is None:
        return 1
    return x.shape[unit_dim % x.dim()]


def as_unit_tensor(x: Tensor, copy: bool = False) -> Tensor:
    """``x`` as float32 with at least 2 dimensions (a lone vector is one sample).

    ``copy=True`` always returns new memory (safe to keep after the module that
    produced ``x`` modifies it in place).
    """
    x = x.detach()
    if x.dtype is torch.float32 and x.dim() >= 2 and not copy:
        return x  # the common case, without the dispatch of a no-op conversion
    if x.dim() == 0:
        x = x.reshape(1, 1)
    elif x.dim() == 1:
        x = x.unsqueeze(0)
    return x.to(torch.float32, copy=copy)


def broadcast_units(v: Tensor, ndim: int, unit_dim: int | None) -> Tensor:
    """Reshape a per-unit vector so that it broadcasts against an ``ndim`` tensor."""
    if unit_dim is None:
        return v.reshape((1,) * ndim)
    shape = [1] * ndim
    shape[unit_dim % ndim] = v.numel()
    return v.reshape(shape)
