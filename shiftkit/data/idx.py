"""Reader for the IDX files MNIST is distributed in, in plain numpy, with clear errors.

An IDX file is a big-endian header -- a 4-byte magic number ``0x0000TTDD`` (``TT`` = 0x08 for
unsigned bytes, ``DD`` = the number of dimensions), then one 4-byte size per dimension --
followed by the values in row-major order. MNIST images are magic 2051 (0x00000803:
n x rows x cols), labels magic 2049 (0x00000801: n). Files may be gzipped (``.gz``).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from shiftkit.data.errors import DatasetFormatError, DatasetNotFoundError

IMAGES_MAGIC = 0x00000803  # 2051
LABELS_MAGIC = 0x00000801  # 2049


def read_idx(path: str | os.PathLike, magic: int, kind: str = "data") -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally ``.gz``) after checking its header.

    Args:
        path: the file; a name ending in ``.gz`` is decompressed.
        magic: the magic number the file must start with; its low byte is the number of
            dimensions.
        kind: what the file holds, for error messages (``"images"``, ``"labels"``).

    Returns:
        A read-only uint8 array with the shape the header gives.

    Raises:
        DatasetNotFoundError: there is no file at ``path``.
        DatasetFormatError: wrong magic number, header or payload shorter or longer than the
            header says, or a corrupt gzip stream. The message names the file.

    Example:
        >>> read_idx("t10k-labels-idx1-ubyte.gz", LABELS_MAGIC, "labels").shape  # doctest: +SKIP
        (10000,)
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"IDX {kind} file {path} not found")
    data = _read_bytes(path)
    size_note = "decompressed file has" if path.suffix == ".gz" else "file has"
    if len(data) < 4:
        raise DatasetFormatError(
            f"{path} is not an IDX file: {size_note} {len(data)} bytes, less than the 4-byte "
            f"magic number (expected {magic}, {kind})"
        )
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DatasetFormatError(f"expected magic {magic} ({kind}) in {path}, found {found}")
    ndim = magic & 0xFF
    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        raise DatasetFormatError(
            f"{path} truncated: an IDX header with {ndim} dimensions is {header_bytes} bytes, "
            f"{size_note} {len(data)}"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_bytes + math.prod(shape)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise DatasetFormatError(
            f"{path} {problem}: header says {'x'.join(map(str, shape))} = {expected} bytes, "
            f"{size_note} {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (magic 2051): uint8 array ``(n, rows, cols)``.

    Args:
        path: e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.

    Example:
        >>> read_idx_images("train-images-idx3-ubyte").shape  # doctest: +SKIP
        (60000, 28, 28)
    """
    return read_idx(path, IMAGES_MAGIC, "images")


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file (magic 2049): uint8 array ``(n,)``.

    Args:
        path: e.g. ``train-labels-idx1-ubyte`` or ``train-labels-idx1-ubyte.gz``.

    Example:
        >>> read_idx_labels("train-labels-idx1-ubyte").shape  # doctest: +SKIP
        (60000,)
    """
    return read_idx(path, LABELS_MAGIC, "labels")


def _read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetFormatError(f"{path} is not a valid gzip file: {err}") from None
