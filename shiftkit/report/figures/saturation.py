"""C4: accuracy and per-layer saturation of a deep sigmoid network, with and without BN."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from shiftkit.report.figures.style import accuracy_panel, no_data, palette, save, subplots


def plot_saturation(acc: pd.DataFrame, sat: pd.DataFrame, path: Path, *, order: list[str],
                    threshold_note: str, dpi: int = 150) -> Path:  # fmt: skip
    """(a) held-out accuracy vs step; (b) late saturation fraction per layer (bars: mean over
    seeds, whiskers: sd).

    Args:
        acc: ``label, seed, step, acc``.
        sat: ``label, seed, layer, sat_frac`` (``layer`` an index from the input side).
        order: label order.
        threshold_note: what "saturated" means, for the y label (e.g. "|x| > 4").
    """
    colours = palette(order)
    fig, axes = subplots(1, 2, w=5.2)
    ax = axes[0, 0]
    accuracy_panel(ax, acc, order, colours)
    ax = axes[0, 1]
    if len(sat):
        sns.barplot(data=sat.assign(pct=100 * sat["sat_frac"]), x="layer", y="pct", hue="label",
                    hue_order=[o for o in order if o in set(sat["label"])], palette=colours,
                    errorbar="sd", ax=ax)  # fmt: skip
        ax.legend(title="mean ± sd over seeds")
    else:
        no_data(ax, "no saturation fractions")
    ax.set(xlabel="sigmoid layer (1 = nearest the input)", ylabel="saturated inputs (%)",
           title=f"(b) saturation per layer, {threshold_note}")  # fmt: skip
    return save(fig, path, dpi, title="C4: deep sigmoid network, with and without BN")
