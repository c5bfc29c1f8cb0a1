"""An in-memory dataset that hands the DataLoader a whole batch at a time."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


class ArrayDataset(Dataset):
    """A labelled split held whole in memory, fetched one batch per gather.

    ``DataLoader`` calls ``__getitems__`` with a batch of indices; this takes those rows with one
    ``numpy.take`` per array (single-threaded: torch's parallel indexing of a few rows was 10-50x
    slower on a busy 2-core machine) instead of one Python call per example plus a ``stack``.
    Use it with ``collate_fn=keep_batch``: the batch comes out already collated.

    Args:
        inputs: array ``(n, *input_shape)``: float32, or uint8 when ``transform`` converts.
        targets: integer class labels of shape ``(n,)``; stored as int64.
        transform: optional function applied to each fetched batch of inputs (a torch tensor),
            e.g. standardization plus augmentation. It must work on a batch.

    Example:
        >>> import numpy as np
        >>> from torch.utils.data import DataLoader
        >>> ds = ArrayDataset(np.zeros((10, 1, 8, 8), np.float32), np.arange(10) % 2)
        >>> x, y = next(iter(DataLoader(ds, batch_size=4, collate_fn=keep_batch)))
        >>> tuple(x.shape), y.dtype
        ((4, 1, 8, 8), torch.int64)
    """

    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = np.ascontiguousarray(inputs)
        self.targets = np.ascontiguousarray(targets, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitems__(self, indices) -> tuple[Tensor, Tensor]:
        rows = np.asarray(indices, dtype=np.intp)
        x = torch.from_numpy(self.inputs.take(rows, axis=0))
        y = torch.from_numpy(self.targets.take(rows))
        if self.transform is not None:
            x = self.transform(x)
        return x, y

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]


def keep_batch(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Collate function for :class:`ArrayDataset`: its batches arrive already collated.

    Args:
        batch: the ``(inputs, targets)`` pair returned by ``ArrayDataset.__getitems__``.

    Example:
        >>> keep_batch(("x", "y"))
        ('x', 'y')
    """
    return batch
