"""The full MNIST (60,000 + 10,000 digits) from the IDX files in a user-named directory."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shiftkit.data.arrays import ArrayDataset
from shiftkit.data.base import ArrayDataModule
from shiftkit.data.errors import DatasetFormatError, DatasetNotFoundError, why_not_a_directory
from shiftkit.data.gray import GrayVariant, apply_gray_variant
from shiftkit.data.idx import read_idx_images, read_idx_labels
from shiftkit.data.splits import stratified_split

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_mnist_idx(directory: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one MNIST split from its pair of IDX files and check them against each other.

    Looks in ``directory`` and in ``directory/MNIST/raw`` (torchvision's layout) for
    ``<name>`` or ``<name>.gz``; an uncompressed file wins.

    Args:
        directory: the folder holding the four MNIST files.
        split: ``"train"`` or ``"test"`` (the t10k files).

    Returns:
        ``images`` uint8 ``(n, 28, 28)`` and ``labels`` int64 ``(n,)``.

    Raises:
        DatasetNotFoundError: the directory or a file is missing; the message lists the
            expected names.
        DatasetFormatError: a file is malformed, the two files disagree on the count, the
            images are not 28x28 or a label is outside 0..9.

    Example:
        >>> images, labels = load_mnist_idx("~/data/mnist", "test")  # doctest: +SKIP
        >>> images.shape, labels.shape  # doctest: +SKIP
        ((10000, 28, 28), (10000,))
    """
    image_name, label_name = MNIST_FILES[split]
    image_path = _find(Path(directory).expanduser(), image_name)
    label_path = _find(Path(directory).expanduser(), label_name)
    images, labels = read_idx_images(image_path), read_idx_labels(label_path)
    if len(images) != len(labels):
        raise DatasetFormatError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} "
            "labels; expected the same number"
        )
    if images.shape[1:] != (28, 28):
        raise DatasetFormatError(
            f"{image_path} holds {images.shape[1]}x{images.shape[2]} images, expected 28x28"
        )
    if len(labels) and labels.max() > 9:
        raise DatasetFormatError(f"{label_path} has label {labels.max()}, expected 0..9")
    return images, labels.astype(np.int64)


def _find(directory: Path, name: str) -> Path:
    expected = ", ".join(n for pair in MNIST_FILES.values() for n in pair)
    if not directory.is_dir():
        raise DatasetNotFoundError(
            f"MNIST directory {directory} {why_not_a_directory(directory)}; expected a directory holding "
            f"{expected} (each optionally .gz)"
        )
    for folder in (directory, directory / "MNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise DatasetNotFoundError(
        f"{name} (or {name}.gz) not found in {directory}; expected the MNIST files {expected} "
        "(each optionally .gz)"
    )


class MnistDataModule(ArrayDataModule):
    """MNIST from its four IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) in
    ``data_dir``; nothing is downloaded.

    Test is the official 10,000-image t10k split; val is a stratified hold-out of the 60,000
    training images, fixed by ``seed``. The pixel ``variant`` is fitted on the remaining
    training images. Same variants as :class:`Mnist5kDataModule`, so a recipe can move from the
    bundled sample to full MNIST by changing only the data class.

    Args:
        data_dir: directory holding the IDX files (or torchvision's ``MNIST/raw`` below it).
        variant: ``"raw"`` (pixels in [0, 1]), ``"standardized"`` (train-split mean 0, std 1)
            or ``"binarized"`` (0/1 with threshold 0.5).
        batch_size: examples per batch (Ioffe & Szegedy used 60).
        num_workers: DataLoader worker processes.
        seed: seed of the train/val split.
        val_fraction: share of the 60,000 training images held out for validation.
        shuffle: reshuffle the training split every epoch.
        drop_last: drop the last incomplete training batch.

    Raises:
        DatasetNotFoundError, DatasetFormatError: at ``setup``, for missing or malformed files.

    Example:
        >>> dm = MnistDataModule("~/data/mnist", batch_size=60)
        >>> dm.input_shape, dm.num_classes
        ((1, 28, 28), 10)
        >>> dm.setup()  # doctest: +SKIP
    """

    input_shape = (1, 28, 28)
    num_classes = 10

    def __init__(
        self,
        data_dir: str,
        variant: GrayVariant = "raw",
        batch_size: int = 60,
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
        self.variant = variant
        self.val_fraction = val_fraction
        self.normalization: tuple[float, float] | None = None

    def _build_datasets(self) -> dict[str, ArrayDataset]:
        train_images, train_labels = load_mnist_idx(self.data_dir, "train")
        test_images, test_labels = load_mnist_idx(self.data_dir, "test")
        val, train = stratified_split(train_labels, [self.val_fraction], self.seed)
        pixels = np.concatenate([train_images, test_images]).astype(np.float32)
        pixels /= 255.0  # in place: full MNIST as float32 is 220 MB
        pixels, self.normalization = apply_gray_variant(pixels, self.variant, train)
        pixels = pixels.reshape(len(pixels), *self.input_shape)
        labels = np.concatenate([train_labels, test_labels])
        test = np.arange(len(train_labels), len(labels))
        rows = {"train": train, "val": val, "test": test}
        return {split: ArrayDataset(pixels[r], labels[r]) for split, r in rows.items()}
