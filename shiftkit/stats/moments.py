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

import math

import torch
from torch import Tensor

from shiftkit.stats.arrays import at_least, namespace
from shiftkit.stats.scratch import Scratch
from shiftkit.stats.units import FEATURES, as_unit_tensor, broadcast_units, num_units, reduce_dims

#: Per-unit fields of a :class:`~shiftkit.stats.accumulator.Snapshot`, one row each
#: (:func:`fields_from_raw`).
FIELDS = ("count", "sum", "sumsq", "nonfinite", "count_h", "sum_h", "sumsq_h", "flag")


#: Up to this many elements, the three per-unit sums run as one reduction over
#: stacked rows (fewer ops: small tensors are bound by per-op overhead); above
#: it, as separate reductions (measured faster on large CPU tensors).
STACKED_REDUCTION_LIMIT = 1 << 16


#: Rows of :func:`unit_raw_sums`: what the hot path accumulates. Every row is
#: linear in the data, so raw sums from many calls and ranks add up, and
#: :func:`fields_from_raw` turns their total into :data:`FIELDS` once.
RAW_FIELDS = ("nonfinite", "dev_sum", "dev_sq", "nonfinite_h", "dev_sum_h", "dev_sq_h", "flag", "elements", "elements_h")


class FlagKinds:
    """The flag kinds of several sites side by side along the unit dimension, grouped by kind.

    The first ``rectifiers`` units count ``x > 0`` (rectifier inputs), the next
    ``len(thresholds)`` count ``|x| >`` their own threshold (saturating
    nonlinearities), the rest count nothing. Grouped so that each kind is one
    slice of the tensor: one comparison per kind instead of both on every element.

    Args:
        rectifiers: how many leading units are rectifier inputs.
        thresholds: ``(b,)`` the saturation thresholds of the next ``b`` units.
        units: all units.
    """

    def __init__(self, rectifiers: int, thresholds: Tensor, units: int):
        self.rectifiers, self.thresholds, self.units = rectifiers, thresholds.float(), units
        self._masks: tuple[Tensor, Tensor] | None = None

    def masks(self) -> tuple[Tensor, Tensor]:
        """Per unit: 1.0 for a rectifier input (else 0.0), and the threshold (``inf`` for none)."""
        if self._masks is None:
            a, b = self.rectifiers, self.thresholds.numel()
            positive = self.thresholds.new_zeros(self.units)
            positive[:a] = 1.0
            beyond = torch.full_like(positive, float("inf"))
            beyond[a : a + b] = self.thresholds
            self._masks = (positive, beyond)
        return self._masks


#: Elements per sample and unit for which :func:`finite_raw_sums` takes the sums of squares as
#: squared 2-norms (no squares written out). Below, where the reductions are short, writing the
#: squares and reducing both rows at once measured as fast; above, the norm's float32
#: accumulation loses precision (3e-5 relative over 2M elements, against 2e-7 for ``sum``;
#: 3.5e-7 over 1,024).
NORM_PATH_INNER = (64, 4096)


def unit_raw_sums(
    x: Tensor,
    unit_dim: int | None = FEATURES,
    shift: Tensor | None = None,
    split_half: bool = True,
    positive: bool | FlagKinds = False,
    beyond: float | None = None,
    scratch: Scratch | None = None,
    fused: bool = False,
) -> Tensor:
    """Per-unit raw sums of ``x`` (rows :data:`RAW_FIELDS`), the hot path of the monitor.

    With ``d = x - K`` on finite elements (0 elsewhere): the count of non-finite
    elements, the sum of ``d``, the sum of ``d^2``; the same three over the first
    half of dimension 0 (the batch); the flag count of ``d + K`` (``> 0`` or
    ``|.| > beyond``, non-finite slots counted as if they held ``K``); and the
    number of elements per unit in the whole and in the first half.

    Cost: on CPU, when every element is finite (:func:`finite_raw_sums`), two
    elementwise passes (deviation, square) plus the reductions, and one or two
    for a flag; otherwise (and on accelerators, where deciding would mean a host
    synchronization) five plus three or four (:func:`masked_raw_sums`). Only
    float kernels: boolean ones such as ``isfinite(x).sum()`` measured 5-30x
    slower on CPU.

    With ``fused=True`` the same sums come from one compiled kernel per site
    (see :mod:`shiftkit.stats.fused`). For several sites concatenated along
    their units, ``positive`` is a :class:`FlagKinds` (and ``beyond`` unused).

    Returns:
        float32 tensor of shape ``(len(RAW_FIELDS), units)``.
    """
    x = as_unit_tensor(x)
    h = x.shape[0] // 2 if split_half else 0
    if fused:
        from shiftkit.stats.fused import fused_raw_sums

        dims, units = reduce_dims(x.dim(), unit_dim), num_units(x, unit_dim)
        per_unit = x.numel() // units
        k = torch.zeros(units, device=x.device) if shift is None else shift.float()
        rows = fused_raw_sums(x, broadcast_units(k, x.dim(), unit_dim), dims, h, positive, beyond)
        elements = rows.new_tensor([[per_unit], [per_unit * h // max(x.shape[0], 1)]]).expand(2, units)
        return torch.cat([rows, elements])
    if x.device.type == "cpu":
        rows = finite_raw_sums(x, unit_dim, shift, h, positive, beyond, scratch)
        if rows is not None:
            return rows
    return masked_raw_sums(x, unit_dim, shift, h, positive, beyond, scratch)


def masked_raw_sums(
    x: Tensor,
    unit_dim: int | None,
    shift: Tensor | None,
    h: int,
    positive: bool | FlagKinds,
    beyond: float | None,
    scratch: Scratch | None = None,
) -> Tensor:
    """:func:`unit_raw_sums` of a float32 ``x`` that may hold NaN or Inf: every element masked.

    Five elementwise passes (deviation and its clean-up, non-finite indicator
    and its clean-up, square) plus the reductions; a flag adds three or four.
    No host synchronization (the path of accelerator tensors).
    """
    dims = reduce_dims(x.dim(), unit_dim)
    units = num_units(x, unit_dim)
    per_unit = x.numel() // units
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
    if isinstance(positive, FlagKinds):
        # Per-unit flag kinds (several sites at once): count both kinds, keep each unit's own.
        xk = dev if shift is None else torch.add(dev, k, out=bad)
        pos, thr = (broadcast_units(m, x.dim(), unit_dim) for m in positive.masks())
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


def finite_raw_sums(
    x: Tensor,
    unit_dim: int | None,
    shift: Tensor | None,
    h: int,
    positive: bool | FlagKinds,
    beyond: float | None,
    scratch: Scratch | None = None,
) -> Tensor | None:
    """:func:`unit_raw_sums` of a float32 ``x`` whose elements are all finite, in two passes; else None.

    The general path spends four of its five elementwise passes on non-finite
    elements, which a healthy network never produces. Here the deviation
    ``d = x - K`` and its square are summed straight away, the batch halves as
    two partial sums (together one read of ``d``); with 64 to 4096 elements per
    sample and unit (:data:`NORM_PATH_INNER`) the sums of squares are squared
    2-norms of ``d``, so the squares are never written out; a NaN, an Inf or a square
    that overflows float32 makes the sums of squares non-finite, and then None
    sends the caller to the general path, so the result is the same either way
    (to float32 summation order). That check reads the sums on the host,
    which for a CPU tensor is no synchronization; on an accelerator it would be,
    so only CPU tensors come here. Flags count ``x > 0`` and ``|x| > beyond``
    with float-output comparisons (boolean reductions measured 5-7x slower).
    """
    dims = reduce_dims(x.dim(), unit_dim)
    units = num_units(x, unit_dim)
    if 0 not in dims:  # the unit is the batch dimension (no layout of the monitor): the general path
        return None
    inner = tuple(d for d in dims if d != 0)
    per_sample_unit = x.numel() // max(x.shape[0] * units, 1)
    by_norm = NORM_PATH_INNER[0] <= per_sample_unit <= NORM_PATH_INNER[1]
    work = scratch.rows(1 if by_norm else 2, x) if scratch is not None else torch.empty((1 if by_norm else 2, *x.shape), device=x.device)
    if shift is None:
        work[0].copy_(x)
    else:
        torch.sub(x, broadcast_units(shift.to(x.dtype), x.dim(), unit_dim), out=work[0])
    if by_norm:
        # Many elements per sample and unit (a conv input's pixels): the sum of squares as a
        # squared 2-norm, a reduction that squares as it reads, so d^2 is never written out.
        # Measured on a 128x16x32x32 input: 0.29 ms instead of 0.48 for square and sums.
        part = scratch.take("norm_part", (2, x.shape[0], units), x.dtype, x.device) if scratch is not None else x.new_empty(2, x.shape[0], units)
        kept = [n for d, n in enumerate(x.shape) if d not in inner]
        torch.sum(work[0], inner, out=part[0].view(kept))
        torch.linalg.vector_norm(work[0], 2, dim=inner, out=part[1].view(kept))
        part[1].square_()
    else:
        torch.mul(work[0], work[0], out=work[1])
        # Both rows at once: every dimension but the batch and the unit first, (2, N, U) partial
        # sums, then the two halves of the batch (together one read of each row).
        rows_inner = tuple(d + 1 for d in inner)
        part = (work.sum(rows_inner) if rows_inner else work).reshape(2, x.shape[0], units)
    out = x.new_zeros(len(RAW_FIELDS), units)
    if h > 0:
        torch.sum(part[:, :h], 1, out=out[4:6])
        torch.add(out[4:6], part[:, h:].sum(1), out=out[1:3])
    else:
        torch.sum(part, 1, out=out[1:3])
    if not math.isfinite(float(out[2].sum())):
        return None
    _finite_flag(x, dims, unit_dim, positive, beyond, work[0], out[6])
    per_unit = x.numel() // units
    out[7].fill_(per_unit)
    out[8].fill_(per_unit * h // max(x.shape[0], 1))
    return out


def _finite_flag(
    x: Tensor, dims: tuple[int, ...], unit_dim: int | None,
    positive: bool | FlagKinds, beyond: float | None, buf: Tensor, into: Tensor,
) -> None:  # fmt: skip
    """Per unit, into ``into``: elements ``> 0`` (rectifier inputs) or ``|x| > beyond``; left 0
    where no unit counts."""
    if isinstance(positive, FlagKinds):
        kinds, ud = positive, unit_dim % x.dim()
        a, b = kinds.rectifiers, kinds.thresholds.numel()
        if a:
            part = torch.gt(x.narrow(ud, 0, a), 0.0, out=buf.narrow(ud, 0, a))
            torch.sum(part, dims, out=into[:a])
        if b:
            thr = broadcast_units(kinds.thresholds, x.dim(), unit_dim)
            part = torch.abs(x.narrow(ud, a, b), out=buf.narrow(ud, a, b))
            torch.sum(torch.gt(part, thr, out=part), dims, out=into[a : a + b])
        return
    if positive:
        counted = torch.gt(x, 0.0, out=buf)
    elif beyond is not None:
        counted = torch.gt(torch.abs(x, out=buf), beyond, out=buf)
    else:
        return
    if unit_dim is None:
        into.copy_(counted.sum().reshape(1))
    else:
        torch.sum(counted, dims, out=into)


def flag_counted(shift, positive, beyond):
    """Whether a non-finite slot, holding ``K``, was counted in the raw flag (1.0/0.0 per unit).

    ``shift`` a tensor or numpy array; ``positive``/``beyond`` a bool/float or per-unit arrays of
    the same kind (a rectifier mask, thresholds with ``inf`` for none).
    """
    xp = namespace(shift)
    if not isinstance(positive, bool) or not (beyond is None or isinstance(beyond, float)):
        counted = xp.where(positive, shift > 0, abs(shift) > beyond)
    elif positive:
        counted = shift > 0
    elif beyond is not None:
        counted = abs(shift) > beyond
    else:
        counted = shift != shift  # all False, of shift's kind
    return counted.to(shift.dtype) if xp is torch else counted.astype(shift.dtype)


def fields_from_raw(raw, shift, counted):
    """:data:`FIELDS` from summed :data:`RAW_FIELDS` (one vectorized pass, any number of units).

    Args:
        raw: ``(len(RAW_FIELDS), U)`` raw sums (a tensor, or a float64 numpy array on the host).
        shift: ``(U,)`` the shift ``K`` of those sums.
        counted: ``(U,)`` :func:`flag_counted` of each unit.
    """
    r = dict(zip(RAW_FIELDS, raw))
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
    return namespace(raw).stack([fields[name] for name in FIELDS])


def shifted_variance(count, total, sumsq_shifted, shift):
    """Population variance from a count, a sum and a sum of squares about ``shift``.

    ``var = E[(x-K)^2] - (E[x]-K)^2``; NaN where ``count`` is 0, clamped at 0
    (tensors or numpy arrays).
    """
    mean = total / count
    return at_least(sumsq_shifted / count - (mean - shift) ** 2, 0.0)
