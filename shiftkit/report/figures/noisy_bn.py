"""C5 (Santurkar et al. Fig. 2 analogue): accuracy and shift of plain / BN / noisy BN / noisy plain."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shiftkit.report.figures.style import (
    STEP_LABEL,
    accuracy_panel,
    mean_sd_line,
    no_data,
    palette,
    save,
    spans_decades,  # fmt: skip
    stat_label,
    subplots,
)


def plot_noisy_bn(acc: pd.DataFrame, shift: pd.DataFrame, path: Path, *, order: list[str], stat: str,
                  dpi: int = 150) -> Path:  # fmt: skip
    """(a) held-out accuracy vs step; (b) the network's shift (``stat`` averaged over the sites all
    variants share) vs step; both mean ± sd over seeds, one colour per variant.

    Args:
        acc: ``label, seed, step, acc``.
        shift: ``label, seed, step, value`` (the per-step site mean).
    """
    colours = palette(order)
    fig, axes = subplots(1, 2, w=5.2)
    ax = axes[0, 0]
    accuracy_panel(ax, acc, order, colours)
    ax = axes[0, 1]
    if len(shift):
        mean_sd_line(ax, shift, "step", "value", "label", colours, order)
        if spans_decades(shift["value"], 1.5):
            ax.set_yscale("log")
        ax.legend(title="variant")
    else:
        no_data(ax, f"no {stat} logged")
    ax.set(xlabel=STEP_LABEL, ylabel=f"{stat_label(stat)}, mean over sites",
           title="(b) shift of the layer inputs")  # fmt: skip
    return save(fig, path, dpi, title="C5: noisy BN vs BN vs no BN (Santurkar et al. Fig. 2)")
