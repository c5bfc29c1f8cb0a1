"""scikit-learn's 8x8 handwritten digits: 1,797 images, instant to load."""

from __future__ import annotations

import numpy as np

from shiftkit.data.gray import GrayVariant
from shiftkit.data.pool import PoolDataModule
from shiftkit.extras import require


class DigitsDataModule(PoolDataModule):
    """The UCI 8x8 digits bundled with scikit-learn (``load_digits``), as (1, 8, 8) images.

    Pixel values 0..16 are scaled to [0, 1]. There is no separate test set: val and test are
    both stratified hold-outs of the 1,797 images, fixed by ``seed``.

    Args:
        variant: ``"raw"`` (pixels in [0, 1]), ``"standardized"`` (train-split mean 0, std 1)
            or ``"binarized"`` (0/1 with threshold 0.5).
        batch_size: examples per batch.
        num_workers: DataLoader worker processes.
        seed: seed of the split.
        val_fraction: share held out for validation.
        test_fraction: share held out for testing.
        shuffle: reshuffle the training split every epoch.
        drop_last: drop the last incomplete training batch.

    Example:
        >>> dm = DigitsDataModule(batch_size=16)
        >>> dm.input_shape, dm.num_classes
        ((1, 8, 8), 10)
        >>> x, y = next(iter(dm.val_dataloader()))
        >>> float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        True
    """

    input_shape = (1, 8, 8)
    num_classes = 10

    def __init__(
        self,
        variant: GrayVariant = "raw",
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            variant=variant,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            shuffle=shuffle,
            drop_last=drop_last,
        )

    def _load_pool(self) -> tuple[np.ndarray, np.ndarray]:
        require("data", "the 8x8 digits (bundled with scikit-learn)", ("sklearn",))
        from sklearn.datasets import load_digits  # sklearn is slow to import; only when used

        digits = load_digits()
        return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
