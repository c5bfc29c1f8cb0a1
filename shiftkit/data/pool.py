"""Base for grayscale datasets that come as one labelled pool, without a test set."""

from __future__ import annotations

import numpy as np

from shiftkit.data.arrays import ArrayDataset
from shiftkit.data.base import ArrayDataModule
from shiftkit.data.gray import GrayVariant, apply_gray_variant
from shiftkit.data.splits import stratified_split


class PoolDataModule(ArrayDataModule):
    """Splits one labelled pool into train / val / test, stratified and fixed by ``seed``.

    Val and test are both held out of the pool (it has no test split of its own). The pixel
    ``variant`` is fitted on the training split only. After ``setup``, ``split_indices`` maps
    each split to its row indices in the pool and ``normalization`` holds the applied
    ``(mean, std)``.

    Args:
        variant: ``"raw"`` (pixels in [0, 1]), ``"standardized"`` (train-split mean 0, std 1) or
            ``"binarized"`` (0/1, threshold 0.5); see :func:`shiftkit.data.gray.apply_gray_variant`.
        val_fraction: share of the pool held out for validation.
        test_fraction: share of the pool held out for testing.
        **kwargs: the :class:`ArrayDataModule` arguments.

    Example:
        >>> from shiftkit.data import DigitsDataModule  # a PoolDataModule
        >>> dm = DigitsDataModule(val_fraction=0.1, test_fraction=0.2)
        >>> dm.setup()
        >>> {k: len(v) for k, v in dm.split_indices.items()}
        {'train': 1258, 'val': 180, 'test': 359}
    """

    def __init__(
        self,
        variant: GrayVariant = "raw",
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.variant = variant
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_indices: dict[str, np.ndarray] | None = None
        self.normalization: tuple[float, float] | None = None

    def _load_pool(self) -> tuple[np.ndarray, np.ndarray]:
        """Return float32 pixels in [0, 1] of shape ``(n, prod(input_shape))`` and int labels."""
        raise NotImplementedError

    def _build_datasets(self) -> dict[str, ArrayDataset]:
        pixels, labels = self._load_pool()
        val, test, train = stratified_split(
            labels, [self.val_fraction, self.test_fraction], self.seed
        )
        self.split_indices = {"train": train, "val": val, "test": test}
        pixels, self.normalization = apply_gray_variant(pixels, self.variant, train)
        pixels = pixels.reshape(len(pixels), *self.input_shape)
        return {
            split: ArrayDataset(pixels[rows], labels[rows])
            for split, rows in self.split_indices.items()
        }
