"""CIFAR-10 from the binary distribution in a user-named directory."""

from __future__ import annotations

import numpy as np

from shiftkit.data.arrays import ArrayDataset
from shiftkit.data.augment import ChannelStandardize
from shiftkit.data.base import ArrayDataModule
from shiftkit.data.cifar_binary import load_cifar10_binary
from shiftkit.data.splits import stratified_split


def channel_mean_std(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std of uint8 images ``(n, c, h, w)``, in 0..255 units.

    Counts the 256 possible values per channel instead of converting the whole array to float
    (that would be 4 bytes per pixel of extra memory for 50,000 images).

    Args:
        images: uint8 array ``(n, c, h, w)``.

    Example:
        >>> import numpy as np
        >>> mean, std = channel_mean_std(np.array([[[[0, 2]]]], np.uint8))
        >>> mean.tolist(), std.tolist()
        ([1.0], [1.0])
    """
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256)
        mean = counts @ values / counts.sum()
        means.append(mean)
        stds.append(np.sqrt(counts @ (values - mean) ** 2 / counts.sum()))
    return np.array(means), np.array(stds)


class Cifar10DataModule(ArrayDataModule):
    """CIFAR-10 (32x32 colour, 10 classes) from the *binary* files in ``data_dir``.

    Reads ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin`` from ``data_dir``
    or ``data_dir/cifar-10-batches-bin``; the pickled python version is refused. Test is the
    official 10,000-image test batch; val is a stratified hold-out of the 50,000 training
    images, fixed by ``seed``. Images stay uint8 in memory and are standardized per channel
    with the mean/std of the training split (without val) as each batch is fetched;
    ``augment`` adds a random crop (padding 4) and horizontal flip to training batches only.

    Args:
        data_dir: directory holding the binary files, or their ``cifar-10-batches-bin`` parent.
        augment: random crop with padding 4 plus horizontal flip on training batches.
        batch_size: examples per batch (Santurkar et al. used 128).
        num_workers: DataLoader worker processes (augmentation runs in them when > 0).
        seed: seed of the train/val split.
        val_fraction: share of the 50,000 training images held out for validation.
        shuffle: reshuffle the training split every epoch.
        drop_last: drop the last incomplete training batch.

    Raises:
        DatasetNotFoundError, DatasetFormatError: at ``setup``, for missing or malformed files.

    Example:
        >>> dm = Cifar10DataModule("~/data/cifar10", augment=True)
        >>> dm.input_shape, dm.num_classes
        ((3, 32, 32), 10)
        >>> dm.setup()  # doctest: +SKIP
        >>> dm.channel_mean  # doctest: +SKIP
        array([125.3..., 122.9..., 113.8...])
    """

    input_shape = (3, 32, 32)
    num_classes = 10

    def __init__(
        self,
        data_dir: str,
        augment: bool = False,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.1,
        shuffle: bool = True,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
            shuffle=shuffle,
            drop_last=drop_last,
        )
        self.data_dir = data_dir
        self.augment = augment
        self.val_fraction = val_fraction
        self.channel_mean: np.ndarray | None = None
        self.channel_std: np.ndarray | None = None

    def _build_datasets(self) -> dict[str, ArrayDataset]:
        data = load_cifar10_binary(self.data_dir)
        images, labels = data["train"]
        val, train = stratified_split(labels, [self.val_fraction], self.seed)
        train_images = images[train]
        self.channel_mean, self.channel_std = channel_mean_std(train_images)
        plain = ChannelStandardize(self.channel_mean, self.channel_std)
        train_transform = ChannelStandardize(
            self.channel_mean, self.channel_std, augment=self.augment
        )
        return {
            "train": ArrayDataset(train_images, labels[train], train_transform),
            "val": ArrayDataset(images[val], labels[val], plain),
            "test": ArrayDataset(*data["test"], plain),
        }
