"""The "colorful dimension" plot (fastai): per layer, the log-histogram of its input against step.

Each column of an image is one measurement's fixed-edge histogram of the site's input, as the
fraction of values per bin on a log colour scale, so that a distribution collapsing to zero, or
piling up in the tails (saturation), shows at a glance. The edges are fixed per site (chosen once
by the monitor), so every step is comparable; values outside them fall into the under/overflow
bins, drawn as the hatched strips below and above the range.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import numpy as np

from shiftkit.report.figures.style import SEQ_CMAP, STEP_LABEL, cell_edges, save, subplots

FLOOR = 1e-5
"""Smallest fraction shown; emptier bins get the bottom colour."""
MAX_SITES = 6
OUTSIDE_ROWS = 3
"""Height of each under/overflow strip, in bins."""


def plot_colorful(histograms: dict[str, dict[str, np.ndarray]], path: Path, *, sites: list[str],
                  seed: int, title: str, dpi: int = 150) -> Path:  # fmt: skip
    """One row per variant label, one column per site.

    Args:
        histograms: label -> the run's ``shift_histograms.npz`` arrays (``steps``, ``counts``
            (T, S, bins + 2), ``sites``, ``lo``, ``hi``).
        sites: the sites to draw (at most :data:`MAX_SITES` are used), input side first.
        seed: the seed the histograms come from (named in the title).
    """
    sites = sites[:MAX_SITES]
    labels = list(histograms)
    fig, axes = subplots(len(labels), max(1, len(sites)), w=2.9, h=2.4)
    # Manual layout: constrained layout costs seconds per figure with a dozen panels.
    fig.subplots_adjust(
        left=0.08,
        right=0.9,
        bottom=0.16 if len(labels) == 1 else 0.1,
        top=1 - 0.75 / fig.get_figheight(),
        wspace=0.3,
        hspace=0.25,
    )
    norm = mpl.colors.LogNorm(FLOOR, 1.0)
    mesh = None
    for i, label in enumerate(labels):
        h = histograms[label]
        names = [str(s) for s in h["sites"]]
        for j, site in enumerate(sites):
            ax = axes[i, j]
            ax.grid(False)
            if site not in names:
                ax.text(
                    0.5,
                    0.5,
                    "site absent",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                    color="0.4",
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                mesh = _draw_site(ax, h, names.index(site), norm)
            if i == 0:
                ax.set_title(site, fontsize="small")
            if j == 0:
                ax.set_ylabel(f"{label}\ninput value", fontsize="small")
            ax.tick_params(labelsize="x-small")
    fig.supxlabel(STEP_LABEL, fontsize="small")
    if mesh is not None:
        cbar = fig.colorbar(mesh, cax=fig.add_axes([0.92, 0.15, 0.012, 0.7]))
        cbar.set_label("fraction of values in the bin (log scale)")
    return save(fig, path, dpi, title=f"{title} (seed {seed})", tight_layout=False)


def _draw_site(ax, h: dict[str, np.ndarray], s: int, norm) -> mpl.collections.QuadMesh:
    counts = np.asarray(
        h["counts"][:, s, :], dtype=float
    )  # (T, bins + 2): under, in-range..., over
    total = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    lo, hi = float(h["lo"][s]), float(h["hi"][s])
    bins = counts.shape[1] - 2
    width = (hi - lo) / bins if bins and math.isfinite(hi - lo) and hi > lo else 1.0
    # Under/overflow strips OUTSIDE_ROWS bins high, each shown as one cell.
    y = np.concatenate(
        [[lo - OUTSIDE_ROWS * width], np.linspace(lo, hi, bins + 1), [hi + OUTSIDE_ROWS * width]]
    )
    steps = np.asarray(h["steps"], dtype=float)
    image = np.clip(frac.T, FLOOR, 1.0)
    mesh = ax.pcolormesh(cell_edges(steps), y, image, cmap=SEQ_CMAP, norm=norm, shading="flat")
    for y0, y1 in ((y[0], lo), (hi, y[-1])):
        ax.fill_between(
            cell_edges(steps)[[0, -1]],
            y0,
            y1,
            facecolor="none",
            hatch="///",
            edgecolor="white",
            lw=0,
        )
    if lo < 0 < hi:
        ax.axhline(0.0, color="white", lw=0.8, ls="--", alpha=0.8)
    ax.set_ylim(y[0], y[-1])
    return mesh
