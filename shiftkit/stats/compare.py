"""Every per-site statistic of a snapshot, and its shift against a reference, at once.

:func:`site_statistics` works on all sites in one vectorized pass over the
packed per-unit columns (segment sums by site), in float64, on the snapshot's
device, and returns one ``(S,)`` tensor per statistic — so the caller can stack
them and read everything back to the host in a single transfer.

Definitions (B = current snapshot, A = reference; per unit unless noted):

* ``mean``, ``std``: pooled over all units and elements of the site.
* ``kl_gauss``: mean over units of KL(N(mu_B, var_B) || N(mu_A, var_A)).
* ``kl_gauss_floor``: the same KL between the two halves of B's batch, scaled to
  the sizes of A and B (:func:`~shiftkit.stats.divergence.gaussian_kl_noise_scale`):
  what two samples of one unchanging distribution would give. Shift "above
  noise" is ``kl_gauss - kl_gauss_floor``.
* ``mean_drift`` / ``mean_drift_max``: mean / max over units of ``|mu_B - mu_A| / sigma_A``.
* ``std_log_ratio``: mean over units of ``log(sigma_B / sigma_A)``.
* ``kl_hist`` / ``js_hist``: between the pooled fixed-edge histograms (smoothed).
* ``p15``/``p50``/``p85`` (or the requested levels): from B's histogram;
  ``hist_outside``: the share of B's histogram in the underflow/overflow bins
  (percentiles there are bounds; the monitor widens such a site's range).
* ``sat_frac``: fraction of elements beyond the saturation threshold;
  ``dead_frac``: fraction of elements <= 0; ``dead_units``: fraction of units
  with no element > 0; ``nonfinite``: count of NaN/±Inf elements.

Finite or NaN: a statistic is never ±Inf. Where float32 sums overflowed
(finite inputs beyond about 1e19, whose squares are Inf in float32; see
:func:`overflowed`), the statistics that depend on them are NaN.

Variance floor: per site, variances below ``var_floor_rel`` (1e-2) times the
larger of A's and B's mean per-unit variance are raised to it (plus 1e-30).
Units that are nearly constant relative to their layer — always-zero border
pixels, saturated sigmoids, dead ReLUs — would otherwise dominate the mean over
units with unbounded KLs from noise-like relative fluctuations (measured: the
pixel layer of an MNIST MLP gave a mean KL of ~2900 with a 1e-6 floor and 0.45
with 1e-2). The statistics do not change when a layer's activations are
rescaled. A layer whose units are *all* nearly constant keeps large values:
its distribution really is a narrow spike that moves.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
from torch import Tensor

from shiftkit.records.names import DEFAULT_QUANTILES, DIVERGENCE_STATS, percentile_names
from shiftkit.stats.accumulator import (
    F_COUNT,
    F_COUNT_H,
    F_FLAG,
    F_NONFINITE,
    F_SUM,
    F_SUM_H,
    F_SUMSQ,
    F_SUMSQ_H,
    SiteSpec,
    Snapshot,
)
from shiftkit.stats.divergence import (
    HIST_SMOOTHING,
    gaussian_kl,
    gaussian_kl_noise_scale,
    histogram_js,
    histogram_kl,
    mean_drift,
    std_log_ratio,
)
from shiftkit.stats.histogram import histogram_percentiles
from shiftkit.stats.moments import shifted_variance


class _Segments:
    """Sums and maxima of per-unit columns by site, many columns per call.

    One ``index_add_`` over a stack of rows replaces one per statistic: the
    whole comparison runs in a fixed, small number of kernels (the finalize
    step measured ~420 kernels with one segment sum per statistic).
    """

    def __init__(self, site_of_unit: Tensor, num_sites: int):
        self.idx = site_of_unit
        self.num_sites = num_sites

    def sums(self, *rows: Tensor) -> Tensor:
        """``(len(rows), S)``: each row summed over the units of each site."""
        stacked = torch.stack([r.double() for r in rows])
        out = stacked.new_zeros(len(rows), self.num_sites)
        return out.index_add_(1, self.idx, stacked)

    def max(self, v: Tensor, valid: Tensor) -> Tensor:
        out = torch.full((self.num_sites,), -math.inf, dtype=torch.float64, device=v.device)
        out.scatter_reduce_(0, self.idx, torch.where(valid, v, -math.inf), reduce="amax")
        return torch.where(torch.isinf(out), math.nan, out)

    def expand(self, per_site: Tensor) -> Tensor:
        return per_site[self.idx]


@functools.lru_cache(maxsize=16)
def _site_masks(sites: tuple[SiteSpec, ...], device: str) -> tuple[Tensor, Tensor]:
    """Which sites are rectifier inputs and which saturating-nonlinearity inputs (cached)."""
    rectifier = torch.tensor([s.rectifier for s in sites], dtype=torch.bool, device=device)
    saturating = torch.tensor([s.saturation_threshold is not None for s in sites], dtype=torch.bool, device=device)
    return rectifier, saturating


def _moments(snap: Snapshot) -> tuple[Tensor, Tensor, Tensor]:
    f = snap.fields
    n = f[F_COUNT]
    return n, f[F_SUM] / n, shifted_variance(n, f[F_SUM], f[F_SUMSQ], snap.shift)


def site_statistics(
    cur: Snapshot,
    ref: Snapshot | None = None,
    *,
    sites: Sequence[SiteSpec] = (),
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
    var_floor_rel: float = 1e-2,
    smoothing: float = HIST_SMOOTHING,
    noise_floor: bool = True,
) -> dict[str, Tensor]:
    """Per-site statistics of ``cur`` and, when ``ref`` is given, its shift from ``ref``.

    ``sites`` tells which sites are rectifier inputs (``dead_frac``,
    ``dead_units``) and which are saturating-nonlinearity inputs (``sat_frac``).

    Returns a dict ``name -> (S,) float64 tensor`` (NaN where a statistic does
    not apply or a site has no data); the names are those of the module
    docstring (spelled by :mod:`shiftkit.records.names`). Divergence statistics are NaN when ``ref`` is None;
    ``kl_gauss_floor`` is present only when ``noise_floor``.
    """
    layout = cur.layout
    num_sites = cur.hist.shape[0]
    device = cur.fields.device
    seg = _Segments(layout.site_of_unit(device), num_sites)
    f = cur.fields
    n, mu, var = _moments(cur)
    has = n > 0
    hasf = has.double()
    zero = torch.zeros((), dtype=torch.float64, device=device)
    if ref is not None:
        ref = ref.extended_to(layout)
        n_a, mu_a, var_a = _moments(ref)
        # Overflowed (non-finite) variances stay out of the floor: an Inf floor
        # would flatten every unit of the site to the same variance.
        ok_a = (n_a > 0) & torch.isfinite(var_a)
        has_a, var_a0 = ok_a.double(), torch.where(ok_a, var_a, zero)
    else:
        has_a = var_a0 = torch.zeros_like(n)
    ok = has & torch.isfinite(var)
    # Stage 1: everything that needs no per-site number yet.
    (n_site, sum_site, nonfinite, flag, never_fired, units_with_data, var_a_sum, units_a, var_sum, units_var) = seg.sums(
        n,
        torch.where(has, f[F_SUM], zero),
        f[F_NONFINITE],
        f[F_FLAG],
        ((f[F_FLAG] == 0) & has).double(),
        hasf,
        var_a0,
        has_a,
        torch.where(ok, var, zero),
        ok.double(),
    )
    mean_site = sum_site / n_site
    out: dict[str, Tensor] = {"mean": mean_site}
    out["nonfinite"] = torch.where(n_site + nonfinite > 0, nonfinite, math.nan)
    lo, hi = layout.edge_tensors(device)
    pct = histogram_percentiles(cur.hist, lo, hi, quantiles)
    for j, name in enumerate(percentile_names(quantiles)):
        out[name] = pct[:, j]
    hist_total = cur.hist.sum(-1)
    out["hist_outside"] = torch.where(hist_total > 0, (cur.hist[:, 0] + cur.hist[:, -1]) / hist_total, math.nan)
    if len(sites):
        rectifier, saturating = _site_masks(tuple(sites), str(device))
        flag_frac = flag / n_site
        out["sat_frac"] = torch.where(saturating, flag_frac, math.nan)
        out["dead_frac"] = torch.where(rectifier, 1.0 - flag_frac, math.nan)
        out["dead_units"] = torch.where(rectifier, never_fired / units_with_data, math.nan)

    spread = torch.where(has, n * (var + (mu - seg.expand(mean_site)).square()), zero)
    if ref is None:
        (spread_site,) = seg.sums(spread)
        out["std"] = (spread_site / n_site).sqrt()
        nan = torch.full((num_sites,), math.nan, dtype=torch.float64, device=device)
        out.update({name: nan for name in DIVERGENCE_STATS if noise_floor or name != "kl_gauss_floor"})
        return _finite_or_nan(out)

    # Stage 2: the divergences, with the per-site variance floor.
    both = has & (n_a > 0)
    typical = torch.maximum(var_a_sum / units_a, var_sum / units_var).nan_to_num(0.0)
    floor = seg.expand(var_floor_rel * typical + 1e-30)
    kl = gaussian_kl(mu, var, mu_a, var_a, floor)
    drift = mean_drift(mu, mu_a, var_a, floor)
    slr = std_log_ratio(var, var_a, floor)
    rows = [spread, torch.where(both, kl, zero), torch.where(both, drift, zero), torch.where(both, slr, zero), both.double()]
    if noise_floor:
        kl_halves, halves_ok = _split_half_kl(cur, n_a, floor, both)
        rows += [torch.where(halves_ok, kl_halves, zero), halves_ok.double()]
    summed = seg.sums(*rows)
    out["std"] = (summed[0] / n_site).sqrt()
    out["kl_gauss"], out["mean_drift"], out["std_log_ratio"] = summed[1:4] / summed[4]
    out["mean_drift_max"] = seg.max(drift, both)
    hist_ok = (cur.hist.sum(-1) > 0) & (ref.hist.sum(-1) > 0)
    out["kl_hist"] = torch.where(hist_ok, histogram_kl(cur.hist, ref.hist, smoothing), math.nan)
    out["js_hist"] = torch.where(hist_ok, histogram_js(cur.hist, ref.hist, smoothing), math.nan)
    if noise_floor:
        out["kl_gauss_floor"] = summed[5] / summed[6]
    return _finite_or_nan(out)


def _finite_or_nan(out: dict[str, Tensor]) -> dict[str, Tensor]:
    # One check over all statistics stacked (per statistic it was ~100 kernels).
    names = list(out)
    stacked = torch.stack([out[n] for n in names])
    stacked = torch.where(torch.isfinite(stacked), stacked, math.nan)
    return dict(zip(names, stacked.unbind(0)))


def overflowed(cur: Snapshot, ref: Snapshot | None = None) -> Tensor:
    """``(S,)`` float64: 1 where a site's float32 sums overflowed in ``cur`` (or in ``ref``), else 0.

    Overflow: a unit with finite elements whose sum or sum of squares is not
    finite — its values were beyond about 1e19, so their float32 squares are
    Inf. Its moments and divergences are then NaN (see the module docstring).
    """
    num_sites = cur.hist.shape[0]
    seg = _Segments(cur.layout.site_of_unit(cur.fields.device), num_sites)
    bad = _overflowed_units(cur)
    if ref is not None:
        bad = bad | _overflowed_units(ref.extended_to(cur.layout))
    return (seg.sums(bad)[0] > 0).double()


def _overflowed_units(snap: Snapshot) -> Tensor:
    f = snap.fields
    return (f[F_COUNT] > 0) & ~(torch.isfinite(f[F_SUM]) & torch.isfinite(f[F_SUMSQ]))


def _split_half_kl(cur: Snapshot, n_a: Tensor, floor: Tensor, both: Tensor) -> tuple[Tensor, Tensor]:
    """Per unit: the KL between the batch halves, scaled to a comparison of A and B; and where it is defined."""
    f = cur.fields
    n1 = f[F_COUNT_H]
    n2 = f[F_COUNT] - n1
    var1 = shifted_variance(n1, f[F_SUM_H], f[F_SUMSQ_H], cur.shift)
    var2 = shifted_variance(n2, f[F_SUM] - f[F_SUM_H], f[F_SUMSQ] - f[F_SUMSQ_H], cur.shift)
    kl_halves = gaussian_kl(
        (f[F_SUM] - f[F_SUM_H]) / n2, var2, f[F_SUM_H] / n1, var1, floor
    ) * gaussian_kl_noise_scale(n_a, f[F_COUNT], n1, n2)
    return kl_halves, both & (n1 > 0) & (n2 > 0)
