"""Accuracy vs step per variant, mean and spread over seeds (the generic figure of any recipe)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shiftkit.report.figures.style import ACC_LABEL, STEP_LABEL, mean_sd_line, no_data, palette, save, subplots


def plot_accuracy(acc: pd.DataFrame, path: Path, *, order: list[str], title: str, dpi: int = 150) -> Path:
    """Held-out accuracy (%) vs step, one line per variant label: mean, shaded ± 1 sd over seeds.

    Args:
        acc: ``label, seed, step, acc`` (acc a fraction).
    """
    fig, axes = subplots(1, 1, w=6.4, h=4.2)
    ax = axes[0, 0]
    if len(acc):
        mean_sd_line(ax, acc.assign(acc_pct=100 * acc["acc"]), "step", "acc_pct", "label", palette(order), order)
        ax.legend(title=f"mean ± sd, {acc['seed'].nunique()} seeds", fontsize="x-small",
                  ncols=2 if len(order) > 6 else 1)  # fmt: skip
    else:
        no_data(ax, "no accuracy logged")
    ax.set(xlabel=STEP_LABEL, ylabel=ACC_LABEL)
    return save(fig, path, dpi, title=title)
