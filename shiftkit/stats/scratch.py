"""Reusable memory for the temporaries of one measurement.

On CPU a fresh multi-megabyte tensor is new pages of memory, and every page
faults on first touch: measured on this project's 2-core machine, converting
1.2M float64 values to int64 took 0.7 ms into reused memory and 13-15 ms into a
fresh tensor. The accumulator's elementwise work therefore writes into buffers
that are grown to the largest need seen and then reused, one per purpose (on
CUDA this saves allocator work). They are a fixed size for a given model, so
the monitor's memory stays flat.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class Scratch:
    """Named buffers, each grown to the largest request seen and reused after."""

    def __init__(self) -> None:
        self._bufs: dict[str, Tensor] = {}

    def take(self, key: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
        """A tensor of ``shape`` and ``dtype`` in the buffer ``key`` (its contents are garbage).

        Only one tensor per key is alive at a time: a second ``take`` of the same key
        returns the same memory.
        """
        need = math.prod(shape)
        buf = self._bufs.get(key)
        if buf is None or buf.numel() < need or buf.dtype != dtype or buf.device != torch.device(device):
            buf = self._bufs[key] = torch.empty(need, dtype=dtype, device=device)
        return buf[:need].view(shape)

    def rows(self, n: int, like: Tensor) -> Tensor:
        """``n`` float32 rows shaped like ``like`` (the per-call temporaries of the raw sums)."""
        return self.take("rows", (n, *like.shape), torch.float32, like.device)

    @property
    def nbytes(self) -> int:
        """Bytes held by all buffers."""
        return sum(b.numel() * b.element_size() for b in self._bufs.values())
