"""Batch transforms for CIFAR-10, in torch, applied to a whole batch at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(images: Tensor, padding: int = 4) -> Tensor:
    """Random crop after zero padding, and random horizontal flip, per image of a batch.

    Each image of the ``(n, c, h, w)`` batch is padded by ``padding`` zeros on every side, a
    ``h x w`` window at a uniformly random offset (``(2 * padding + 1)**2`` choices) is taken,
    and it is mirrored left-right with probability 1/2. Uses torch's global RNG (DataLoader
    workers each get their own seed).

    Args:
        images: float tensor ``(n, c, h, w)``.
        padding: pixels of zero padding per side.

    Example:
        >>> import torch
        >>> random_crop_flip(torch.ones(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n,))
    left = torch.randint(0, 2 * padding + 1, (n,))
    rows = (top[:, None] + torch.arange(h))[:, None, :, None].expand(n, c, h, w + 2 * padding)
    cols = (left[:, None] + torch.arange(w))[:, None, None, :].expand(n, c, h, w)
    crops = padded.gather(2, rows).gather(3, cols)
    flip = torch.rand(n) < 0.5
    return torch.where(flip[:, None, None, None], crops.flip(-1), crops)


class ChannelStandardize:
    """Batch transform: uint8 images -> float32, minus a per-channel mean, over a per-channel
    std (both in 0..255 units), then optionally :func:`random_crop_flip`.

    A class rather than a closure so DataLoader workers can pickle it.

    Args:
        mean: per-channel mean, e.g. of the training split.
        std: per-channel standard deviation.
        augment: apply random crop (padding 4) and horizontal flip after standardizing, so the
            padding is 0 = the mean colour.

    Example:
        >>> import torch
        >>> t = ChannelStandardize([125.0, 123.0, 114.0], [63.0, 62.0, 66.0])
        >>> t(torch.full((1, 3, 2, 2), 125, dtype=torch.uint8))[0, 0, 0, 0].item()
        0.0
    """

    def __init__(self, mean, std, augment: bool = False) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment = augment

    def __call__(self, images: Tensor) -> Tensor:
        out = (images.float() - self.mean) / self.std
        return random_crop_flip(out) if self.augment else out
