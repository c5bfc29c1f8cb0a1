"""C6 (Santurkar et al. Fig. 5 analogue): gradient-based ICS per layer, with and without BN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiftkit.report.figures.style import (
    STEP_LABEL,
    figure_legend,
    mean_sd_line,
    no_data,
    palette,
    save,
    spans_decades,  # fmt: skip
    subplots,
)

MAX_LAYERS = 6
ROWS = (("l2", "‖G − G′‖₂ (gradient units)"), ("cos", "cos(G, G′)"))


def pick_layers(layers: list[str], k: int = MAX_LAYERS) -> list[str]:
    """At most ``k`` layers, evenly spaced from first to last (all of them if there are few)."""
    if len(layers) <= k:
        return layers
    return [layers[i] for i in np.linspace(0, len(layers) - 1, k).round().astype(int)]


def plot_grad_ics(
    df: pd.DataFrame, path: Path, *, layers: list[str], order: list[str], dpi: int = 150
) -> Path:
    """A column per layer (input side first); rows ``l2`` (log scale where it spans decades) and
    ``cos``; mean ± sd over seeds per variant label.

    Args:
        df: ``label, seed, layer, step, l2, cos``.
        layers: the layers to draw, in network order (see :func:`pick_layers`).
    """
    colours = palette(order)
    fig, axes = subplots(2, max(1, len(layers)), w=3.6, h=3.0, sharex=True)
    for j, layer in enumerate(layers):
        part = df[df["layer"] == layer]
        for i, (stat, label) in enumerate(ROWS):
            ax = axes[i, j]
            d = part[["label", "seed", "step", stat]].dropna()
            if not len(d):
                no_data(ax)
                continue
            mean_sd_line(ax, d, "step", stat, "label", colours, order, legend=(i == 0 and j == 0))
            if stat == "l2" and spans_decades(d[stat], 1.0):
                ax.set_yscale("log")
            ax.set(xlabel=STEP_LABEL if i == 1 else "", ylabel=label if j == 0 else "",
                   title=f"{layer}" if i == 0 else "")  # fmt: skip
    if layers:
        figure_legend(fig, axes[0, 0], "mean ± sd over seeds")
    return save(
        fig, path, dpi, title="C6: gradient-based ICS per layer (Santurkar et al. Def. 2.1)"
    )
