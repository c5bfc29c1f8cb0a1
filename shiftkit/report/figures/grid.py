"""Outcome grids (C2 learning-rate multipliers, C3 init scales): final accuracy and steps to the
target per cell, mean over seeds, with diverged seeds marked."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from shiftkit.report.figures.style import SEQ_CMAP, save, subplots

CELL_COLUMNS = ("row", "col", "n", "n_diverged", "acc_mean", "acc_sd", "steps_mean", "n_reached")


def plot_outcome_grid(
    cells: pd.DataFrame,
    path: Path,
    *,
    row_order: list[str],
    col_label: str,
    target: float,
    title: str,
    dpi: int = 150,
) -> Path:
    """Two annotated grids, rows = variant family (no BN / BN), columns = the varied knob.

    Left: final accuracy (mean over the seeds that did not diverge). Right: steps to ``target``
    (mean over seeds; ``≥`` when some seed never reached it). A cell where every seed diverged is
    hatched grey and marked ``× k/n diverged``; a cell where some did says ``k/n div.``.

    Args:
        cells: one row per cell with :data:`CELL_COLUMNS` (``col`` numeric, e.g. the multiplier).
        row_order: the row labels top to bottom.
        col_label: x-axis label (with units, e.g. "learning-rate multiplier (x base LR)").
        target: target accuracy (fraction), named in the right panel's title.
    """
    cols = sorted(cells["col"].unique())
    rows = [r for r in row_order if r in set(cells["row"])]
    fig, axes = subplots(1, 2, w=max(4.2, 1.35 * len(cols) + 1.6), h=0.9 * len(rows) + 1.9)
    panels = (
        ("acc_mean", "final accuracy\n(mean over seeds that did not diverge)", "final accuracy (%)", SEQ_CMAP, _acc_text),
        ("steps_mean", f"steps to {100 * target:g}% accuracy\n(≥: some seed never reached it)", "steps", f"{SEQ_CMAP}_r",
         _steps_text),
    )
    for ax, (col, name, unit, cmap, text) in zip(axes[0], panels):
        grid = np.full((len(rows), len(cols)), np.nan)
        notes = [["" for _ in cols] for _ in rows]
        all_div = np.zeros_like(grid, dtype=bool)
        for _, c in cells.iterrows():
            i, j = rows.index(c["row"]), cols.index(c["col"])
            value = c[col] * (100 if col == "acc_mean" else 1)
            all_div[i, j] = c["n_diverged"] == c["n"]
            grid[i, j] = np.nan if all_div[i, j] else value
            notes[i][j] = text(c)
        finite = grid[np.isfinite(grid)]
        vmin, vmax = (finite.min(), finite.max()) if finite.size else (0, 1)
        if vmin == vmax:
            vmin, vmax = vmin - 1, vmax + 1
        norm = mpl.colors.Normalize(vmin, vmax)
        cm = mpl.colormaps[cmap]
        mesh = ax.imshow(np.ma.masked_invalid(grid), cmap=cm, norm=norm, aspect="auto")
        for i in range(len(rows)):
            for j in range(len(cols)):
                if all_div[i, j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85", hatch="xx",
                                           edgecolor="0.55", lw=0))  # fmt: skip
                    colour = "black"
                elif math.isfinite(grid[i, j]):
                    r, g, b, _ = cm(norm(grid[i, j]))
                    colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                else:
                    colour = "black"
                ax.text(j, i, notes[i][j], ha="center", va="center", fontsize=8.5, color=colour)
        ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols])
        ax.set_yticks(range(len(rows)), rows)
        ax.grid(False)
        ax.set(xlabel=col_label, title=name)
        fig.colorbar(mesh, ax=ax, label=unit, shrink=0.85)
    return save(fig, path, dpi, title=title)


def _acc_text(c) -> str:
    if c["n_diverged"] == c["n"]:
        return f"× {c['n_diverged']}/{c['n']}\ndiverged"
    s = f"{100 * c['acc_mean']:.1f}"
    if math.isfinite(c["acc_sd"]):
        s += f"\n±{100 * c['acc_sd']:.1f}"
    if c["n_diverged"]:
        s += f"\n{c['n_diverged']}/{c['n']} div."
    return s


def _steps_text(c) -> str:
    if c["n_diverged"] == c["n"]:
        return f"× {c['n_diverged']}/{c['n']}\ndiverged"
    if not math.isfinite(c["steps_mean"]):
        return "n/a"
    s = f"{c['steps_mean']:.0f}"
    ran = c["n"] - c["n_diverged"]
    if c["n_reached"] < ran:
        s = f"≥{s}\n{c['n_reached']}/{ran} reached"
    if c["n_diverged"]:
        s += f"\n{c['n_diverged']}/{c['n']} div."
    return s
