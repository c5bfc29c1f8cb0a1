"""The moment state the tests read the monitor's per-unit sums through.

:func:`unit_field_sums` is :func:`~shiftkit.stats.moments.unit_raw_sums` then
:func:`~shiftkit.stats.moments.fields_from_raw` (the monitor's path, on one tensor);
:class:`MomentState` holds its first four rows and merges by addition. Test helpers, not
library code: the monitor keeps the same sums packed in a :class:`~shiftkit.stats.ShiftAccumulator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from shiftkit.stats.moments import (
    Scratch,
    fields_from_raw,
    flag_counted,
    shifted_variance,
    unit_raw_sums,
)
from shiftkit.stats.units import FEATURES, as_unit_tensor, num_units


def unit_field_sums(
    x: Tensor,
    unit_dim: int | None = FEATURES,
    shift: Tensor | None = None,
    split_half: bool = True,
    positive: bool = False,
    beyond: float | None = None,
    scratch: Scratch | None = None,
) -> Tensor:
    """Per-unit sums of ``x`` for every field of :data:`FIELDS`.

    Rows: the number of finite elements, their sum, the sum of ``(x - K)^2`` over
    finite elements, the number of non-finite elements; the first three again
    over the first half of dimension 0 (the batch), for the split-half noise
    floor; and ``flag``: the count of finite elements > 0 (``positive``, ReLU
    inputs) or with ``|x| > beyond`` (sigmoid/tanh inputs), else 0.
    (:func:`unit_raw_sums` then :func:`fields_from_raw`, the monitor's path.)

    Returns:
        float32 tensor of shape ``(len(FIELDS), units)``.
    """
    raw = unit_raw_sums(x, unit_dim, shift, split_half, positive, beyond, scratch)
    k = torch.zeros(raw.shape[1], device=raw.device) if shift is None else shift.float().reshape(-1)
    return fields_from_raw(raw, k, flag_counted(k, positive, beyond))


def unit_moment_sums(x: Tensor, unit_dim: int | None = FEATURES, shift: Tensor | None = None) -> Tensor:
    """Per-unit ``(count, sum, sum of squares about shift, nonfinite)`` of ``x``.

    Args:
        x: activation tensor of any floating dtype; see :func:`reduce_dims`.
        unit_dim: ``-1`` features, ``1`` channels, ``None`` pooled.
        shift: per-unit shift ``K`` (float32, one value per unit) for the sum of
            squares; zero when omitted.

    Returns:
        float32 tensor of shape ``(4, units)``.
    """
    return unit_field_sums(x, unit_dim, shift, split_half=False)[:4]


@dataclass
class MomentState:
    """Mergeable per-unit moments: count, sum, sum of squares about ``shift``, non-finite count.

    All tensors are float64 of shape ``(units,)``. ``a + b`` merges two states
    over disjoint data (both must use the same shift).

    Example:
        >>> x = torch.randn(64, 10)
        >>> whole = MomentState.from_tensor(x)
        >>> halves = MomentState.from_tensor(x[:32]) + MomentState.from_tensor(x[32:])
        >>> torch.allclose(whole.var, halves.var)
        True
    """

    count: Tensor
    sum: Tensor
    sumsq: Tensor
    nonfinite: Tensor
    shift: Tensor

    @classmethod
    def from_tensor(
        cls, x: Tensor, unit_dim: int | None = FEATURES, shift: Tensor | None = None
    ) -> MomentState:
        """The moments of ``x`` (see :func:`unit_moment_sums` for the layout)."""
        units = num_units(as_unit_tensor(x), unit_dim)
        if shift is None:
            shift = torch.zeros(units, device=x.device)
        sums = unit_moment_sums(x, unit_dim, shift.float()).double()
        return cls(sums[0], sums[1], sums[2], sums[3], shift.double())

    def __add__(self, other: MomentState) -> MomentState:
        if not torch.equal(self.shift, other.shift):
            raise ValueError("MomentState: cannot merge states taken about different shifts")
        return MomentState(
            self.count + other.count,
            self.sum + other.sum,
            self.sumsq + other.sumsq,
            self.nonfinite + other.nonfinite,
            self.shift,
        )

    @property
    def mean(self) -> Tensor:
        """Per-unit mean of the finite elements (NaN where there are none)."""
        return self.sum / self.count

    @property
    def var(self) -> Tensor:
        """Per-unit population variance (divides by n), clamped at 0."""
        return shifted_variance(self.count, self.sum, self.sumsq, self.shift)

    @property
    def std(self) -> Tensor:
        """Per-unit population standard deviation."""
        return self.var.sqrt()
