"""Ioffe & Szegedy (2015) Fig. 1 analogue: accuracy vs step, and the percentile bands of a
last-hidden-layer sigmoid input without and with BN."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D

from shiftkit.report.figures.style import (
    STEP_LABEL,
    accuracy_panel,
    no_data,
    palette,
    save,
    subplots,
)

EDGE_STYLE = (0, (1, 2))


def plot_fig1(
    acc: pd.DataFrame,
    bands: dict[str, pd.DataFrame],
    path: Path,
    *,
    site: str,
    seed: int,
    order: list[str],
    edges: dict[str, tuple[float, float] | None] | None = None,
    dpi: int = 150,
) -> Path:
    """Three panels: (a) held-out accuracy vs step, mean and sd over seeds, per variant label;
    (b, c, ...) the 15th/50th/85th percentiles of ``site``'s input over training, one panel per
    label of ``bands`` (``step, p15, p50, p85`` of seed ``seed``).

    Args:
        acc: ``label, seed, step, acc`` (acc a fraction; drawn in percent).
        bands: label -> percentile frame, in panel order (no BN first, as in the paper).
        path: the PNG to write.
        site: the monitored site the bands are of (named in the titles).
        seed: the seed the bands come from.
        order: label order for colours and legend.
        edges: label -> the site's fixed histogram edges ``(lo, hi)``, drawn as dotted lines: a
            percentile read from the histogram cannot leave them (it is clamped).
    """
    colours = palette(order)
    fig, axes = subplots(1, 1 + len(bands))
    for ax in axes[0, 2:]:  # the percentile panels share one y scale: "stays put" is visible
        ax.sharey(axes[0, 1])
    ax = axes[0, 0]
    accuracy_panel(ax, acc, order, colours)
    letters = "bcdefgh"
    for i, (label, band) in enumerate(bands.items()):
        ax = axes[0, 1 + i]
        if band is None or not len(band):
            no_data(ax, f"no percentiles for {label}")
        else:
            c = colours.get(label)
            ax.fill_between(band["step"], band["p15"], band["p85"], color=c, alpha=0.2, lw=0)
            ax.plot(band["step"], band["p85"], color=c, lw=1, ls="--")
            ax.plot(band["step"], band["p50"], color=c, lw=2)
            ax.plot(band["step"], band["p15"], color=c, lw=1, ls=":")
            for y in (edges or {}).get(label) or ():
                ax.axhline(y, color="0.3", lw=0.8, ls=EDGE_STYLE)
        ax.set(xlabel=STEP_LABEL, ylabel=f"input to {site} (pre-activation)" if i == 0 else "",
               title=f"({letters[i]}) {label}: input percentiles, seed {seed}")  # fmt: skip
    # One key for the percentile panels, outside them (inside it would sit on the bands).
    keys = [Line2D([], [], color="0.2", lw=1, ls="--", label="85th"),
            Line2D([], [], color="0.2", lw=2, label="50th (median)"),
            Line2D([], [], color="0.2", lw=1, ls=":", label="15th")]  # fmt: skip
    if any((edges or {}).values()):
        keys.append(
            Line2D(
                [],
                [],
                color="0.3",
                lw=0.8,
                ls=EDGE_STYLE,
                label="histogram edges:\npercentiles clamp here",
            )
        )
    axes[0, -1].legend(
        handles=keys,
        title="percentile",
        loc="center left",
        bbox_to_anchor=(1.02, 0.5),
        frameon=False,
    )
    return save(fig, path, dpi, title="Ioffe & Szegedy Fig. 1 analogue")
