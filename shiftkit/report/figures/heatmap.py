"""Per-layer shift heat map: monitored site x step, colour = a shift statistic, one panel per variant."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd

from shiftkit.report.figures.style import (
    SEQ_CMAP,
    STEP_LABEL,
    cell_edges,
    save,
    spans_decades,
    stat_label,
    subplots,
)

SIGNED_STATS = frozenset({"std_log_ratio", "mean", "p15", "p50", "p85"})
MAX_COLS = 3


def plot_shift_heatmap(df: pd.DataFrame, path: Path, *, stat: str, sites: list[str], order: list[str],
                       title: str, dpi: int = 150) -> Path:  # fmt: skip
    """A heat map per variant label, rows = ``sites`` (input side on top), columns = steps, colour =
    ``stat`` averaged over seeds. All panels share one colour scale, logarithmic when the positive
    values span more than two decades (diverging and centred on 0 for signed statistics).
    Grey cells: the site is absent from that variant, or the statistic is undefined there (the first
    measurement has no reference).

    Args:
        df: ``label, seed, site, step, value``.
        sites: row order.
        order: panel order (labels).
    """
    labels = [o for o in order if o in set(df["label"])]
    mean = df.groupby(["label", "site", "step"])["value"].mean()
    values = mean.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    signed = stat in SIGNED_STATS or (finite.size and finite.min() < 0)
    if signed:
        lim = float(np.abs(finite).max()) if finite.size else 1.0
        norm, cmap, scale = mpl.colors.TwoSlopeNorm(0.0, -lim or -1, lim or 1), "vlag", "linear"
    elif spans_decades(finite):
        pos = finite[finite > 0]
        norm, cmap, scale = mpl.colors.LogNorm(pos.min(), pos.max()), SEQ_CMAP, "log"
    else:
        vmax = float(finite.max()) if finite.size else 1.0
        norm, cmap, scale = (
            mpl.colors.Normalize(0.0 if finite.size and finite.min() >= 0 else None, vmax or 1.0),
            SEQ_CMAP,
            "linear",
        )
    ncols = 2 if len(labels) == 4 else min(MAX_COLS, max(1, len(labels)))
    nrows = math.ceil(max(1, len(labels)) / ncols)
    fig, axes = subplots(nrows, ncols, w=5.0, h=0.32 * len(sites) + 1.6, sharey=True)
    # Manual layout: constrained layout costs seconds per figure.
    top = 1 - 0.75 / fig.get_figheight()  # room for the title above the panel titles
    fig.subplots_adjust(
        left=0.2 if ncols == 1 else 0.12, right=0.88, top=top, bottom=0.12, wspace=0.08, hspace=0.35
    )
    mesh = None
    for k, ax in enumerate(axes.flat):
        if k >= len(labels):
            ax.set_visible(False)
            continue
        label = labels[k]
        part = mean.loc[label].unstack("step").reindex(sites)
        steps = part.columns.to_numpy(dtype=float)
        grid = part.to_numpy(dtype=float)
        if scale == "log":
            grid = np.where(grid > 0, grid, np.nan)
        ax.set_facecolor("0.88")
        mesh = ax.pcolormesh(cell_edges(steps), np.arange(len(sites) + 1), np.ma.masked_invalid(grid),
                             cmap=cmap, norm=norm, shading="flat")  # fmt: skip
        for row in np.flatnonzero(~np.isfinite(grid).any(axis=1)):
            ax.text(0.5, row + 0.5, "site absent in this variant", transform=ax.get_yaxis_transform(),
                    ha="center", va="center", fontsize="x-small", color="0.35")  # fmt: skip
        ax.set_yticks(np.arange(len(sites)) + 0.5, sites)
        ax.set_ylim(len(sites), 0)
        ax.grid(False)
        ax.set(xlabel=STEP_LABEL, title=label)
    axes[0, 0].set_ylabel("monitored site (input side on top)")
    if mesh is not None:
        cbar = fig.colorbar(mesh, cax=fig.add_axes([0.9, 0.15, 0.012, 0.7]))
        cbar.set_label(
            stat_label(stat) + (" (log scale)" if scale == "log" else "") + ", mean over seeds"
        )
    return save(fig, path, dpi, title=title, tight_layout=False)
