"""The "colorful dimension" plot (fastai): per layer, the log-histogram of its input against step.

Each column of an image is one measurement's fixed-edge histogram of the site's input, as the
fraction of values per bin on a log colour scale, so that a distribution collapsing to zero, or
piling up in the tails (saturation), shows at a glance. The edges are fixed per site and run
(chosen once by the monitor), so every step is comparable; values outside them fall into the
under/overflow bins, drawn as the hatched strips below and above the range. All variants of one
site share one y range (the union of their edges), so the rows of a column compare directly;
grey is beyond a run's edges (no data there).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

import matplotlib as mpl
import numpy as np

from shiftkit.report.figures.grad_ics import pick_layers
from shiftkit.report.figures.style import SEQ_CMAP, STEP_LABEL, cell_edges, no_data, save, subplots

FLOOR = 1e-5
"""Smallest fraction shown; emptier bins get the bottom colour."""
OUTSIDE_ROWS = 3
"""Height of each under/overflow strip, in bins."""
THRESHOLD_STYLE = {"color": "#d55e00", "lw": 1.1, "ls": "-."}
"""The saturation threshold lines (vermillion dash-dot: unlike the white dashed zero line)."""
BEYOND_COLOUR = "0.86"
"""Background where a run has no bins (beyond its edges and strips)."""


def plot_colorful(
    histograms: dict[str, dict[str, np.ndarray]],
    path: Path,
    *,
    sites: list[str],
    seed: int,
    title: str,
    dpi: int = 150,
    max_sites: int | None = None,
    saturation: float | None = None,
    saturating_sites: Collection[str] | None = None,
) -> Path:
    """One row per variant label, one column per site.

    Sites that no variant has a histogram of are dropped (no empty columns); a variant without a
    site says so in its panel. Each column has one y range for all its rows (:func:`site_ranges`).

    Args:
        histograms: label -> the run's ``shift_histograms.npz`` arrays (``steps``, ``counts``
            (T, S, bins + 2), ``sites``, ``lo``, ``hi``).
        sites: the sites to draw, input side first.
        seed: the seed the histograms come from (named in the title).
        max_sites: draw at most this many sites, evenly spaced from first to last (the first and
            last always among them); None: all of them.
        saturation: if given, the saturation threshold ``|x|`` (4 for a sigmoid input), drawn as
            lines at ``±saturation`` on the saturating sites; their y range includes it.
        saturating_sites: the sites the threshold applies to (the sigmoid/tanh inputs); None: all.
    """
    labels = list(histograms)
    drawn = [s for s in sites if any(_site_index(histograms[lab], s) is not None for lab in labels)]
    if max_sites is not None:
        drawn = pick_layers(drawn, max_sites)
    marked = {
        s
        for s in drawn
        if saturation is not None and (saturating_sites is None or s in saturating_sites)
    }
    ranges = site_ranges(histograms, drawn, {s: saturation for s in marked})
    ncols = max(1, len(drawn))
    # Narrower panels when there are many sites: all of them fit on one readable row.
    fig, axes = subplots(len(labels), ncols, w=2.9 if ncols <= 6 else max(1.9, 17.0 / ncols), h=2.4)
    # Manual layout: constrained layout costs seconds per figure with a dozen panels.
    fig.subplots_adjust(left=0.08 if ncols > 1 else 0.25, right=0.9,
                        bottom=0.85 / fig.get_figheight(), top=1 - 0.75 / fig.get_figheight(),
                        wspace=0.3, hspace=0.25)  # fmt: skip
    norm = mpl.colors.LogNorm(FLOOR, 1.0)
    mesh = None
    if not drawn:
        no_data(axes[0, 0], "no histograms recorded")
    for i, label in enumerate(labels):
        h = histograms[label]
        for j, site in enumerate(drawn):
            ax = axes[i, j]
            ax.grid(False)
            s = _site_index(h, site)
            if s is None:
                no_data(ax, "site absent\nin this variant")
            else:
                ax.set_facecolor(BEYOND_COLOUR)
                mesh = _draw_site(ax, h, s, norm)
                ax.set_ylim(*ranges[site])
                if site in marked:
                    for y in (-saturation, saturation):
                        ax.axhline(y, **THRESHOLD_STYLE)
            if i == 0:
                ax.set_title(site, fontsize="small")
            if j == 0:
                ax.set_ylabel(f"{label}\ninput value", fontsize="small")
            ax.tick_params(labelsize="x-small")
    key = "hatched: values beyond the run's edges (under/overflow); grey: no bins; white dashed: 0"
    if marked:
        key += f"; vermillion dash-dot: saturation threshold ±{saturation:g}"
    fig.supxlabel(f"{STEP_LABEL}\n{key}", fontsize="small")
    if mesh is not None:
        cbar = fig.colorbar(mesh, cax=fig.add_axes([0.92, 0.15, 0.012, 0.7]))
        cbar.set_label("fraction of values in the bin (log scale)")
    return save(fig, path, dpi, title=f"{title} (seed {seed})", tight_layout=False)


def site_ranges(
    histograms: dict[str, dict[str, np.ndarray]],
    sites: list[str],
    thresholds: dict[str, float | None] | None = None,
) -> dict[str, tuple[float, float]]:
    """Per site, the y range shared by all variants: the union over the variants that have a
    histogram of it of ``[lo, hi]`` widened by the under/overflow strips (:data:`OUTSIDE_ROWS`
    bins each), and by ``±threshold`` (5% more) when ``thresholds`` names one for the site.

    A site no variant has a finite range for gets ``(-1, 1)``.
    """
    out = {}
    for site in sites:
        lows, highs = [], []
        for h in histograms.values():
            s = _site_index(h, site)
            if s is None:
                continue
            lo, hi, width = _edges(h, s)
            lows.append(lo - OUTSIDE_ROWS * width)
            highs.append(hi + OUTSIDE_ROWS * width)
        t = (thresholds or {}).get(site)
        if t is not None:
            lows.append(-1.05 * t)
            highs.append(1.05 * t)
        out[site] = (min(lows), max(highs)) if lows else (-1.0, 1.0)
    return out


def _site_index(h: dict[str, np.ndarray], site: str) -> int | None:
    """The site's column in the run's histograms; None when absent, never measured (no counts)
    or without finite edges."""
    names = [str(s) for s in h["sites"]]
    if site not in names:
        return None
    s = names.index(site)
    lo, hi = float(h["lo"][s]), float(h["hi"][s])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        return None
    counts = np.asarray(h["counts"][:, s, :], dtype=float)
    return s if counts.size and np.nansum(counts) > 0 else None


def _edges(h: dict[str, np.ndarray], s: int) -> tuple[float, float, float]:
    lo, hi = float(h["lo"][s]), float(h["hi"][s])
    bins = np.shape(h["counts"])[2] - 2
    return lo, hi, (hi - lo) / bins


def _draw_site(ax, h: dict[str, np.ndarray], s: int, norm) -> mpl.collections.QuadMesh:
    counts = np.asarray(h["counts"][:, s, :], dtype=float)  # (T, bins + 2): under, in range, over
    total = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    lo, hi, width = _edges(h, s)
    bins = counts.shape[1] - 2
    # Under/overflow strips OUTSIDE_ROWS bins high, each shown as one cell.
    y = np.concatenate(
        [[lo - OUTSIDE_ROWS * width], np.linspace(lo, hi, bins + 1), [hi + OUTSIDE_ROWS * width]]
    )
    steps = np.asarray(h["steps"], dtype=float)
    image = np.clip(frac.T, FLOOR, 1.0)
    x = cell_edges(steps)
    mesh = ax.pcolormesh(x, y, image, cmap=SEQ_CMAP, norm=norm, shading="flat")
    for y0, y1 in ((y[0], lo), (hi, y[-1])):
        ax.fill_between(x[[0, -1]], y0, y1, facecolor="none", hatch="///", edgecolor="white", lw=0)
    if lo < 0 < hi:
        ax.axhline(0.0, color="white", lw=0.8, ls="--", alpha=0.8)
    ax.set_xlim(x[0], x[-1])
    return mesh
