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


VARIANT_COLOURS = {
    "no BN": 0,
    "BN": 1,
    "noisy BN": 2,
    "noisy no BN": 3,
    "no BN (depth 6)": 9,
    "noisy no BN (depth 6)": 4,
    "SyncBN": 5,
    "LayerNorm": 6,
    "GroupNorm": 8,
}
"""Fixed colour (an index into seaborn's colour-blind palette) of each variant label shiftkit
names, so that a variant has one colour in every figure of a report. A deeper net of a family
(``"<label> (depth k)"``) takes the colour listed for depth 6 whatever ``k``: light blue beside
blue for no BN, purple beside vermillion for noisy no BN."""

COLOURBLIND_SIZE = 10


def palette(labels: list[str]) -> dict[str, tuple]:
    """A colour per label from seaborn's colour-blind palette: the fixed one of
    :data:`VARIANT_COLOURS` for the labels it names, the first colours the figure leaves free for
    the others (in order)."""
    colours = sns.color_palette("colorblind", COLOURBLIND_SIZE)
    fixed = {label: variant_colour_index(label) for label in labels}
    taken = {i for i in fixed.values() if i is not None}
    free = iter([i for i in range(COLOURBLIND_SIZE) if i not in taken])
    out = {}
    for label in labels:
        index = fixed[label]
        if index is None:
            index = next(free, len(out) % COLOURBLIND_SIZE)
        out[label] = colours[index]
    return out


def variant_colour_index(label: str) -> int | None:
    """The fixed palette index of a variant label (see :data:`VARIANT_COLOURS`), None if unnamed."""
    if label in VARIANT_COLOURS:
        return VARIANT_COLOURS[label]
    base, sep, rest = label.partition(" (depth ")
    if sep and rest.endswith(")") and rest[:-1].isdigit():
        return VARIANT_COLOURS.get(f"{base} (depth 6)")
    return None


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
    """Mean over seeds with a shaded +-1 sd band, one line per hue level (seaborn lineplot;
    ``errorbar=None`` in ``kw`` draws the mean alone)."""
    kw.setdefault("errorbar", "sd")
    sns.lineplot(data=df, x=x, y=y, hue=hue, hue_order=[o for o in order if o in set(df[hue])],
                 palette=colours, ax=ax, **kw)  # fmt: skip


def seed_lines(ax, df, x: str, y: str, colours: dict, order: list[str]) -> None:
    """Every seed's curve as a thin line and the mean over seeds as a thick one, per ``label``
    (``df`` has columns ``label, seed``, ``x``, ``y``); the legend shows the means."""
    hue_order = [o for o in order if o in set(df["label"])]
    sns.lineplot(data=df, x=x, y=y, hue="label", hue_order=hue_order, palette=colours,
                 units="seed", estimator=None, lw=0.7, alpha=0.45, legend=False, ax=ax)  # fmt: skip
    mean_sd_line(ax, df, x, y, "label", colours, order, errorbar=None, lw=2)


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
    ax,
    acc,
    order: list[str],
    colours: dict,
    title: str | None = "(a) accuracy vs step",
    *,
    ylim: tuple[float, float] | None = None,
    per_seed: bool = False,
) -> None:
    """Held-out accuracy (%) vs step on ``ax``: mean and shaded sd over seeds per variant label.

    ``acc`` has columns ``label, seed, step, acc`` (acc a fraction).

    Args:
        ylim: the y range in percent (e.g. from :func:`accuracy_zoom`); mean points below it
            are counted, with the lowest, in the legend, so that a zoom never hides data silently.
        per_seed: draw every seed's curve as a thin line and the mean as a thick one, without
            the sd band (which, when seeds disagree -- some at chance, some trained -- spans
            accuracies no seed had).
    """
    if not len(acc):
        no_data(ax, "no accuracy logged")
        ax.set(title=title)
        return
    pct = acc.assign(acc_pct=100 * acc["acc"])
    n_seeds = acc["seed"].nunique()
    if per_seed:
        seed_lines(ax, pct, "step", "acc_pct", colours, order)
        legend_title = f"mean (thick), each of {n_seeds} seeds (thin)"
    else:
        mean_sd_line(ax, pct, "step", "acc_pct", "label", colours, order)
        legend_title = f"mean ± sd, {n_seeds} seeds"
    ax.set(xlabel=STEP_LABEL, ylabel=ACC_LABEL, title=title)
    if ylim is None:
        small = {"fontsize": "x-small", "title_fontsize": "x-small"} if per_seed else {}
        ax.legend(title=legend_title, ncols=2 if len(order) > 6 else 1, **small)
        ax.set_ylim(top=min(ax.get_ylim()[1], 101.0))  # mean + sd can pass 100%; accuracy cannot
        return
    ax.set_ylim(*ylim)
    means = pct.groupby(["label", "step"])["acc_pct"].mean()
    below = means[means < ylim[0]]
    if len(below):  # the zoom hides the first validations: say so where the reader looks
        points = "1 early point" if len(below) == 1 else f"{len(below)} early points"
        legend_title += f"\n{points} below the axis (lowest {below.min():.0f}%)"
    # Lower right: accuracy curves rise to the top right, and the zoom leaves room below them.
    ax.legend(title=legend_title, ncols=2 if len(order) > 3 else 1, loc="lower right",
              fontsize="x-small", title_fontsize="x-small")  # fmt: skip


def accuracy_zoom(
    acc, *, skip_steps: int = 3, percentile: float = 5.0, pad: float = 0.08, room: float = 0.8
) -> tuple[float, float]:
    """The y range (percent) of an accuracy panel on the accuracies where the curves differ.

    From the curves as drawn (mean and sd over seeds per label and step), leaving out the first
    ``skip_steps`` validation steps (where an untrained net sits near chance and would stretch
    the axis to 0): the data range runs from the ``percentile``-th percentile of ``mean - sd`` to
    the largest ``mean + sd`` (at most 100). The top is widened by ``pad`` times that range, the
    bottom by ``room`` times it (space for the legend below the late, flat part of the curves),
    within 0-101. Falls back to ``(0, 101)`` when nothing is left after the skipped steps.

    Args:
        acc: ``label, seed, step, acc`` (acc a fraction).
    """
    if not len(acc):
        return 0.0, 101.0
    g = (100 * acc["acc"]).groupby([acc["label"], acc["step"]]).agg(["mean", "std"])
    g["std"] = g["std"].fillna(0.0)  # one seed: no spread
    steps = np.sort(acc["step"].unique())
    if skip_steps >= len(steps):
        return 0.0, 101.0
    late = g[g.index.get_level_values("step") >= steps[skip_steps]]
    lo = float(np.percentile(late["mean"] - late["std"], percentile))
    hi = float(min((late["mean"] + late["std"]).max(), 100.0))
    span = max(hi - lo, 1.0)
    return max(0.0, lo - room * span), min(101.0, hi + pad * span)


def seed_strip(
    ax, df, x: str, y: str, order: list[str], colours: dict, *, categories: list | None = None
) -> None:
    """Every seed as a point, beside a black mean ± sd bar, per category of ``x`` and variant
    ``label`` (dodged side by side when ``x`` is not the label itself).

    Seeds that disagree -- some at chance, some trained -- show as separate points where a mean ±
    sd alone would draw a bar no seed is near.

    Args:
        df: columns ``label``, ``x`` and ``y`` (one row per seed and category).
        order: label order (colours and dodge order).
        categories: ``x`` values in axis order (default: sorted; for ``x == "label"``: ``order``).
    """
    labels = [o for o in order if o in set(df["label"])]
    by_label = x == "label"
    cats = labels if by_label else (categories or sorted(df[x].unique()))
    width = 0.8 / (1 if by_label else max(1, len(labels)))
    for i, cat in enumerate(cats):
        for j, label in enumerate(labels):
            if by_label and label != cat:
                continue
            values = df.loc[(df[x] == cat) & (df["label"] == label), y].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if not values.size:
                continue
            centre = i if by_label else i - 0.4 + width * (j + 0.5)
            # Deterministic spread of the points across a third of the slot: reproducible PNGs.
            jitter = np.linspace(-width / 6, width / 6, values.size) if values.size > 1 else [0.0]
            ax.scatter(centre - width / 8 + np.asarray(jitter), values, s=18, color=colours[label],
                       alpha=0.85, edgecolor="white", linewidth=0.4, zorder=3,
                       label=label if i == 0 or by_label else None)  # fmt: skip
            sd = float(values.std(ddof=1)) if values.size > 1 else 0.0
            ax.errorbar(centre + width / 4, values.mean(), yerr=sd, fmt="_", color="0.15",
                        markersize=9, capsize=2.5, lw=1, zorder=4)  # fmt: skip
    ax.set_xticks(range(len(cats)), [str(c) for c in cats])
    ax.set_xlim(-0.6, len(cats) - 0.4)
