"""Accuracy vs step per variant, mean and spread over seeds (the generic figure of any recipe)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shiftkit.report.figures.style import accuracy_panel, palette, save, subplots


def plot_accuracy(acc: pd.DataFrame, path: Path, *, order: list[str], title: str, dpi: int = 150) -> Path:
    """Held-out accuracy (%) vs step, one line per variant label: mean, shaded ± 1 sd over seeds.

    Args:
        acc: ``label, seed, step, acc`` (acc a fraction).
    """
    fig, axes = subplots(1, 1, w=6.4, h=4.2)
    accuracy_panel(axes[0, 0], acc, order, palette(order), title=None)
    return save(fig, path, dpi, title=title)
