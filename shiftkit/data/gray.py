"""Pixel preprocessing shared by the grayscale digit datasets (MNIST, its 5k sample, digits)."""

from __future__ import annotations

from typing import Literal

import numpy as np

GrayVariant = Literal["raw", "standardized", "binarized"]
GRAY_VARIANTS: tuple[str, ...] = ("raw", "standardized", "binarized")


def apply_gray_variant(
    pixels: np.ndarray, variant: GrayVariant, fit_rows: np.ndarray
) -> tuple[np.ndarray, tuple[float, float]]:
    """Turn pixels scaled to [0, 1] into the named variant, in place where possible.

    - ``raw``: unchanged, values in [0, 1].
    - ``standardized``: minus the mean, over the std, of all pixels of the ``fit_rows`` (the
      training split, so held-out data does not leak in); one scalar mean and std, not per pixel
      (MNIST's border pixels are constant, a per-pixel std would divide by zero).
    - ``binarized``: 1.0 where the value is above 0.5, else 0.0.

    Args:
        pixels: float32 array ``(n, ...)`` with values in [0, 1].
        variant: one of ``"raw"``, ``"standardized"``, ``"binarized"``.
        fit_rows: indices of the rows whose statistics ``standardized`` uses.

    Returns:
        The transformed float32 array and the ``(mean, std)`` that was applied (``(0, 1)`` for
        ``raw``; ``(0, 1)`` for ``binarized``, which applies a threshold, not an affine map).

    Example:
        >>> import numpy as np
        >>> pixels = np.array([[0.2, 0.7]], np.float32)
        >>> x, _ = apply_gray_variant(pixels, "binarized", fit_rows=np.array([0]))
        >>> x.tolist()
        [[0.0, 1.0]]
    """
    if variant == "raw":
        return pixels, (0.0, 1.0)
    if variant == "binarized":
        return (pixels > 0.5).astype(np.float32), (0.0, 1.0)
    if variant == "standardized":
        fit = pixels[fit_rows]
        mean, std = float(fit.mean(dtype=np.float64)), float(fit.std(dtype=np.float64))
        pixels -= np.float32(mean)
        pixels /= np.float32(std)
        return pixels, (mean, std)
    raise ValueError(f"unknown variant {variant!r}; expected one of {GRAY_VARIANTS}")
