"""Writers of small files in the real MNIST IDX and CIFAR-10 binary formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

MNIST_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX encoding, written out by hand: big-endian magic, one uint32 per dim, the bytes."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_dir(directory: Path, n_train: int = 20, n_test: int = 7, gz: bool = False,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST files with random pixels; every class appears in train."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for (split, kind), name in MNIST_NAMES.items():
        magic = 2051 if kind == "images" else 2049
        data = idx_bytes(arrays[f"{split}_{kind}"], magic)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return arrays


def cifar_pixel(image: np.ndarray, channel: np.ndarray, row: np.ndarray, col: np.ndarray):
    """A value that differs by image, channel, row and column (mod 256)."""
    return (image * 37 + channel * 101 + row * 7 + col * 3) % 256


def cifar_record_bytes(labels: np.ndarray, first_image: int = 0) -> bytes:
    """CIFAR-10 binary records built byte by byte from the documented layout: a label byte, then
    1024 red, 1024 green, 1024 blue bytes, each plane row-major 32x32."""
    n = len(labels)
    records = np.zeros((n, 3073), np.uint8)
    records[:, 0] = labels
    offset = np.arange(3072)
    channel, row, col = offset // 1024, (offset % 1024) // 32, offset % 32
    image = np.arange(first_image, first_image + n)[:, None]
    records[:, 1:] = cifar_pixel(image, channel, row, col)
    return records.tobytes()


def write_cifar_dir(directory: Path, records_per_file: int = 30) -> None:
    """Write data_batch_1..5.bin and test_batch.bin; image k of the whole set is numbered k."""
    directory.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for i, name in enumerate(names):
        first = i * records_per_file
        labels = (np.arange(first, first + records_per_file) % 10).astype(np.uint8)
        (directory / name).write_bytes(cifar_record_bytes(labels, first))


class CacheDir(type(Path())):
    parse_calls: int
