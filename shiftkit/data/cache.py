"""A small on-disk cache of parsed arrays, written atomically."""

from __future__ import annotations

import io
import os
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from shiftkit.records.atomic import atomic_write_bytes


def default_cache_dir() -> Path:
    """The cache directory: ``$SHIFTKIT_CACHE`` if set, else ``~/.cache/shiftkit``.

    Example:
        >>> default_cache_dir()  # doctest: +SKIP
        PosixPath('/home/me/.cache/shiftkit')
    """
    env = os.environ.get("SHIFTKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "shiftkit"


def cached_arrays(
    path: str | os.PathLike, build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Read arrays from the ``.npz`` at ``path``, or ``build()`` them and save them there.

    The file is written atomically (:func:`~shiftkit.records.atomic.atomic_write_bytes`, mode
    0644), so a reader (another rank, another process, another user) sees the whole file or none. An unreadable cache file
    is rebuilt; an unwritable cache directory only costs a warning.

    Args:
        path: the cache file, e.g. ``default_cache_dir() / "mnist5k-v1.npz"``.
        build: returns the arrays to cache (no object arrays: the file is loaded without pickle).

    Example:
        >>> import numpy as np, tempfile
        >>> f = tempfile.mkdtemp() + "/a.npz"
        >>> cached_arrays(f, lambda: {"x": np.arange(3)})["x"].tolist()
        [0, 1, 2]
    """
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(f"rebuilding unreadable cache file {path}: {err}", stacklevel=2)
    arrays = build()
    try:
        _save_npz_atomic(path, arrays)
    except OSError as err:
        warnings.warn(f"could not write cache file {path}: {err}", stacklevel=2)
    return arrays


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
