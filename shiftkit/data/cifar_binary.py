"""Reader for the CIFAR-10 *binary* distribution. The python distribution is a pickle, and
unpickling a file can run arbitrary code, so it is refused, never opened."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shiftkit.data.errors import DatasetFormatError, DatasetNotFoundError, why_not_a_directory

IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32  # one label byte, then 1024 R, 1024 G, 1024 B (row-major 32x32)
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
SUBFOLDER = "cifar-10-batches-bin"
PICKLE_MARKERS = ("data_batch_1", "test_batch", "batches.meta")  # the python version's names


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file (``data_batch_N.bin`` or ``test_batch.bin``).

    Args:
        path: the file: records of 3073 bytes, a label byte (0..9) then the 3x32x32 image.

    Returns:
        ``images`` uint8 ``(n, 3, 32, 32)`` and ``labels`` int64 ``(n,)``.

    Raises:
        DatasetNotFoundError: there is no file at ``path``.
        DatasetFormatError: the size is not a positive multiple of 3073 bytes, or a label byte
            is above 9 (e.g. a CIFAR-100 file). The message names the file.

    Example:
        >>> images, labels = read_cifar_batch("test_batch.bin")  # doctest: +SKIP
        >>> images.shape  # doctest: +SKIP
        (10000, 3, 32, 32)
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"CIFAR-10 batch file {path} not found")
    size = path.stat().st_size
    if size == 0 or size % RECORD_BYTES:
        raise DatasetFormatError(
            f"{path} has {size} bytes, expected a positive multiple of {RECORD_BYTES} "
            "(CIFAR-10 binary records: 1 label byte + 3072 pixel bytes)"
        )
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels > 9)
    if len(bad):
        raise DatasetFormatError(
            f"{path} record {bad[0]} has label {labels[bad[0]]}, expected 0..9 "
            f"({len(bad)} records out of range)"
        )
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def find_cifar10_dir(root: str | os.PathLike) -> Path:
    """The folder holding the six CIFAR-10 binary files: ``root`` or ``root/cifar-10-batches-bin``.

    Args:
        root: the directory the user named.

    Raises:
        DatasetNotFoundError: the files are missing (the message lists which), or only the
            pickled python version is there (refused, with a message saying so).

    Example:
        >>> find_cifar10_dir("~/data/cifar10")  # doctest: +SKIP
        PosixPath('/home/me/data/cifar10/cifar-10-batches-bin')
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"CIFAR-10 directory {root} {why_not_a_directory(root)}; expected it to hold the binary version "
            f"({', '.join(TRAIN_FILES)}, {TEST_FILE}), directly or in {SUBFOLDER}/"
        )
    folders = (root, root / SUBFOLDER)
    for folder in folders:
        if all((folder / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return folder
    pickled = [
        folder
        for folder in (*folders, root / "cifar-10-batches-py")
        if any((folder / name).is_file() for name in PICKLE_MARKERS)
    ]
    if pickled:
        raise DatasetNotFoundError(
            f"{pickled[0]} holds the CIFAR-10 python version, which is pickled; shiftkit does "
            "not unpickle files (unpickling can run arbitrary code). Use the binary version "
            f"instead (cifar-10-binary.tar.gz: {', '.join(TRAIN_FILES)}, {TEST_FILE})"
        )
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (root / n).is_file()]
    raise DatasetNotFoundError(
        f"CIFAR-10 binary files missing in {root} (and no {SUBFOLDER}/ with all of them): "
        f"{', '.join(missing)}"
    )


def load_cifar10_binary(root: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the CIFAR-10 binary version: ``{"train": (images, labels), "test": (...)}``.

    Args:
        root: directory holding the ``.bin`` files, or their ``cifar-10-batches-bin`` parent.

    Returns:
        uint8 images ``(n, 3, 32, 32)`` and int64 labels per split (50,000 / 10,000 for the
        real dataset).

    Example:
        >>> data = load_cifar10_binary("~/data/cifar10")  # doctest: +SKIP
        >>> data["train"][0].shape  # doctest: +SKIP
        (50000, 3, 32, 32)
    """
    folder = find_cifar10_dir(root)
    batches = [read_cifar_batch(folder / name) for name in TRAIN_FILES]
    train = (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))
    return {"train": train, "test": read_cifar_batch(folder / TEST_FILE)}
