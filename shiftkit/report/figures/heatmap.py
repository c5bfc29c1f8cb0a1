"""Per-layer shift heat map: monitored site x step, colour = a shift statistic, one panel per variant."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd

from shiftkit.report.figures.style import (
    SEQ_CMAP,
    STEP_LABEL,
    cell_edges,
    no_data,
    save,
    spans_decades,
    stat_label,
    subplots,
)

SIGNED_STATS = frozenset({"std_log_ratio", "mean", "p15", "p50", "p85"})
MAX_COLS = 3
BELOW_FLOOR_COLOUR = "white"
"""Cells at or below the noise floor (with ``subtract_floor``): unlike grey (no value)."""


@dataclass(frozen=True)
class ColourScale:
    """The shared colour scale of a heat map.

    ``clipped_at``: the upper limit (for signed values: the limit of ``|value|``) when it comes
    from ``clip_percentile`` and cuts off larger values, else None. ``floor_min``: cells at or
    below 0 get :data:`BELOW_FLOOR_COLOUR` (after subtracting a noise floor)."""

    norm: mpl.colors.Normalize
    cmap: str
    scale: str
    clipped_at: float | None
    floor_min: bool

    @property
    def extend(self) -> str:
        """The colour bar's triangles: below for values under the floor (or, signed, clipped at
        -limit), above for values clipped at the top."""
        low = self.floor_min or (self.scale == "signed" and self.clipped_at is not None)
        high = self.clipped_at is not None
        return {(0, 0): "neither", (1, 0): "min", (0, 1): "max", (1, 1): "both"}[(low, high)]


def heat_values(
    df: pd.DataFrame, stat: str, subtract_floor: bool = False
) -> tuple[pd.Series, bool]:
    """The values drawn, ``(label, site, step) -> mean over seeds``, and whether a noise floor
    was subtracted: with ``subtract_floor`` and a ``{stat}_floor`` column (e.g.
    ``kl_gauss_floor``), each row's value minus its floor, before the mean over seeds."""
    floor_col = f"{stat}_floor"
    used = bool(subtract_floor and floor_col in df.columns and df[floor_col].notna().any())
    value = df["value"] - df[floor_col] if used else df["value"]
    mean = value.groupby([df["label"], df["site"], df["step"]]).mean()
    return mean.rename("value"), used


def colour_scale(
    values, stat: str, *, clip_percentile: float | None = 99.0, floor_subtracted: bool = False
) -> ColourScale:
    """One colour scale for all panels.

    Signed statistics (:data:`SIGNED_STATS`, or any negative value without a floor subtracted):
    diverging, centred on 0, up to the ``clip_percentile``-th percentile of ``|value|``.
    Otherwise sequential, from 0 (or, when the positive values span more than two decades, a log
    scale from the smallest positive value) up to the ``clip_percentile``-th percentile. With a
    noise floor subtracted, values at or below 0 (within the noise) are their own colour rather
    than making the scale signed. ``clip_percentile=None``: up to the largest value.
    """
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]

    def top(x: np.ndarray) -> tuple[float, float | None]:
        if not x.size:
            return 1.0, None
        if clip_percentile is None:
            return float(x.max()), None
        limit = float(np.percentile(x, clip_percentile))
        return limit, (limit if (x > limit).any() else None)

    if not floor_subtracted and (stat in SIGNED_STATS or (finite.size and finite.min() < 0)):
        lim, clipped = top(np.abs(finite))
        lim = lim or 1.0
        return ColourScale(
            mpl.colors.TwoSlopeNorm(0.0, -lim, lim), "vlag", "signed", clipped, False
        )
    pos = finite[finite > 0]
    below = bool(floor_subtracted and (finite <= 0).any())
    vmax, clipped = top(pos)
    if spans_decades(pos) and pos.min() < vmax:
        return ColourScale(mpl.colors.LogNorm(pos.min(), vmax), SEQ_CMAP, "log", clipped, below)
    return ColourScale(mpl.colors.Normalize(0.0, vmax or 1.0), SEQ_CMAP, "linear", clipped, below)


def plot_shift_heatmap(
    df: pd.DataFrame,
    path: Path,
    *,
    stat: str,
    sites: list[str],
    order: list[str],
    title: str,
    dpi: int = 150,
    reference: str | None = None,
    subtract_floor: bool = False,
    clip_percentile: float | None = 99.0,
) -> Path:
    """A heat map per variant label, rows = ``sites`` (input side on top), columns = steps, colour =
    ``stat`` averaged over seeds. All panels share one colour scale (:func:`colour_scale`),
    logarithmic when the positive values span more than two decades (diverging and centred on 0
    for signed statistics), its top clipped at a stated percentile. Grey cells: the site is absent
    from that variant, or the statistic is undefined there (the first measurement has no
    reference).

    Args:
        df: ``label, seed, site, step, value``, and optionally ``{stat}_floor`` (the statistic's
            noise floor per row, e.g. ``kl_gauss_floor`` from ``shift_history.csv``).
        sites: row order.
        order: panel order (labels).
        reference: what each measurement is compared with, named in the title (e.g. "the
            measurement 50 steps earlier").
        subtract_floor: draw each value minus its noise floor (``{stat}_floor``) and say so in
            the title; cells at or below the floor are white. Without that column nothing is
            subtracted and the title says so.
        clip_percentile: the colour scale ends at this percentile of the values (99: a few
            early spikes do not wash out the rest); larger values take the top colour. Stated in
            the colour bar's label. None: no clipping.
    """
    labels = [o for o in order if o in set(df["label"])]
    mean, floor_used = heat_values(df, stat, subtract_floor)
    cs = colour_scale(mean.to_numpy(dtype=float), stat, clip_percentile=clip_percentile,
                      floor_subtracted=floor_used)  # fmt: skip
    cmap = mpl.colormaps[cs.cmap].with_extremes(under=BELOW_FLOOR_COLOUR if cs.floor_min else None)
    ncols = 2 if len(labels) == 4 else min(MAX_COLS, max(1, len(labels)))
    nrows = math.ceil(max(1, len(labels)) / ncols)
    fig, axes = subplots(nrows, ncols, w=5.0, h=0.32 * len(sites) + 1.6, sharey=True)
    # Manual layout: constrained layout costs seconds per figure.
    top = 1 - 1.0 / fig.get_figheight()  # room for the two-line title above the panel titles
    fig.subplots_adjust(left=0.2 if ncols == 1 else 0.12, right=0.88, top=top, bottom=0.12,
                        wspace=0.08, hspace=0.35)  # fmt: skip
    mesh = None
    for k, ax in enumerate(axes.flat):
        if k >= len(labels):
            ax.set_visible(False)
            continue
        label = labels[k]
        part = mean.loc[label].unstack("step").reindex(sites)
        steps = part.columns.to_numpy(dtype=float)
        grid = part.to_numpy(dtype=float)
        if not np.isfinite(grid).any():
            no_data(ax, f"no finite {stat} for {label}")
            ax.set(title=label)
            continue
        below = cs.floor_min & np.isfinite(grid) & (grid <= 0)  # within the noise
        grid = np.where(below | ((cs.scale == "log") & ~(grid > 0)), np.nan, grid)
        ax.set_facecolor("0.88")
        x, y = cell_edges(steps), np.arange(len(sites) + 1)
        mesh = ax.pcolormesh(
            x, y, np.ma.masked_invalid(grid), cmap=cmap, norm=cs.norm, shading="flat"
        )
        if below.any():
            ax.pcolormesh(x, y, np.ma.masked_where(~below, np.zeros_like(grid)), shading="flat",
                          cmap=mpl.colors.ListedColormap([BELOW_FLOOR_COLOUR]))  # fmt: skip
        for row in np.flatnonzero(~np.isfinite(grid).any(axis=1) & ~below.any(axis=1)):
            ax.text(0.5, row + 0.5, "site absent in this variant",
                    transform=ax.get_yaxis_transform(),
                    ha="center", va="center", fontsize="x-small", color="0.35")  # fmt: skip
        ax.set_yticks(np.arange(len(sites)) + 0.5, sites)
        ax.set_ylim(len(sites), 0)
        ax.grid(False)
        ax.set(xlabel=STEP_LABEL, title=label)
    axes[0, 0].set_ylabel("monitored site (input side on top)")
    if mesh is not None:
        cbar = fig.colorbar(mesh, cax=fig.add_axes([0.9, 0.15, 0.012, 0.7]), extend=cs.extend)
        cbar.set_label(colour_bar_label(stat, cs, floor_used, clip_percentile), fontsize="small")
    heading = heatmap_title(title, stat, reference, subtract_floor, floor_used)
    return save(fig, path, dpi, title=heading,
                tight_layout=False)  # fmt: skip


def heatmap_title(title: str, stat: str, reference: str | None, subtract_floor: bool,
                  floor_used: bool) -> str:  # fmt: skip
    """``title`` and a second line naming what is drawn: the statistic, its reference, the floor."""
    what = stat
    if reference:
        what += f" vs {reference}"
    if floor_used:
        what += ", minus its noise floor"
    elif subtract_floor:
        what += f" (no {stat}_floor recorded: noise floor not subtracted)"
    return f"{title}\n{what}, mean over seeds"


def colour_bar_label(stat: str, cs: ColourScale, floor_used: bool, clip_percentile) -> str:
    """The colour bar's label: the statistic and unit, the scale, the clip, the floor colour."""
    label = stat_label(stat) + (" minus noise floor" if floor_used else "")
    label += " (log scale)" if cs.scale == "log" else ""
    if cs.clipped_at is not None:
        what = "|value|" if cs.scale == "signed" else "value"
        label += (
            f"\nscale clipped at the {clip_percentile:g}th percentile of {what} "
            f"({cs.clipped_at:.3g})"
        )
    if cs.floor_min:
        label += "\nwhite: at or below the noise floor"
    return label
