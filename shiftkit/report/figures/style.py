"""One look for every report figure: seaborn's colour-blind palette, readable sizes, Agg backend."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

DPI = 150
PANEL_W, PANEL_H = 4.6, 3.4
"""Inches per panel: at 150 dpi a three-panel figure is about 2000 x 600 pixels."""
STEP_LABEL = "training step (optimizer steps)"
ACC_LABEL = "held-out accuracy (%)"
SEQ_CMAP = "viridis"
"""Sequential colour map for heat maps (perceptually uniform and colour-blind safe)."""


def apply_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", font_scale=0.95)
    plt.rcParams.update({"figure.dpi": DPI, "savefig.bbox": "tight", "axes.titleweight": "bold",
                         "axes.titlesize": "medium", "legend.fontsize": "small",
                         "legend.title_fontsize": "small"})  # fmt: skip


def palette(labels: list[str]) -> dict[str, tuple]:
    """A colour per label, in order, from seaborn's colour-blind palette."""
    colours = sns.color_palette("colorblind", max(len(labels), 1))
    return {label: colours[i % len(colours)] for i, label in enumerate(labels)}


def subplots(nrows: int = 1, ncols: int = 1, w: float = PANEL_W, h: float = PANEL_H, **kw):
    """``plt.subplots`` with the style applied, ``w`` x ``h`` inches per panel, axes always 2-D."""
    apply_style()
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, **kw)
    return fig, axes


def save(
    fig, path: Path, dpi: int = DPI, title: str | None = None, tight_layout: bool = True
) -> Path:
    """Save as PNG at ``dpi`` (bounding box tight) and close; a suptitle if given.

    ``tight_layout=False`` for figures whose colour bar spans several panels (the two clash)."""
    if title:
        fig.suptitle(title, fontweight="bold")
    if tight_layout:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return path


def spans_decades(values, decades: float = 2.0) -> bool:
    """Whether the positive finite values span more than ``decades`` powers of ten."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    return v.size > 1 and math.log10(v.max() / v.min()) > decades


def no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def figure_legend(fig, ax, title: str) -> None:
    """One legend for the whole figure, right of the panels, from ``ax``'s lines (removing the
    per-axes legends, which would sit on the data)."""
    handles, labels = ax.get_legend_handles_labels()
    for a in fig.axes:
        if a.get_legend() is not None:
            a.get_legend().remove()
    fig.legend(
        handles, labels, title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
    )


def mean_sd_line(ax, df, x: str, y: str, hue: str, colours: dict, order: list[str], **kw) -> None:
    """Mean over seeds with a shaded +-1 sd band, one line per hue level (seaborn lineplot)."""
    sns.lineplot(data=df, x=x, y=y, hue=hue, hue_order=[o for o in order if o in set(df[hue])],
                 palette=colours, errorbar="sd", ax=ax, **kw)  # fmt: skip


STAT_LABELS = {
    "kl_gauss": "Gaussian KL (nats)",
    "kl_gauss_floor": "noise floor of the Gaussian KL (nats)",
    "kl_hist": "histogram KL (nats)",
    "js_hist": "histogram JS divergence (nats)",
    "mean_drift": "mean drift (reference sds)",
    "mean_drift_max": "max mean drift (reference sds)",
    "std_log_ratio": "ln(sd / reference sd)",
    "mean": "mean (activation units)",
    "std": "sd (activation units)",
    "p15": "15th percentile (activation units)",
    "p50": "median (activation units)",
    "p85": "85th percentile (activation units)",
    "sat_frac": "saturated fraction",
    "dead_frac": "fraction <= 0",
    "dead_units": "fraction of dead units",
    "nonfinite": "NaN/Inf values (count)",
}


def stat_label(stat: str) -> str:
    """Axis/colour-bar label of a shift statistic, with its unit."""
    return STAT_LABELS.get(stat, stat)


def cell_edges(steps) -> np.ndarray:
    """Cell edges halfway between measurement steps (the outer cells as wide as their neighbour)."""
    steps = np.asarray(steps, dtype=float)
    if len(steps) == 1:
        return np.array([steps[0] - 0.5, steps[0] + 0.5])
    mid = (steps[1:] + steps[:-1]) / 2
    return np.concatenate([[2 * steps[0] - mid[0]], mid, [2 * steps[-1] - mid[-1]]])


def accuracy_panel(
    ax, acc, order: list[str], colours: dict, title: str | None = "(a) accuracy vs step"
) -> None:
    """Held-out accuracy (%) vs step on ``ax``: mean and shaded sd over seeds per variant label.

    ``acc`` has columns ``label, seed, step, acc`` (acc a fraction)."""
    if len(acc):
        mean_sd_line(
            ax, acc.assign(acc_pct=100 * acc["acc"]), "step", "acc_pct", "label", colours, order
        )
        ax.legend(
            title=f"mean ± sd, {acc['seed'].nunique()} seeds", ncols=2 if len(order) > 6 else 1
        )
    else:
        no_data(ax, "no accuracy logged")
    ax.set(xlabel=STEP_LABEL, ylabel=ACC_LABEL, title=title)
    if len(acc):  # mean + sd can pass 100%; accuracy cannot
        ax.set_ylim(top=min(ax.get_ylim()[1], 101.0))
