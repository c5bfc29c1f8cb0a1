"""The one place that builds normalization, activation and weight layers for the model zoo.

Every architecture asks a :class:`LayerKnobs` for its layers, so the knobs of the experiments
(``norm``, ``activation``, ``dropout``, ``ghost_batch_size``) mean the same thing everywhere:

- a normalized layer is ``map -> norm -> activation`` as in Ioffe & Szegedy, ``BN(Wu)`` before the
  nonlinearity, and the map has no bias when the norm brings its own shift (``beta``);
- activations are modules (``nn.Sigmoid``/``nn.Tanh``/``nn.ReLU``, never in-place), because
  ``ShiftMonitor`` hooks modules and measures the *input* of each activation.

Norms (``norm=``):

================  ==================================================================================
``none``          no normalization (the map keeps its bias)
``batch``         ``BatchNorm1d`` (features) / ``BatchNorm2d`` (channels; statistics over NxHxW);
                  :class:`~shiftkit.models.norms.GhostBatchNorm` when ``ghost_batch_size`` is set
``syncbatch``     batch norm, converted to synchronized BN by
                  :func:`~shiftkit.models.norms.convert_sync_batchnorm` once a process group exists;
                  plain batch norm on one process
``layer``         ``LayerNorm`` over features; for conv maps ``GroupNorm(1, C)`` (= LayerNorm over
                  C x H x W with a per-channel affine, and independent of the image size)
``group``         ``GroupNorm`` with :func:`group_count` groups (features are the channels of MLPs)
``noisy_batch``   batch norm, then :class:`~shiftkit.models.norms.BatchNoise` (Santurkar et al.)
``noisy_none``    the same noise with no normalization: the "noisy plain" network of CLAIMS C5
================  ==================================================================================
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from shiftkit.models.norms import BatchNoise, GhostBatchNorm, NoisyBatchNorm

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "NORMS",
    "LayerKnobs",
    "group_count",
    "init_weights",
]

NORMS = ("none", "batch", "syncbatch", "layer", "group", "noisy_batch", "noisy_none")
# Not in-place: a forward hook on an in-place ReLU would see its input already rectified.
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
INITS = ("default", "normal", "xavier", "kaiming")

# Norms that end in a learned per-unit shift, which makes the bias of the preceding map redundant.
_SHIFTING_NORMS = {"batch", "syncbatch", "layer", "group", "noisy_batch"}
_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def group_count(units: int, max_groups: int = 32) -> int:
    """Number of GroupNorm groups for ``units`` channels: the largest divisor of ``units`` that is
    at most ``max_groups`` and leaves at least 2 units per group (1 for a single unit).

    Example:
        >>> [group_count(c) for c in (1, 4, 6, 64, 100)]
        [1, 2, 3, 32, 25]
    """
    limit = max(1, min(max_groups, units // 2))
    return max(d for d in range(1, limit + 1) if units % d == 0)


@dataclass(frozen=True)
class LayerKnobs:
    """Builds the layers of a network from the experiment's knobs.

    Args:
        norm: one of :data:`NORMS` (table in the module docstring).
        activation: one of :data:`ACTIVATIONS`.
        dropout: dropout probability after each hidden activation of fully connected layers
            (and before the classifier of conv nets); 0 adds no module.
        ghost_batch_size: if set, batch norms (``batch``, ``noisy_batch``) normalize groups of this
            many samples (:class:`~shiftkit.models.norms.GhostBatchNorm`).

    Example:
        >>> knobs = LayerKnobs(norm="batch", activation="sigmoid")
        >>> block = knobs.linear_block(784, 100)
        >>> [f"{name}: {type(m).__name__}" for name, m in block.named_children()]
        ['linear: Linear', 'norm: BatchNorm1d', 'act: Sigmoid']
        >>> block.linear.bias is None  # beta of the BN replaces it
        True
    """

    norm: str = "none"
    activation: str = "relu"
    dropout: float = 0.0
    ghost_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.ghost_batch_size is not None:
            if self.norm not in ("batch", "noisy_batch"):
                # syncbatch + ghost contradict: one merges the ranks' groups, the other splits them.
                raise ValueError(
                    f"ghost_batch_size needs norm='batch' or 'noisy_batch', got norm={self.norm!r}"
                )
            if self.ghost_batch_size < 2:
                raise ValueError(f"ghost_batch_size must be >= 2, got {self.ghost_batch_size}")

    @property
    def map_bias(self) -> bool:
        """Whether a Linear/Conv feeding a norm keeps its bias (not when the norm has a shift)."""
        return self.norm not in _SHIFTING_NORMS

    def _batch_norm(self, units: int, spatial: bool) -> nn.Module:
        if self.ghost_batch_size is not None:
            return GhostBatchNorm(units, self.ghost_batch_size)
        return nn.BatchNorm2d(units) if spatial else nn.BatchNorm1d(units)

    def make_norm(self, units: int, spatial: bool) -> nn.Module:
        """The norm for ``units`` features (``spatial=False``) or channels (``spatial=True``);
        ``nn.Identity`` for ``norm="none"``."""
        if self.norm == "none":
            return nn.Identity()
        if self.norm in ("batch", "syncbatch"):
            return self._batch_norm(units, spatial)
        if self.norm == "noisy_batch":
            return NoisyBatchNorm(self._batch_norm(units, spatial))
        if self.norm == "noisy_none":
            return BatchNoise()
        if self.norm == "layer":
            return nn.GroupNorm(1, units) if spatial else nn.LayerNorm(units)
        return nn.GroupNorm(group_count(units), units)  # "group"

    def make_activation(self) -> nn.Module:
        """A fresh activation module."""
        return ACTIVATIONS[self.activation]()

    def linear(self, in_features: int, out_features: int) -> nn.Linear:
        """A Linear map that will feed this norm (bias only if the norm has no shift)."""
        return nn.Linear(in_features, out_features, bias=self.map_bias)

    def conv(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
    ) -> nn.Conv2d:
        """A "same"-padded Conv2d that will feed this norm (bias only if the norm has no shift)."""
        return nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding=kernel_size // 2,
            bias=self.map_bias,
        )

    def _block(self, weight_layer: nn.Module, units: int, spatial: bool, dropout: bool):
        parts = OrderedDict(linear=weight_layer) if not spatial else OrderedDict(conv=weight_layer)
        norm = self.make_norm(units, spatial)
        if not isinstance(norm, nn.Identity):
            parts["norm"] = norm
        parts["act"] = self.make_activation()
        if dropout and self.dropout > 0:
            parts["drop"] = nn.Dropout(self.dropout)
        return nn.Sequential(parts)

    def linear_block(self, in_features: int, out_features: int) -> nn.Sequential:
        """``Linear -> norm -> activation [-> dropout]``, children named linear/norm/act/drop."""
        return self._block(self.linear(in_features, out_features), out_features, False, True)

    def conv_block(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> nn.Sequential:
        """``Conv2d -> norm -> activation``, children named conv/norm/act."""
        conv = self.conv(in_channels, out_channels, kernel_size, stride)
        return self._block(conv, out_channels, True, False)


def init_weights(
    model: nn.Module, scheme: str = "default", scale: float = 1.0, std: float = 0.01
) -> nn.Module:
    """(Re-)initialize the weights of every Linear/Conv layer of ``model``, in place.

    Norm layers keep gamma=1, beta=0. ``scale`` multiplies the weights after the scheme has drawn
    them, so "careless" initialization (CLAIMS C3) is one number; biases are not scaled.

    Args:
        model: the network.
        scheme: ``default`` (torch's own init, untouched), ``normal`` (``N(0, std^2)``, the
            "small random Gaussian" of Ioffe & Szegedy), ``xavier`` (Glorot normal, gain 1) or
            ``kaiming`` (He normal, fan-in, ReLU gain). Schemes other than ``default`` zero biases.
        scale: multiplier applied to every weight after the scheme.
        std: standard deviation for ``scheme="normal"``.

    Returns:
        ``model``.

    Example:
        >>> net = init_weights(nn.Linear(1000, 100), "normal", std=0.01)
        >>> round(net.weight.std().item(), 3)
        0.01
    """
    if scheme not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {scheme!r}")
    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, _WEIGHT_LAYERS):
                continue
            if scheme == "normal":
                nn.init.normal_(m.weight, 0.0, std)
            elif scheme == "xavier":
                nn.init.xavier_normal_(m.weight)
            elif scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if scheme != "default" and m.bias is not None:
                nn.init.zeros_(m.bias)
            if scale != 1.0:
                m.weight.mul_(scale)
    return model
