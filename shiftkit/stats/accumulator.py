"""Packed, mergeable per-site state for many monitored tensors at once.

A *site* is one monitored tensor: a layer's input (the covariate) or output.
:class:`ShiftAccumulator` folds every observation of every site during one
measurement (all micro-batches, all calls of a shared module) into one flat
float64 buffer:

* ``raw``: ``(len(RAW_FIELDS), U)`` per-unit raw sums (see
  :func:`~shiftkit.stats.moments.unit_raw_sums`), the units of all sites side
  by side; after the reduction they become the :data:`FIELDS` of a
  :class:`Snapshot` in one vectorized pass, so per-unit statistics of every
  layer are computed at once;
* ``hist``: ``(S, bins + 2)`` fixed-edge histogram counts, one row per site.

Every entry is a sum, so DDP ranks combine with **one** ``all_reduce(SUM)`` of
the flat buffer. The only other collective is a small ``all_reduce(MAX)`` in
the first measurement(s), while sites are being *discovered*: their number of
units is read off the first tensor they see (a module's width is not always an
attribute), their histogram edges are chosen from that first sample, and all
ranks must agree on both.

Pure torch: no Lightning. A plain training loop can use it directly::

    acc = ShiftAccumulator([SiteSpec("fc1"), SiteSpec("fc2")])
    acc.observe(0, h1); acc.observe(1, h2)        # in forward pre-hooks
    snap = acc.finish(all_reduce=torch_distributed_all_reduce)   # once per measurement
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from shiftkit.stats.histogram import (
    HistogramEdges,
    edge_tensors,
    edges_from_range,
    finite_extremes,
    histogram_counts,
    rebin_rows,
    slot_counts,
    strided_subsample,
    widened,
)
from shiftkit.stats.moments import (
    FIELDS,
    RAW_FIELDS,
    FlagKinds,
    Scratch,
    fields_from_raw,
    flag_counted,
    unit_raw_sums,
)
from shiftkit.stats.units import FEATURES, as_unit_tensor, num_units

#: ``all_reduce(tensor, op)`` in place, ``op`` in {"sum", "max"}; None = one process.
AllReduce = Callable[[Tensor, str], None]

#: Row of each of the :data:`FIELDS` in a snapshot's ``fields``, looked up by name.
F_COUNT, F_SUM, F_SUMSQ, F_NONFINITE, F_COUNT_H, F_SUM_H, F_SUMSQ_H, F_FLAG = map(
    FIELDS.index, ("count", "sum", "sumsq", "nonfinite", "count_h", "sum_h", "sumsq_h", "flag")
)


def torch_distributed_all_reduce(tensor: Tensor, op: str) -> None:
    """An :data:`AllReduce` over the default ``torch.distributed`` group (no-op if not initialized)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)


@dataclass(frozen=True)
class SiteSpec:
    """What to measure at one site.

    Args:
        name: the site's name, e.g. ``"net.0"`` (input) or ``"net.0@out"``.
        unit_dim: ``-1`` features (last dim) or ``1`` channels.
        rectifier: count inputs > 0 (dead fraction of a ReLU input).
        saturation_threshold: count ``|x| >`` this (saturation of a sigmoid/tanh input).
    """

    name: str
    unit_dim: int = FEATURES
    rectifier: bool = False
    saturation_threshold: float | None = None


@dataclass(frozen=True)
class Layout:
    """Where each site's units sit in the packed buffer; grows only by appending.

    ``units[i] == 0`` means site ``i`` has not been seen yet (or was dropped).
    ``pooled[i]``: the site has more than ``max_units`` units and is tracked as
    a single pooled unit.
    """

    units: tuple[int, ...]
    offsets: tuple[int, ...]
    pooled: tuple[bool, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]

    @property
    def total_units(self) -> int:
        return sum(self.units)

    def __eq__(self, other: object) -> bool:
        # NaN edges mark unseen sites; NaN != NaN would make a layout unequal to its own copy.
        if not isinstance(other, Layout):
            return NotImplemented
        same = lambda a, b: len(a) == len(b) and all(x == y or (x != x and y != y) for x, y in zip(a, b))  # noqa: E731
        return (
            self.units == other.units
            and self.offsets == other.offsets
            and self.pooled == other.pooled
            and same(self.lo, other.lo)
            and same(self.hi, other.hi)
        )

    __hash__ = None

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()``, made once per layout (e.g. the comparison's segment sums by site).

        A frozen dataclass: the cache lives outside the fields, so it takes no part in
        equality or checkpoints.
        """
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            cache[key] = build()
        return cache[key]

    def edges(self, i: int, bins: int) -> HistogramEdges | None:
        return HistogramEdges(self.lo[i], self.hi[i], bins) if self.units[i] else None

    def to_dict(self) -> dict:
        return {k: list(getattr(self, k)) for k in ("units", "offsets", "pooled", "lo", "hi")}

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        return cls(**{k: tuple(v) for k, v in d.items()})

    @classmethod
    def empty(cls, num_sites: int) -> Layout:
        zeros = (0,) * num_sites
        nan = (math.nan,) * num_sites
        return cls(zeros, zeros, (False,) * num_sites, nan, nan)


@dataclass
class Snapshot:
    """The reduced state of one measurement.

    Attributes:
        layout: where each site's units are in ``fields``.
        fields: ``(len(FIELDS), U)`` float64 per-unit sums.
        hist: ``(S, bins + 2)`` float64 histogram counts.
        shift: ``(U,)`` float64 shift ``K`` the sums of squares were taken about.

    A :meth:`ShiftAccumulator.finish` snapshot holds CPU tensors: it is the
    measurement's reduced state, read back once, and compared on the host.
    """

    layout: Layout
    fields: Tensor
    hist: Tensor
    shift: Tensor

    def extended_to(self, layout: Layout) -> Snapshot:
        """This snapshot in a newer ``layout``: zero-count columns for units it appended,
        histograms re-binned onto edges it widened (see :func:`~shiftkit.stats.histogram.rebin`).
        Itself when the layout is the same."""
        if layout is self.layout or layout == self.layout:
            return self
        extra = layout.total_units - self.layout.total_units
        bins, sites = self.hist.shape[1] - 2, range(self.hist.shape[0])
        hist = rebin_rows(
            self.hist, [self.layout.edges(i, bins) for i in sites], [layout.edges(i, bins) for i in sites]
        )
        if extra == 0 and hist is self.hist:
            return self
        pad = self.fields.new_zeros(self.fields.shape[0], extra)
        return Snapshot(layout, torch.cat([self.fields, pad], 1), hist, torch.cat([self.shift, pad[0]]))

    def state_dict(self) -> dict:
        return {"layout": self.layout.to_dict(), "fields": self.fields.cpu(), "hist": self.hist.cpu(), "shift": self.shift.cpu()}

    @classmethod
    def from_state_dict(cls, d: dict, device="cpu") -> Snapshot:
        return cls(Layout.from_dict(d["layout"]), d["fields"].to(device), d["hist"].to(device), d["shift"].to(device))


@dataclass
class _Discovery:
    """Observations of sites that are not in the layout yet (first measurement)."""

    sums: dict[int, Tensor] = field(default_factory=dict)
    units: dict[int, int] = field(default_factory=dict)  # before pooling
    extremes: dict[int, Tensor] = field(default_factory=dict)  # [min, max] of finite values
    samples: dict[int, list[Tensor]] = field(default_factory=dict)
    mismatched: set[int] = field(default_factory=set)


def flag_order(spec: SiteSpec) -> int:
    """Sites grouped for one reduction go rectifier inputs first, then saturating inputs, then the rest
    (see :class:`~shiftkit.stats.moments.FlagKinds`)."""
    return 0 if spec.rectifier else 1 if spec.saturation_threshold is not None else 2


@dataclass
class _GroupColumns:
    """Where a group of deferred sites' units go, their flag kinds and their histogram edges.

    The members are in :func:`flag_order`, as they are concatenated.
    """

    index: Tensor  # (C,) column of each unit in the packed buffer
    sites: Tensor  # (G,) site of each member of the group
    first_bin: Tensor  # (C,) int32 first bin of the histogram of each unit's member (see slot_counts)
    kinds: FlagKinds
    lo: Tensor  # (C,) float32 histogram edges of each unit's site
    inv_width: Tensor

    @classmethod
    def build(cls, acc: ShiftAccumulator, sites: tuple[int, ...]) -> _GroupColumns:
        layout, dev = acc.layout, acc.device
        parts = {k: [] for k in ("index", "first_bin", "lo", "inv_width")}
        rectifiers, thresholds = 0, []
        for slot, i in enumerate(sites):
            n, spec, edges = layout.units[i], acc.sites[i], acc._edges[i]
            parts["index"].append(torch.arange(layout.offsets[i], layout.offsets[i] + n))
            parts["first_bin"].append(torch.full((n,), slot * (acc.bins + 2), dtype=torch.int32))
            parts["lo"].append(torch.full((n,), edges.lo))
            parts["inv_width"].append(torch.full((n,), 1.0 / edges.width))
            if spec.rectifier:
                rectifiers += n
            elif spec.saturation_threshold is not None:
                thresholds.append(torch.full((n,), float(spec.saturation_threshold)))
        cat = {k: torch.cat(v).to(dev) for k, v in parts.items()}
        units = int(cat["index"].numel())
        thr = torch.cat(thresholds).to(dev) if thresholds else torch.zeros(0, device=dev)
        kinds = FlagKinds(rectifiers, thr, units)
        return cls(sites=torch.tensor(sites, dtype=torch.long, device=dev), kinds=kinds, **cat)


def _known_finite(raw: Tensor) -> bool:
    """The raw sums of a CPU tensor count no non-finite element (reading them there is no
    synchronization; on an accelerator it would be, so there the answer is False: mask)."""
    return raw.device.type == "cpu" and not bool(raw[0].any())


class ShiftAccumulator:
    """Accumulates per-unit sums and histograms of many sites, mergeable across ranks.

    Args:
        sites: what to measure, one :class:`SiteSpec` per site.
        bins: in-range histogram bins per site (plus underflow and overflow).
        hist_max_elements: at most this many elements of each observed tensor
            enter the histogram (a strided subsample, see
            :func:`~shiftkit.stats.histogram.strided_subsample`; for tensors
            reduced in a group, up to 4x this size, every k-th sample); moments
            always use every element. At the default 16384 a percentile's CDF error is
            about ±0.012 (3 standard deviations at the median) on top of the bin
            width; binning 65536 elements cost 3.5x more.
        max_units: a site with more units is tracked as one pooled unit.
        margin: histogram range widening, see :func:`~shiftkit.stats.histogram.choose_edges`.
        discovery_rounds: measurements during which unseen sites are still
            looked for; after that they are dropped (see :attr:`never_seen`).
        split_half: also sum the first half of each batch (noise floor).
        fused: compute each site's sums in one ``torch.compile``-d kernel
            (see :mod:`shiftkit.stats.fused`: one read of a large activation
            instead of two to five, tens of seconds of compilation at the first
            measurement).
        device: where the buffers live.
    """

    def __init__(
        self,
        sites: Sequence[SiteSpec],
        *,
        bins: int = 64,
        hist_max_elements: int = 16384,
        max_units: int = 65536,
        margin: float = 0.5,
        discovery_rounds: int = 3,
        split_half: bool = True,
        fused: bool = False,
        device: torch.device | str | None = None,
    ):
        self.sites = list(sites)
        self.bins = bins
        self.hist_max_elements = hist_max_elements
        self.max_units = max_units
        self.margin = margin
        self.discovery_rounds = discovery_rounds
        self.split_half = split_half
        self.fused = fused
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dropped: set[int] = set()
        self.never_seen: list[str] = []
        self.shape_mismatch: set[int] = set()
        self._shift_views: dict[int, Tensor] = {}
        self._set_shift(np.zeros(0, dtype=np.float32))
        self._discovery = _Discovery()
        self._scratch = Scratch()
        self._flag_kind: tuple[np.ndarray, np.ndarray] | None = None
        self._deferred: list[tuple[int, Tensor]] = []
        self._kept: dict[tuple[int, int], Tensor] = {}  # (site, call) -> copy buffer (see _kept_copy)
        self._calls: dict[int, int] = {}  # calls of each site in this measurement
        self._group_cache: dict[tuple[int, ...], _GroupColumns] = {}
        self._set_layout(Layout.empty(len(self.sites)))
        self._alloc()

    def _set_layout(self, layout: Layout) -> None:
        """The one place the layout changes: its edges, and every cache built on it, follow."""
        self.layout = layout
        #: Each site's histogram edges (None until seen), as the layout holds them.
        self._edges: list[HistogramEdges | None] = [layout.edges(i, self.bins) for i in range(len(self.sites))]
        self._shift_views.clear()
        self._flag_kind = None
        self._group_cache.clear()
        self._edge_cache: dict[int, tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ buffers
    def _alloc(self) -> None:
        u, s = self.layout.total_units, len(self.sites)
        rows = len(RAW_FIELDS)
        self.flat = torch.zeros(rows * u + s * (self.bins + 2), dtype=torch.float64, device=self.device)
        self.raw = self.flat[: rows * u].view(rows, u)
        self.hist = self.flat[rows * u :].view(s, self.bins + 2)

    def _grow(self, layout: Layout) -> None:
        old_raw, old_hist = self.raw, self.hist
        self._set_layout(layout)
        self._alloc()
        self.raw[:, : old_raw.shape[1]] = old_raw
        self.hist.copy_(old_hist)
        pad = np.zeros(layout.total_units - self._shift_host.size, dtype=np.float32)
        self._set_shift(np.concatenate([self._shift_host, pad]))

    def _set_shift(self, shift: np.ndarray) -> None:
        """The per-unit shift ``K`` (float32): kept on the host, where each measurement computes it,
        and on the device, where the hot path subtracts it (one host-to-device copy)."""
        self._shift_host = shift
        self._shift = torch.from_numpy(shift).to(self.device)
        self._shift_views.clear()

    def _flag_masks(self) -> tuple[np.ndarray, np.ndarray]:
        """Per unit, on the host: is it a rectifier input, and its saturation threshold (inf if none)."""
        if self._flag_kind is None:
            positive = np.zeros(self.layout.total_units, dtype=bool)
            beyond = np.full(self.layout.total_units, math.inf)
            for spec, off, n in zip(self.sites, self.layout.offsets, self.layout.units):
                positive[off : off + n] = spec.rectifier
                if spec.saturation_threshold is not None:
                    beyond[off : off + n] = spec.saturation_threshold
            self._flag_kind = (positive, beyond)
        return self._flag_kind

    def _shift_for(self, i: int) -> Tensor:
        view = self._shift_views.get(i)
        if view is None:
            off, n = self.layout.offsets[i], self.layout.units[i]
            view = self._shift_views[i] = self._shift[off : off + n]
        return view

    def unit_dim(self, i: int) -> int | None:
        """The effective unit layout of site ``i`` (None once it is pooled)."""
        return None if self.layout.pooled[i] else self.sites[i].unit_dim

    # -------------------------------------------------------------- hot path
    def observe(self, i: int, x: Tensor) -> None:
        """Fold one tensor seen at site ``i`` into the current measurement (no host synchronization
        on an accelerator; a CPU tensor's sums are read to pick the fast path, see
        :func:`~shiftkit.stats.moments.finite_raw_sums`)."""
        if i in self.dropped:
            return
        x = as_unit_tensor(x)
        spec = self.sites[i]
        units = self.layout.units[i]
        if units == 0:
            self._observe_new(i, x)
            return
        ud = self.unit_dim(i)
        if num_units(x, ud) != units:
            self.shape_mismatch.add(i)
            return
        if self._defers(x, ud):
            # Small tensors are bound by per-op overhead: keep a copy (the module
            # may change x in place later) and reduce all same-shaped sites at
            # once in finish().
            self._deferred.append((i, self._kept_copy(i, x) if x.dtype == torch.float32 else x))
            return
        off = self.layout.offsets[i]
        sums = unit_raw_sums(
            x, ud, self._shift_for(i), self.split_half, spec.rectifier, spec.saturation_threshold, self._scratch,
            self.fused,
        )  # fmt: skip
        self.raw[:, off : off + units].add_(sums)
        sample = strided_subsample(x, self.hist_max_elements)
        counts = histogram_counts(sample, self._edges[i], _known_finite(sums), self._scratch, self._edge_values(i))
        self.hist[i].add_(counts)

    def _edge_values(self, i: int) -> tuple[Tensor, Tensor]:
        """Site ``i``'s edges as the float32 tensors the binning takes (kept until the edges change)."""
        kept = self._edge_cache.get(i)
        if kept is None:
            kept = self._edge_cache[i] = edge_tensors(self._edges[i], self.device)
        return kept

    def _kept_copy(self, i: int, x: Tensor) -> Tensor:
        """A copy of ``x`` in a buffer kept for this site and call (reused every measurement:
        fresh memory page-faults, see :mod:`~shiftkit.stats.scratch`; 4.8 ms for 73 copies
        of 128 KiB, against 0.4 ms into kept buffers)."""
        call = self._calls[i] = self._calls.get(i, 0) + 1
        buf = self._kept.get((i, call))
        if buf is None or buf.shape != x.shape or buf.device != x.device:
            buf = self._kept[(i, call)] = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        return buf.copy_(x)

    def _defers(self, x: Tensor, unit_dim: int | None) -> bool:
        # Up to 4x the histogram budget: there, per-op overhead still outweighs
        # the memory passes; the group's histogram subsamples whole samples.
        return not self.fused and unit_dim is not None and x.numel() <= 4 * self.hist_max_elements

    def _flush_deferred(self) -> None:
        """Reduce the deferred tensors (up to ``4 * hist_max_elements`` elements): one concatenation
        per shape, one set of reductions each.

        Sites whose tensors share every dimension but the unit one are
        concatenated along their units; their raw sums land in their columns with
        one ``index_add_`` and their histograms come from one :func:`slot_counts`.
        The same arithmetic as :func:`unit_raw_sums` on each tensor, so the
        numbers equal the per-site path's to float32 summation order.
        """
        groups: dict[tuple, list[tuple[int, Tensor]]] = {}
        for i, x in self._deferred:
            ud = self.sites[i].unit_dim % x.dim()
            key = (ud, tuple(n for d, n in enumerate(x.shape) if d != ud))
            groups.setdefault(key, []).append((i, x))
        self._deferred = []
        self._calls.clear()
        for (ud, _), items in groups.items():
            items.sort(key=lambda item: flag_order(self.sites[item[0]]))  # stable: call order within a kind
            cols = self._group_columns(tuple(i for i, _ in items))
            x = self._concatenated([t for _, t in items], ud)
            raw = unit_raw_sums(x, ud, self._shift[cols.index], self.split_half, cols.kinds, None, self._scratch)
            self.raw.index_add_(1, cols.index, raw.double())
            shape = [1] * x.dim()
            shape[ud] = -1
            # At most hist_max_elements per site: every k-th sample (all units kept).
            k = -(-max(t.numel() for _, t in items) // self.hist_max_elements)
            counts = slot_counts(
                x[::k] if k > 1 else x, cols.lo.view(shape), cols.inv_width.view(shape), cols.first_bin.view(shape),
                self.bins, len(items), _known_finite(raw), self._scratch,
            )  # fmt: skip
            self.hist.index_add_(0, cols.sites, counts)

    def _concatenated(self, tensors: list[Tensor], dim: int) -> Tensor:
        """The group's tensors side by side along ``dim``, in reused memory (see :class:`Scratch`)."""
        if len(tensors) == 1:
            return tensors[0]
        shape = list(tensors[0].shape)
        shape[dim] = sum(t.shape[dim] for t in tensors)
        out = self._scratch.take("group", tuple(shape), tensors[0].dtype, tensors[0].device)
        return torch.cat(tensors, dim=dim, out=out)

    def _group_columns(self, sites: tuple[int, ...]) -> _GroupColumns:
        cached = self._group_cache.get(sites)
        if cached is None:
            cached = self._group_cache[sites] = _GroupColumns.build(self, sites)
        return cached

    def _observe_new(self, i: int, x: Tensor) -> None:
        spec = self.sites[i]
        real_units = num_units(x, spec.unit_dim)
        ud = spec.unit_dim if real_units <= self.max_units else None
        sums = unit_raw_sums(x, ud, None, self.split_half, spec.rectifier, spec.saturation_threshold, self._scratch)
        d = self._discovery
        if d.units.setdefault(i, real_units) != real_units:
            d.mismatched.add(i)
            return
        d.sums[i] = sums if i not in d.sums else d.sums[i] + sums
        ext = finite_extremes(x)
        if i in d.extremes:
            ext = torch.stack([torch.minimum(ext[0], d.extremes[i][0]), torch.maximum(ext[1], d.extremes[i][1])])
        d.extremes[i] = ext
        d.samples.setdefault(i, []).append(strided_subsample(x, self.hist_max_elements).float().clone())

    # ------------------------------------------------------------- per measurement
    def finish(self, all_reduce: AllReduce | None = None) -> Snapshot:
        """Reduce across ranks and return this measurement's snapshot; reset for the next.

        Every rank must call it at the same measurements. It reads the reduced
        sums back to the host once (the measurement's one transfer; the snapshot
        holds CPU tensors), and while sites are being discovered their edges too.
        """
        self._flush_deferred()
        unseen = [i for i in range(len(self.sites)) if self.layout.units[i] == 0 and i not in self.dropped]
        if unseen and self.discovery_rounds > 0:
            self._discover(unseen, all_reduce)
        self._discovery = _Discovery()
        if all_reduce is not None:
            all_reduce(self.flat, "sum")
        # The measurement's one device-to-host transfer: from here on it is host work, on a few
        # numbers per unit (see :mod:`shiftkit.stats.compare`).
        flat = self.flat.detach().to("cpu", copy=True).numpy()
        rows, units = len(RAW_FIELDS), self.layout.total_units
        raw, hist = flat[: rows * units].reshape(rows, units), flat[rows * units :].reshape(len(self.sites), -1)
        shift = self._shift_host.astype(np.float64)
        positive, beyond = self._flag_masks()
        fields = fields_from_raw(raw, shift, flag_counted(shift, positive, beyond))
        snap = Snapshot(self.layout, torch.from_numpy(fields), torch.from_numpy(hist), torch.from_numpy(shift))
        count = fields[F_COUNT]
        # Next shift: this measurement's mean, so that sums of squares stay centred;
        # not from a unit whose sums overflowed float32 (a mean of 1e28 would make
        # every later (x - K)^2 overflow too).
        with np.errstate(invalid="ignore", over="ignore"):
            ok = (count > 0) & np.isfinite(fields[F_SUM]) & np.isfinite(fields[F_SUMSQ])
            self._set_shift(np.where(ok, fields[F_SUM] / np.maximum(count, 1), shift).astype(np.float32))
        self.flat.zero_()
        return snap

    def _discover(self, unseen: list[int], all_reduce: AllReduce | None) -> None:
        self.discovery_rounds -= 1
        d = self._discovery
        # Rows (all reduced with MAX): units, -units (so MAX gives -min: ranks that
        # disagree are caught), largest finite value, -smallest finite value. A rank that did not see a
        # site contributes the neutral values (-1, -inf, -inf, -inf).
        vec = torch.full((4, len(self.sites)), -math.inf, device=self.device)
        vec[0].fill_(-1.0)
        for i in unseen:
            if i in d.mismatched:
                vec[0, i] = vec[1, i] = math.inf  # a disagreement: dropped on every rank
            elif i in d.sums:
                vec[0, i], vec[1, i] = d.units[i], -d.units[i]
                vec[2, i], vec[3, i] = d.extremes[i][1], -d.extremes[i][0]
        if all_reduce is not None:
            all_reduce(vec, "max")
        c_max, neg_c_min, hi, neg_lo = vec.tolist()  # the one host read of a discovery round
        units, pooled = list(self.layout.units), list(self.layout.pooled)
        los, his = list(self.layout.lo), list(self.layout.hi)
        added = []
        for i in unseen:
            if c_max[i] < 1:
                continue  # nobody saw it this time
            if math.isinf(c_max[i]) or c_max[i] != -neg_c_min[i]:
                self.dropped.add(i)
                self.shape_mismatch.add(i)
                continue
            pooled[i] = c_max[i] > self.max_units
            units[i] = 1 if pooled[i] else int(c_max[i])
            edges = edges_from_range(-neg_lo[i], hi[i], self.bins, self.margin)
            los[i], his[i] = edges.lo, edges.hi
            added.append(i)
        if added:
            offsets = self._offsets_after(units, added)
            self._grow(Layout(tuple(units), tuple(offsets), tuple(pooled), tuple(los), tuple(his)))
            for i in added:
                if i in d.sums:
                    self.raw[:, offsets[i] : offsets[i] + units[i]].add_(d.sums[i])
                    for sample in d.samples[i]:
                        self.hist[i].add_(histogram_counts(sample, self._edges[i]))
        if self.discovery_rounds == 0:
            for i in range(len(self.sites)):
                if self.layout.units[i] == 0 and i not in self.dropped:
                    self.dropped.add(i)
                    self.never_seen.append(self.sites[i].name)

    def widen(self, sites: Sequence[int], factor: int = 2) -> None:
        """Widen the histogram range of ``sites`` ``factor`` times, from the next observation on.

        For a distribution that outgrew its warm-up range (the monitor does this
        when more than ``widen_at`` of a site's mass fell outside). Snapshots
        taken with the old edges are re-binned when compared (exact for a
        doubling). Every rank must widen the same sites at the same measurement.
        """
        if not sites:
            return
        lo, hi = list(self.layout.lo), list(self.layout.hi)
        for i in sites:
            edges = widened(self._edges[i], factor)
            lo[i], hi[i] = edges.lo, edges.hi
        self._set_layout(Layout(self.layout.units, self.layout.offsets, self.layout.pooled, tuple(lo), tuple(hi)))

    def _offsets_after(self, units: list[int], added: list[int]) -> list[int]:
        """Offsets with the ``added`` sites appended after the existing columns, in site order."""
        offsets = list(self.layout.offsets)
        end = self.layout.total_units
        for i in sorted(added):
            offsets[i] = end
            end += units[i]
        return offsets

    # ------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        """Layout, edges, shift and discovery progress (not the partial sums)."""
        return {
            "layout": self.layout.to_dict(),
            "shift": torch.from_numpy(self._shift_host.copy()),
            "dropped": sorted(self.dropped),
            "never_seen": list(self.never_seen),
            "discovery_rounds": self.discovery_rounds,
            "bins": self.bins,
            "sites": [s.name for s in self.sites],
        }

    def load_state_dict(self, state: dict) -> None:
        names = [s.name for s in self.sites]
        if state["sites"] != names or state["bins"] != self.bins:
            raise ValueError(
                "ShiftAccumulator: checkpoint was taken with other sites or bins "
                f"(checkpoint: {len(state['sites'])} sites, {state['bins']} bins; "
                f"now: {len(names)} sites, {self.bins} bins)"
            )
        self.dropped = set(state["dropped"])
        self.never_seen = list(state["never_seen"])
        self.discovery_rounds = state["discovery_rounds"]
        self._set_shift(state["shift"].detach().cpu().float().numpy().copy())
        self._set_layout(Layout.from_dict(state["layout"]))
        self._alloc()

