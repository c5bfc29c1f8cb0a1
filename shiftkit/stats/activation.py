"""Saturation of sigmoid/tanh inputs and dead ReLU inputs.

Thresholds: a sigmoid input beyond ±4 gives an output within 0.018 of 0 or 1
and a derivative below 7% of its maximum; a tanh input beyond ±2 gives
``|tanh| > 0.964`` and a derivative below 7% of its maximum. Non-finite
elements are left out of numerator and denominator.
"""

from __future__ import annotations

import torch
from torch import Tensor

from shiftkit.stats.units import FEATURES, as_unit_tensor, reduce_dims

#: Default |input| beyond which a saturating nonlinearity counts as saturated.
SATURATION_THRESHOLDS = {"Sigmoid": 4.0, "Tanh": 2.0, "Hardtanh": 1.0, "Softsign": 4.0, "Hardsigmoid": 3.0}

#: Activation modules whose inputs <= 0 give a zero output and zero gradient.
RECTIFIERS = ("ReLU", "ReLU6")


def saturation_fraction(x: Tensor, threshold: float, unit_dim: int | None = None) -> Tensor:
    """Fraction of finite elements with ``|x| > threshold`` (pooled, or per unit).

    Args:
        x: the input of a saturating nonlinearity.
        threshold: e.g. :data:`SATURATION_THRESHOLDS` ``["Sigmoid"]``.
        unit_dim: ``None`` for one pooled fraction; ``-1``/``1`` for one per unit.
    """
    x = as_unit_tensor(x)
    finite = torch.isfinite(x)
    dims = reduce_dims(x.dim(), unit_dim)
    hits = (finite & (x.abs() > threshold)).sum(dims)
    return hits.double() / finite.sum(dims).double()


def dead_fraction(x: Tensor, unit_dim: int | None = None) -> Tensor:
    """Fraction of finite elements ``<= 0`` of a ReLU input (pooled, or per unit)."""
    x = as_unit_tensor(x)
    finite = torch.isfinite(x)
    dims = reduce_dims(x.dim(), unit_dim)
    return (finite & (x <= 0)).sum(dims).double() / finite.sum(dims).double()


def dead_unit_fraction(x: Tensor, unit_dim: int | None = FEATURES) -> Tensor:
    """Fraction of units whose finite inputs are all ``<= 0`` (the unit never fires)."""
    x = as_unit_tensor(x)
    fires = (torch.isfinite(x) & (x > 0)).sum(reduce_dims(x.dim(), unit_dim))
    return (fires == 0).double().mean()
