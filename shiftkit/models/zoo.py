"""The model zoo: small plain ``nn.Module`` networks and a name -> constructor table.

Every constructor takes ``(input_shape, num_classes, knobs, **size)``, where ``input_shape`` is
``(C, H, W)`` (or ``(H, W)``, or a flat feature count for the MLPs) and ``knobs`` is a
:class:`~shiftkit.models.layers.LayerKnobs`. Convolutional nets also accept flat inputs of
``C*H*W`` features (e.g. sklearn digits as 64 columns) and reshape them. Downsampling is skipped
once a side would drop below 1 pixel and every conv net ends in adaptive pooling, so 1x8x8,
1x28x28 and 3x32x32 inputs all work.

Use :func:`build_model` rather than the classes: it also applies the init knobs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from shiftkit.models.layers import LayerKnobs, init_weights

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ACTIVATION",
    "VGG_CONFIGS",
    "MLP",
    "LeNet",
    "VGG",
    "ResNet",
    "BasicBlock",
    "Inception",
    "InceptionBlock",
    "build_model",
    "paper_mlp",
]

Shape = int | tuple[int, ...]

# Frozen dataclasses, so safe as shared defaults.
PLAIN = LayerKnobs()
PAPER = LayerKnobs(activation="sigmoid")


def _chw(input_shape: Shape) -> tuple[int, int, int]:
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ValueError(f"a conv net needs input_shape (C, H, W) or (H, W), got {input_shape!r}")
    return shape


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _pool(size: tuple[int, int]) -> tuple[nn.Module, tuple[int, int]]:
    """A 2x2 max pool and the size after it; no pooling once a side is below 2 pixels."""
    if min(size) < 2:
        return nn.Identity(), size
    return nn.MaxPool2d(2), (size[0] // 2, size[1] // 2)


class MLP(nn.Module):
    """Fully connected net: flatten, ``depth`` blocks of ``Linear -> norm -> act [-> dropout]`` of
    ``width`` units, and a linear output layer (the softmax is in the loss).

    Args:
        input_shape: flat feature count, or any shape whose product is it.
        num_classes: output units.
        knobs: norm/activation/dropout.
        depth: number of hidden layers (0 gives logistic regression).
        width: units per hidden layer.

    Example:
        >>> net = MLP((1, 8, 8), 10, LayerKnobs(norm="batch"), depth=2, width=32)
        >>> net(torch.randn(4, 64)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        input_shape: Shape,
        num_classes: int,
        knobs: LayerKnobs = PLAIN,
        depth: int = 3,
        width: int = 100,
    ) -> None:
        super().__init__()
        in_features = input_shape if isinstance(input_shape, int) else math.prod(input_shape)
        sizes = [in_features] + [int(width)] * depth
        self.hidden = nn.Sequential(*[knobs.linear_block(a, b) for a, b in zip(sizes, sizes[1:])])
        self.head = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x.flatten(1)))


def paper_mlp(
    input_shape: Shape = (1, 28, 28),
    num_classes: int = 10,
    knobs: LayerKnobs = PAPER,
) -> MLP:
    """The MNIST net of Ioffe & Szegedy (2015, Sec. 4.1): 3 hidden layers of 100 units (sigmoid by
    default, see :data:`DEFAULT_ACTIVATION`), linear output."""
    return MLP(input_shape, num_classes, knobs, depth=3, width=100)


class _ConvNet(nn.Module):
    """Shared forward of the conv nets: reshape flat inputs, ``features``, ``pool``, ``head``."""

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.input_shape = input_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.size(0), *self.input_shape)
        return self.head(self.pool(self.features(x)))

    def _global_pool_head(
        self, layers: list[nn.Module], channels: int, num_classes: int, dropout: float
    ) -> None:
        """``features`` from ``layers``, global average pooling, [dropout,] linear classifier."""
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        self.head = nn.Sequential(nn.Flatten(), *drop, nn.Linear(channels, num_classes))


class LeNet(_ConvNet):
    """LeNet-5-style CNN: two ``conv5x5 -> norm -> act -> maxpool`` stages (6 and 16 channels x
    ``width``), adaptive average pooling to at most 5x5, then ``fc120 -> fc84`` blocks and the
    output layer.

    Example:
        >>> LeNet((1, 28, 28), 10, LayerKnobs(norm="batch"))(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Shape,
        num_classes: int,
        knobs: LayerKnobs = PLAIN,
        width: float = 1.0,
    ) -> None:
        super().__init__(_chw(input_shape))
        c, h, w = self.input_shape
        c1, c2, f1, f2 = (_scaled(v, width) for v in (6, 16, 120, 84))
        pool1, size = _pool((h, w))
        pool2, size = _pool(size)
        self.features = nn.Sequential(
            knobs.conv_block(c, c1, 5), pool1, knobs.conv_block(c1, c2, 5), pool2
        )
        out = (min(5, size[0]), min(5, size[1]))
        self.pool = nn.AdaptiveAvgPool2d(out)
        self.head = nn.Sequential(
            nn.Flatten(),
            knobs.linear_block(c2 * out[0] * out[1], f1),
            knobs.linear_block(f1, f2),
            nn.Linear(f2, num_classes),
        )


# Simonyan & Zisserman configurations A/B/D/E; "M" is a 2x2 max pool.
# fmt: off
VGG_CONFIGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"],
}
# fmt: on


class VGG(_ConvNet):
    """VGG for small images (the CIFAR-10 net of Santurkar et al. with ``norm="batch"``):
    ``conv3x3 -> norm -> act`` stacks from :data:`VGG_CONFIGS`, global average pooling, and one
    linear classifier (dropout before it if set).

    Args:
        depth: 11, 13, 16 or 19.
        width: channel multiplier (1.0 gives 64..512 channels; tests use e.g. 1/16).

    Example:
        >>> VGG((3, 32, 32), 10, depth=11, width=0.125)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Shape,
        num_classes: int,
        knobs: LayerKnobs = PLAIN,
        depth: int = 11,
        width: float = 1.0,
    ) -> None:
        super().__init__(_chw(input_shape))
        if depth not in VGG_CONFIGS:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGS)}, got {depth}")
        c, h, w = self.input_shape
        layers, channels, size = [], c, (h, w)
        for v in VGG_CONFIGS[depth]:
            if v == "M":
                pool, size = _pool(size)
                layers.append(pool)
            else:
                layers.append(knobs.conv_block(channels, _scaled(v, width), 3))
                channels = _scaled(v, width)
        self._global_pool_head(layers, channels, num_classes, knobs.dropout)


class BasicBlock(nn.Module):
    """ResNet basic block: ``conv3x3 -> norm -> act -> conv3x3 -> norm``, plus the shortcut, then
    act. The shortcut is the identity, or ``conv1x1 -> norm`` when the shape changes (option B)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, knobs: LayerKnobs) -> None:
        super().__init__()
        self.conv1 = knobs.conv(in_channels, out_channels, 3, stride)
        self.norm1 = knobs.make_norm(out_channels, spatial=True)
        self.act1 = knobs.make_activation()
        self.conv2 = knobs.conv(out_channels, out_channels, 3)
        self.norm2 = knobs.make_norm(out_channels, spatial=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                knobs.conv(in_channels, out_channels, 1, stride),
                knobs.make_norm(out_channels, spatial=True),
            )
        self.act2 = knobs.make_activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class ResNet(_ConvNet):
    """ResNet for 32x32 images (He et al. 2016, Sec. 4.2): a conv3x3 stem, three stages of ``n``
    basic blocks with 16, 32, 64 channels (x ``width``; stride 2 into stages 2 and 3), global
    average pooling and a linear classifier. ``depth = 6n + 2``: 20, 32, 44, 56, 110, ...

    Example:
        >>> ResNet((3, 32, 32), 10, depth=20, width=0.25)(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        input_shape: Shape,
        num_classes: int,
        knobs: LayerKnobs = PLAIN,
        depth: int = 20,
        width: float = 1.0,
    ) -> None:
        super().__init__(_chw(input_shape))
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"ResNet depth must be 6n + 2 with n >= 1 (20, 32, 44, 56), got {depth}"
            )
        n = (depth - 2) // 6
        c = self.input_shape[0]
        widths = [_scaled(16, width), _scaled(32, width), _scaled(64, width)]
        blocks, channels = [knobs.conv_block(c, widths[0], 3)], widths[0]
        for stage, out_channels in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride, knobs))
                channels = out_channels
        self._global_pool_head(blocks, channels, num_classes, knobs.dropout)


class InceptionBlock(nn.Module):
    """BN-Inception block (Ioffe & Szegedy 2015, Fig. 5): four branches concatenated on channels:
    1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (the pair that replaces GoogLeNet's 5x5); avg pool 3x3
    -> 1x1. Every conv is ``conv -> norm -> act``."""

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        d3_reduce: int,
        d3: int,
        pool_proj: int,
        knobs: LayerKnobs,
    ) -> None:
        super().__init__()
        block = knobs.conv_block
        self.branch1 = block(in_channels, c1, 1)
        self.branch3 = nn.Sequential(block(in_channels, c3_reduce, 1), block(c3_reduce, c3, 3))
        self.branch33 = nn.Sequential(
            block(in_channels, d3_reduce, 1), block(d3_reduce, d3, 3), block(d3, d3, 3)
        )
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1), block(in_channels, pool_proj, 1)
        )
        self.out_channels = c1 + c3 + d3 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch3, self.branch33, self.branch_pool)
        return torch.cat([b(x) for b in branches], dim=1)


class Inception(_ConvNet):
    """A small BN-Inception-style net: a conv3x3 stem (32 channels), two inception blocks, a 2x2
    max pool, two more blocks, global average pooling and a linear classifier (channel counts x
    ``width``; see ``BLOCKS``; "M" is the pool).

    Example:
        >>> Inception((1, 8, 8), 10, width=0.25)(torch.randn(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """

    # (1x1, 3x3 reduce, 3x3, double-3x3 reduce, double-3x3, pool proj)
    BLOCKS = [
        (16, 16, 24, 8, 12, 8),
        (24, 24, 32, 12, 16, 16),
        "M",
        (32, 32, 48, 16, 24, 24),
        (48, 32, 64, 16, 32, 32),
    ]

    def __init__(
        self,
        input_shape: Shape,
        num_classes: int,
        knobs: LayerKnobs = PLAIN,
        width: float = 1.0,
    ) -> None:
        super().__init__(_chw(input_shape))
        c, h, w = self.input_shape
        channels = _scaled(32, width)
        layers, size = [knobs.conv_block(c, channels, 3)], (h, w)
        for spec in self.BLOCKS:
            if spec == "M":
                pool, size = _pool(size)
                layers.append(pool)
                continue
            block = InceptionBlock(channels, *[_scaled(v, width) for v in spec], knobs=knobs)
            layers.append(block)
            channels = block.out_channels
        self._global_pool_head(layers, channels, num_classes, knobs.dropout)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "paper_mlp": paper_mlp,
    "mlp": MLP,
    "lenet": LeNet,
    "vgg": VGG,
    "resnet": ResNet,
    "inception": Inception,
}
"""Name -> constructor ``(input_shape, num_classes, knobs, **size)``; ``size`` is ``depth`` and/or
``width`` where the family has them (MLP width in units, conv-net width a channel multiplier)."""

DEFAULT_ACTIVATION = {"paper_mlp": "sigmoid"}
"""Activation used when ``build_model`` is given none; ``relu`` for architectures not listed."""


def build_model(
    arch: str,
    *,
    input_shape: Shape,
    num_classes: int,
    norm: str = "none",
    activation: str | None = None,
    dropout: float = 0.0,
    ghost_batch_size: int | None = None,
    init: str = "default",
    init_scale: float = 1.0,
    init_std: float = 0.01,
    **size,
) -> nn.Module:
    """Build a network from :data:`ARCHITECTURES` with the experiment's knobs.

    Args:
        arch: a key of :data:`ARCHITECTURES`.
        input_shape: ``(C, H, W)``, ``(H, W)``, or a flat feature count (MLPs only).
        num_classes: output units (logits; the softmax is in the loss).
        norm: see :data:`~shiftkit.models.layers.NORMS` (``noisy_none`` is the noisy plain net).
        activation: ``sigmoid``, ``tanh`` or ``relu``; None for the architecture's default
            (:data:`DEFAULT_ACTIVATION`, else ``relu``).
        dropout: dropout probability (after hidden fully connected layers; before the conv-net
            classifier).
        ghost_batch_size: batch-norm group size (:class:`~shiftkit.models.norms.GhostBatchNorm`).
        init: ``default``, ``normal``, ``xavier`` or ``kaiming``
            (:func:`~shiftkit.models.layers.init_weights`).
        init_scale: multiplier on every Linear/Conv weight after init.
        init_std: standard deviation of ``init="normal"``.
        **size: family sizes, e.g. ``depth=20, width=0.25`` for ``resnet``.

    Returns:
        The ``nn.Module`` (for ``norm="syncbatch"`` still with plain batch norms; see
        :func:`~shiftkit.models.norms.convert_sync_batchnorm`).

    Example:
        >>> net = build_model("paper_mlp", input_shape=(1, 28, 28), num_classes=10, norm="batch",
        ...                   init="normal", init_std=0.01)
        >>> net(torch.randn(60, 1, 28, 28)).shape
        torch.Size([60, 10])
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHITECTURES)}")
    knobs = LayerKnobs(
        norm=norm,
        activation=activation or DEFAULT_ACTIVATION.get(arch, "relu"),
        dropout=dropout,
        ghost_batch_size=ghost_batch_size,
    )
    model = ARCHITECTURES[arch](input_shape, num_classes, knobs, **size)
    return init_weights(model, init, init_scale, init_std)
