"""Per-unit moment sums of an activation tensor.

Units are features (the last dimension) for ``Linear``-style tensors and
channels (dimension 1) for ``Conv``-style tensors, pooled over batch and space
as BatchNorm does. Every field of a state is a sum over elements, so two states
over disjoint data merge by addition — that is what lets DDP ranks combine
their statistics with one ``all_reduce``.

Numerics. Each observed tensor is reduced in float32 (float16/bfloat16 inputs
are upcast first); those per-call sums are then accumulated, across calls and
DDP ranks, in float64 — so merging equals the whole to float32 rounding
(about 1e-7 relative), and a per-call count is exact up to 2**24 elements per unit. The sum of squares is taken about a per-unit
shift ``K`` (ideally a recent estimate of the unit's mean): the variance is then
``E[(x-K)^2] - (E[x]-K)^2``, which does not cancel catastrophically when a unit
is nearly constant far from zero (a saturated sigmoid output, say). Non-finite
elements (NaN, ±Inf) are counted in ``nonfinite`` and left out of every other
field.
"""

from __future__ import annotations

import torch
from torch import Tensor

from shiftkit.stats.units import FEATURES, as_unit_tensor, broadcast_units, num_units, reduce_dims

#: Per-unit fields of a :class:`~shiftkit.stats.accumulator.Snapshot`, one row each
#: (:func:`fields_from_raw`).
FIELDS = ("count", "sum", "sumsq", "nonfinite", "count_h", "sum_h", "sumsq_h", "flag")


#: Up to this many elements, the three per-unit sums run as one reduction over
#: stacked rows (fewer ops: small tensors are bound by per-op overhead); above
#: it, as separate reductions (measured faster on large CPU tensors).
STACKED_REDUCTION_LIMIT = 1 << 16


class Scratch:
    """Reusable memory for the per-call temporaries of :func:`unit_raw_sums`.

    Three float32 rows the size of the observed tensor, grown to the largest
    tensor seen and shared by every site of an accumulator. On CPU a fresh
    multi-megabyte temporary page-faults on first touch at every call (measured
    2-4x slower than writing into reused memory); on CUDA it saves allocator work.
    """

    def __init__(self) -> None:
        self._buf: Tensor | None = None

    def rows(self, n: int, like: Tensor) -> Tensor:
        need = n * like.numel()
        if self._buf is None or self._buf.numel() < need or self._buf.device != like.device:
            self._buf = torch.empty(need, dtype=torch.float32, device=like.device)
        return self._buf[:need].view(n, *like.shape)

    @property
    def nbytes(self) -> int:
        return 0 if self._buf is None else self._buf.numel() * 4


#: Rows of :func:`unit_raw_sums`: what the hot path accumulates. Every row is
#: linear in the data, so raw sums from many calls and ranks add up, and
#: :func:`fields_from_raw` turns their total into :data:`FIELDS` once.
RAW_FIELDS = ("nonfinite", "dev_sum", "dev_sq", "nonfinite_h", "dev_sum_h", "dev_sq_h", "flag", "elements", "elements_h")


def unit_raw_sums(
    x: Tensor,
    unit_dim: int | None = FEATURES,
    shift: Tensor | None = None,
    split_half: bool = True,
    positive: bool | Tensor = False,
    beyond: float | Tensor | None = None,
    scratch: Scratch | None = None,
    fused: bool = False,
) -> Tensor:
    """Per-unit raw sums of ``x`` (rows :data:`RAW_FIELDS`), the hot path of the monitor.

    With ``d = x - K`` on finite elements (0 elsewhere): the count of non-finite
    elements, the sum of ``d``, the sum of ``d^2``; the same three over the first
    half of dimension 0 (the batch); the flag count of ``d + K`` (``> 0`` or
    ``|.| > beyond``, non-finite slots counted as if they held ``K``); and the
    number of elements per unit in the whole and in the first half.

    Cost: five elementwise passes (deviation and its clean-up, non-finite
    indicator and its clean-up, square) into ``scratch`` plus the reductions; a
    flag adds three or four passes. Only float kernels: boolean ones such as
    ``isfinite(x).sum()`` measured 5-30x slower on CPU.

    With ``fused=True`` the same sums come from one compiled kernel per site
    (see :mod:`shiftkit.stats.fused`). ``positive`` and ``beyond`` may also be
    per-unit tensors (1.0/0.0 and thresholds, ``inf`` for none), for several
    sites concatenated along their units.

    Returns:
        float32 tensor of shape ``(len(RAW_FIELDS), units)``.
    """
    x = as_unit_tensor(x)
    dims = reduce_dims(x.dim(), unit_dim)
    units = num_units(x, unit_dim)
    per_unit = x.numel() // units
    h = x.shape[0] // 2 if split_half else 0
    if fused:
        from shiftkit.stats.fused import fused_raw_sums

        k = torch.zeros(units, device=x.device) if shift is None else shift.float()
        rows = fused_raw_sums(x, broadcast_units(k, x.dim(), unit_dim), dims, h, positive, beyond)
        elements = rows.new_tensor([[per_unit], [per_unit * h // max(x.shape[0], 1)]]).expand(2, units)
        return torch.cat([rows, elements])
    work = scratch.rows(3, x) if scratch is not None else torch.empty((3, *x.shape), device=x.device)
    bad, dev, sq = work[0], work[1], work[2]  # row order = the order of the sums below
    if shift is None:
        torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0, out=dev)
    else:
        k = broadcast_units(shift.to(x.dtype), x.dim(), unit_dim)
        torch.sub(x, k, out=dev).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    # x - x is 0 where finite and NaN elsewhere: 1.0 marks a non-finite element.
    torch.sub(x, x, out=bad).nan_to_num_(nan=1.0, posinf=1.0, neginf=1.0)
    torch.mul(dev, dev, out=sq)
    if x.numel() <= STACKED_REDUCTION_LIMIT:
        rdims = tuple(d + 1 for d in dims)
        full = work.sum(rdims).reshape(3, units)
        half = work[:, :h].sum(rdims).reshape(3, units) if h > 0 else None
    else:
        full = torch.stack([row.sum(dims).reshape(units) for row in (bad, dev, sq)])
        half = torch.stack([row[:h].sum(dims).reshape(units) for row in (bad, dev, sq)]) if h > 0 else None
    if half is None:
        half = torch.zeros_like(full)
    if isinstance(positive, Tensor):
        # Per-unit flag kinds (several sites at once): count both kinds, keep each unit's own.
        xk = dev if shift is None else torch.add(dev, k, out=bad)
        pos = broadcast_units(positive.to(x.dtype), x.dim(), unit_dim)
        thr = broadcast_units(beyond.to(x.dtype), x.dim(), unit_dim)
        beyond_part = (xk.abs() - thr).relu_().sign_()
        flag = xk.relu_().sign_().mul_(pos).add_(beyond_part).sum(dims).reshape(1, units)
    elif positive or beyond is not None:
        # d + K is x where x was finite and K (0 without a shift) where it was not.
        xk = dev if shift is None else torch.add(dev, k, out=bad)
        xk = xk.relu_() if positive else xk.abs_().sub_(beyond).relu_()
        flag = xk.sign_().sum(dims).reshape(1, units)
    else:
        flag = torch.zeros_like(full[:1])
    elements = full.new_tensor([[per_unit], [per_unit * h // max(x.shape[0], 1)]]).expand(2, units)
    return torch.cat([full, half, flag, elements])


def flag_counted(shift: Tensor, positive: bool | Tensor, beyond: float | Tensor | None) -> Tensor:
    """Whether a non-finite slot, holding ``K``, was counted in the raw flag (1.0/0.0 per unit)."""
    if isinstance(positive, Tensor) or isinstance(beyond, Tensor):
        return torch.where(positive, shift > 0, shift.abs() > beyond).to(shift.dtype)
    if positive:
        return (shift > 0).to(shift.dtype)
    if beyond is not None:
        return (shift.abs() > beyond).to(shift.dtype)
    return torch.zeros_like(shift)


def fields_from_raw(raw: Tensor, shift: Tensor, counted: Tensor) -> Tensor:
    """:data:`FIELDS` from summed :data:`RAW_FIELDS` (one vectorized pass, any number of units).

    Args:
        raw: ``(len(RAW_FIELDS), U)`` raw sums, float64.
        shift: ``(U,)`` the shift ``K`` of those sums.
        counted: ``(U,)`` :func:`flag_counted` of each unit.
    """
    r = dict(zip(RAW_FIELDS, raw.unbind(0)))
    count, count_h = r["elements"] - r["nonfinite"], r["elements_h"] - r["nonfinite_h"]
    fields = {
        "count": count,
        "sum": r["dev_sum"] + count * shift,
        "sumsq": r["dev_sq"],
        "nonfinite": r["nonfinite"],
        "count_h": count_h,
        "sum_h": r["dev_sum_h"] + count_h * shift,
        "sumsq_h": r["dev_sq_h"],
        "flag": r["flag"] - r["nonfinite"] * counted,
    }
    return torch.stack([fields[name] for name in FIELDS])


def shifted_variance(count: Tensor, total: Tensor, sumsq_shifted: Tensor, shift: Tensor) -> Tensor:
    """Population variance from a count, a sum and a sum of squares about ``shift``.

    ``var = E[(x-K)^2] - (E[x]-K)^2``; NaN where ``count`` is 0, clamped at 0.
    """
    mean = total / count
    return (sumsq_shifted / count - (mean - shift).square()).clamp_min(0.0)
