"""Fixed-edge histograms with underflow/overflow bins, and percentiles read from them.

A layer's histogram edges are chosen once, from a warm-up sample, and kept for
the rest of the run so that histograms taken at different steps are comparable
bin for bin. The ``bins`` equal-width bins cover ``[lo, hi)``; two more bins
catch everything below ``lo`` (underflow) and at or above ``hi`` (overflow), so a
count vector has ``bins + 2`` entries and no finite value is ever dropped.
Non-finite values are left out.

Edge choice (:func:`choose_edges`): take the smallest and largest finite values
of the warm-up snapshot and widen the interval by ``margin`` times its span on
each side (0.5 by default: the range is twice the warm-up spread) and by half a
bin more (so the extremes fall inside bins, not on their edges), so that
moderate drift stays inside the bins and only large drift lands in the overflow
bins. Minimum and maximum, rather than robust quantiles, because they combine
exactly across DDP ranks (a MAX all-reduce): k ranks choose the very edges one
process would choose on the same global batch, so their histograms agree bin
for bin. The price: an extreme outlier at warm-up widens the bins; raise
``bins`` if the percentiles of such a layer look coarse.

Percentiles (:func:`histogram_percentiles`) interpolate linearly inside the bin
where the cumulative count crosses ``q * total`` (the empirical CDF is taken as
piecewise linear between edges). A percentile that falls in the underflow
(overflow) bin is reported as ``lo`` (``hi``): a bound, not a value. Inside the
range the error is at most one bin width plus, when the histogram was built from
a subsample, the sampling error of the quantile (see :func:`strided_subsample`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from shiftkit.stats.arrays import as_float64, at_least, namespace, take_along
from shiftkit.stats.scratch import Scratch


@dataclass(frozen=True)
class HistogramEdges:
    """Equal-width bins on ``[lo, hi)`` plus an underflow and an overflow bin.

    Args:
        lo: lower edge of the first in-range bin.
        hi: upper edge of the last in-range bin.
        bins: number of in-range bins (>= 2).
    """

    lo: float
    hi: float
    bins: int

    def __post_init__(self):
        if self.bins < 2:
            raise ValueError(f"HistogramEdges: bins must be >= 2, got {self.bins}")
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.hi > self.lo):
            raise ValueError(f"HistogramEdges: need finite lo < hi, got lo={self.lo}, hi={self.hi}")

    @property
    def width(self) -> float:
        """Width of one in-range bin."""
        return (self.hi - self.lo) / self.bins

    def tensor(self, device=None) -> Tensor:
        """The ``bins + 3`` edges with the two outer bins drawn one bin wide (for plots)."""
        w = self.width
        return torch.linspace(self.lo - w, self.hi + w, self.bins + 3, device=device, dtype=torch.float64)


def choose_edges(sample: Tensor, bins: int = 64, margin: float = 0.5) -> HistogramEdges:
    """Edges for a layer from a warm-up sample (see the module docstring).

    Non-finite values in ``sample`` are ignored. A constant (or empty) sample gets
    a small symmetric range around its value so that the edges stay valid.
    """
    lo, hi = finite_extremes(sample).tolist()
    return edges_from_range(lo, hi, bins, margin)


def finite_extremes(x: Tensor) -> Tensor:
    """``[min, max]`` of the finite values of ``x`` as a float32 tensor on its device.

    ``[inf, -inf]`` when there are none. No host synchronization.
    """
    v = x.detach().reshape(-1).float()
    if v.numel() == 0:
        return torch.tensor([math.inf, -math.inf], device=v.device)
    lo = torch.nan_to_num(v, nan=math.inf, posinf=math.inf, neginf=math.inf).amin()
    hi = torch.nan_to_num(v, nan=-math.inf, posinf=-math.inf, neginf=-math.inf).amax()
    return torch.stack([lo, hi])


#: Largest |edge| :func:`edges_from_range` starts from: widened, it stays far below
#: float32's 3.4e38 (``histc`` takes float32 bounds; beyond them it raises).
EDGE_LIMIT = 1e30


def edges_from_range(q_lo: float, q_hi: float, bins: int = 64, margin: float = 0.5) -> HistogramEdges:
    """Widen ``[q_lo, q_hi]`` by ``margin`` spans, then half a bin, on each side (see the module docstring).

    A non-finite or empty range (``q_lo > q_hi``) falls back to ``[-1, 1]``; the
    range is clipped to ``±EDGE_LIMIT`` so that every edge stays a float32 value
    (larger values land in the outer bins).
    """
    if not (math.isfinite(q_lo) and math.isfinite(q_hi)) or q_lo > q_hi:
        q_lo, q_hi = -1.0, 1.0
    q_lo, q_hi = min(max(q_lo, -EDGE_LIMIT), EDGE_LIMIT), min(max(q_hi, -EDGE_LIMIT), EDGE_LIMIT)
    span = q_hi - q_lo
    scale = max(abs(q_lo), abs(q_hi))
    min_span = max(1e-6 * scale, 1e-6)
    if span < min_span:
        centre = 0.5 * (q_lo + q_hi)
        q_lo, q_hi, span = centre - min_span / 2, centre + min_span / 2, min_span
    lo, hi = q_lo - margin * span, q_hi + margin * span
    # Half a bin more on each side: with the plain margin the warm-up extremes sit
    # exactly on bin edges (e.g. edge 16 and 48 of 64), where float32 rounding in
    # the binning decides their bin.
    pad = (hi - lo) / (2 * bins)
    return HistogramEdges(lo - pad, hi + pad, bins)


def widened(edges: HistogramEdges, factor: int = 2) -> HistogramEdges:
    """The same number of bins over a range ``factor`` times wider, around the same centre.

    With an even ``factor`` (a doubling) and an even number of bins, every old
    bin lies inside one new bin, so :func:`rebin` moves old counts exactly.
    """
    centre, half = 0.5 * (edges.lo + edges.hi), 0.5 * (edges.hi - edges.lo) * factor
    return HistogramEdges(centre - half, centre + half, edges.bins)


def rebin(counts: Tensor, old: HistogramEdges, new: HistogramEdges) -> Tensor:
    """Counts on ``old`` edges moved onto ``new`` edges (last dim = ``bins + 2``).

    Each old in-range bin goes to the new bin holding its centre; underflow and
    overflow stay underflow and overflow. Exact when the new bins nest the old
    ones (as after :func:`widened`), except that mass which was outside the old
    range stays outside although part of it may lie inside the new one.
    """
    if old == new:
        return counts
    centres = old.lo + (torch.arange(old.bins, dtype=torch.float64) + 0.5) * old.width
    index = ((centres - new.lo) / new.width).floor().clamp(-1, new.bins).long() + 1
    out = counts.new_zeros(*counts.shape[:-1], new.bins + 2)
    out[..., 0] += counts[..., 0]
    out[..., -1] += counts[..., -1]
    return out.index_add_(-1, index.to(counts.device), counts[..., 1:-1])


def edges_or_none(lo: float, hi: float, bins: int) -> HistogramEdges | None:
    """``HistogramEdges(lo, hi, bins)``, or None for a site not seen yet (NaN edges)."""
    return None if math.isnan(lo) or math.isnan(hi) else HistogramEdges(lo, hi, bins)


def rebin_rows(
    counts: Tensor, old: Sequence[HistogramEdges | None], new: Sequence[HistogramEdges | None]
) -> Tensor:
    """``(S, bins + 2)`` counts with row ``i`` moved from ``old[i]`` onto ``new[i]`` (:func:`rebin`).

    Rows whose edges are unknown (None) or unchanged stay as they are; ``counts`` itself is
    returned when no row moved, else a new tensor.
    """
    out = counts
    for i, (a, b) in enumerate(zip(old, new)):
        if a is not None and b is not None and a != b:
            out = out.clone() if out is counts else out
            out[i] = rebin(counts[i], a, b)
    return out


def slot_counts(
    values: Tensor, lo: Tensor, inv_width: Tensor, first_bin: Tensor | int, bins: int, num_slots: int,
    finite: bool = False, scratch: Scratch | None = None,
) -> Tensor:  # fmt: skip
    """Many fixed-edge histograms at once: ``(num_slots, bins + 2)`` float64 counts.

    Args:
        values: any tensor; ``lo``, ``inv_width`` and ``first_bin`` broadcast against
            it (e.g. one entry per column), giving each element its edges and the
            histogram it counts into.
        lo: float32 lower in-range edge of each element's histogram.
        inv_width: float32 ``1 / width`` of its bins.
        first_bin: int32 index of its histogram's first (underflow) bin in the
            flat ``num_slots * (bins + 2)`` counts (``slot * (bins + 2)``), or 0.
        bins: in-range bins of every histogram (plus underflow and overflow).
        num_slots: how many histograms.
        finite: the caller knows every value is finite (saves a pass).
        scratch: reusable memory for the temporaries (see :mod:`shiftkit.stats.scratch`).

    Bin ``k`` holds ``lo + k width <= x < lo + (k+1) width``; everything below
    ``lo`` goes to the underflow bin, everything at or above ``lo + bins width``
    to the overflow bin; non-finite values are dropped. The position
    ``(x - lo) / width`` is computed in float32 from each histogram's own
    ``lo`` (exact for dyadic edges, and near ``lo`` whatever the edges), so only
    a value within a few float32 roundings of an edge may land in the
    neighbouring bin; float64 measured twice as slow on a 1.2M-element batch.
    No host synchronization (``bincount`` on CPU; ``histc`` over the bin
    indices on CUDA, where ``bincount`` would read its maximum back to the host).
    """
    total = num_slots * (bins + 2)
    shape = values.shape if isinstance(first_bin, int) else _broadcast_shape(values.shape, first_bin.shape)
    dev = values.device

    def buffer(key: str, dtype: torch.dtype) -> Tensor | None:
        return scratch.take(key, shape, dtype, dev) if scratch is not None else None

    t = torch.sub(values, lo, out=buffer("bin_position", torch.float32))
    # Clamped to [-1, bins] and moved by 1, every position is >= 0, where truncation to an
    # integer is the floor; the histogram's first index is added as an integer (exact).
    t.mul_(inv_width).clamp_(-1.0, float(bins)).add_(1.0)
    out = buffer("bin_index", torch.int32)
    index = out.copy_(t) if out is not None else t.to(torch.int32)
    if not isinstance(first_bin, int) or first_bin:
        index.add_(first_bin)
    if not finite:  # a NaN position has no integer: send every non-finite value to the dropped bin
        index = torch.where(torch.isfinite(values), index, total)
    if dev.type == "cpu":
        counts = torch.bincount(index.reshape(-1), minlength=total + 1)[:total]
    else:
        counts = torch.histc(index.reshape(-1).float(), bins=total + 1, min=0, max=total + 1)[:total]
    return counts.reshape(num_slots, bins + 2).double()


def _broadcast_shape(a: torch.Size, b: torch.Size) -> tuple[int, ...]:
    """The broadcast of two shapes of one rank (``torch.broadcast_shapes`` took 32 us, a third
    of a small group's binning); other ranks go to torch, which also checks them."""
    if len(a) != len(b) or any(m != n and 1 not in (m, n) for m, n in zip(a, b)):
        return tuple(torch.broadcast_shapes(a, b))
    return tuple(n if m == 1 else m for m, n in zip(a, b))


def edge_tensors(edges: HistogramEdges, device=None) -> tuple[Tensor, Tensor]:
    """``(lo, 1 / width)`` of ``edges`` as float32 ``(1,)`` tensors, as :func:`slot_counts` takes them."""
    return (
        torch.tensor([edges.lo], dtype=torch.float32, device=device),
        torch.tensor([1.0 / edges.width], dtype=torch.float32, device=device),
    )


def histogram_counts(
    x: Tensor, edges: HistogramEdges, finite: bool = False, scratch: Scratch | None = None,
    edge_values: tuple[Tensor, Tensor] | None = None,
) -> Tensor:  # fmt: skip
    """Counts of the finite values of ``x`` in the ``bins + 2`` bins of ``edges`` (float64).

    Runs on ``x``'s device with no host synchronization (see :func:`slot_counts`);
    ``edge_values``: :func:`edge_tensors` of ``edges``, if the caller keeps them.
    """
    lo, inv_width = edge_values if edge_values is not None else edge_tensors(edges, x.device)
    return slot_counts(x.detach().reshape(-1), lo, inv_width, 0, edges.bins, 1, finite, scratch)[0]


def subsample_stride(numel: int, per_sample: int, max_elements: int) -> int:
    """The stride of :func:`strided_subsample`: at least ``numel / max_elements``, coprime with ``per_sample``."""
    stride = max(1, math.ceil(numel / max_elements))
    while stride > 1 and math.gcd(stride, per_sample) != 1:
        stride += 1
    return stride


def strided_subsample(x: Tensor, max_elements: int = 65536) -> Tensor:
    """At most ``max_elements`` elements of ``x``, evenly spread over the whole tensor.

    Takes every ``s``-th element of the flattened tensor, with ``s`` the smallest
    stride >= ``numel / max_elements`` that is coprime with the number of
    elements per sample, so the subsample walks through every position (channel,
    pixel, feature) evenly instead of aliasing onto one of them. Returns a view
    when ``x`` is contiguous. Quantiles of an i.i.d. subsample of ``m`` elements
    have a CDF error of about ``sqrt(q(1-q)/m)`` (0.0014 at ``q = 0.15`` and
    ``m = 65536``); neighbouring activations are correlated, so treat that as a
    lower bound.
    """
    flat = x.detach().reshape(-1)
    if flat.numel() <= max_elements:
        return flat
    per_sample = max(1, flat.numel() // max(1, x.shape[0] if x.dim() > 0 else 1))
    stride = subsample_stride(flat.numel(), per_sample, max_elements)
    return flat[::stride][:max_elements]


def histogram_percentiles(counts, lo, hi, qs: tuple[float, ...]):
    """Percentiles read from fixed-edge histograms, linearly interpolated inside bins.

    Args:
        counts: ``(..., bins + 2)`` counts, underflow first and overflow last
            (a tensor, or a numpy array as the monitor passes on the host).
        lo, hi: ``(...)`` in-range edges of each histogram.
        qs: quantile levels in (0, 1), e.g. ``(0.15, 0.5, 0.85)``.

    Returns:
        ``(..., len(qs))`` values; NaN for empty histograms, ``lo``/``hi`` for
        quantiles in the underflow/overflow bins.
    """
    counts, lo, hi = as_float64(counts), as_float64(lo), as_float64(hi)
    xp = namespace(counts)
    nbins = counts.shape[-1] - 2
    width = (hi - lo) / nbins
    cum = counts.cumsum(-1)
    total = cum[..., -1:]
    target = total * (torch.tensor(qs, dtype=torch.float64, device=counts.device) if xp is torch else np.asarray(qs))
    # The first bin whose cumulative count reaches the target (searchsorted, left side).
    j = (cum[..., None, :] < target[..., :, None]).sum(-1)
    j = xp.minimum(j, xp.full_like(j, nbins + 1))
    before = xp.where(j > 0, take_along(cum, at_least(j - 1, 0)), 0.0)
    in_bin = take_along(counts, j)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = at_least(-at_least(-(target - before) / in_bin, -1.0), 0.0)  # clamp to [0, 1]
    left = lo[..., None] + (j - 1) * width[..., None]
    value = xp.minimum(xp.maximum(left + frac * width[..., None], lo[..., None]), hi[..., None])
    return xp.where(total > 0, value, math.nan)
