"""C6 (Santurkar et al. Fig. 5 analogue): gradient-based ICS per layer, with and without BN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiftkit.report.figures.style import (
    STEP_LABEL,
    figure_legend,
    mean_sd_line,
    palette,
    save,
    spans_decades,  # fmt: skip
    subplots,
)

MAX_LAYERS = 6
ROW_LABELS = {
    "l2": "‖G − G′‖₂ (gradient units)",
    "rel": "‖G − G′‖ / ‖G‖ (relative)",
    "cos": "cos(G, G′)",
}
"""The statistics a row can show, with their axis labels."""
LOG_STATS = frozenset({"l2", "rel"})
"""Rows drawn on a log scale where they span more than a decade."""


def pick_layers(layers: list[str], k: int = MAX_LAYERS) -> list[str]:
    """At most ``k`` layers, evenly spaced from first to last (all of them if there are few)."""
    if len(layers) <= k:
        return layers
    return [layers[i] for i in np.linspace(0, len(layers) - 1, k).round().astype(int)]


def plot_grad_ics(
    df: pd.DataFrame,
    path: Path,
    *,
    layers: list[str],
    order: list[str],
    dpi: int = 150,
    rows: tuple[str, ...] = ("l2", "cos"),
    burn_in: float | None = None,
    judged_layers: list[str] | None = None,
) -> Path:
    """A column per layer (input side first), a row per statistic of ``rows`` (``l2`` and ``rel``
    on a log scale where they span a decade); mean ± sd over seeds per variant label. Rows with
    no value in ``df`` are left out.

    Args:
        df: ``label, seed, layer, step`` and the statistics of ``rows`` (``l2``, ``cos``, and
            ``rel`` = ``l2 / ‖G‖`` if drawn).
        layers: the layers to draw, in network order (see :func:`pick_layers`).
        rows: the statistics, top to bottom, from :data:`ROW_LABELS` (e.g. ``("rel", "cos",
            "l2")`` when the claim is judged on ``rel``).
        burn_in: if given, the steps before it (step 0's probe among them) are shaded "not
            judged".
        judged_layers: if given, the other layers' titles say "(not judged)".
    """
    unknown = [r for r in rows if r not in ROW_LABELS]
    if unknown:
        raise ValueError(f"plot_grad_ics: unknown rows {unknown}; choose from {sorted(ROW_LABELS)}")
    shown = [r for r in rows if r in df.columns and df[r].notna().any()] or list(rows[:1])
    colours = palette(order)
    fig, axes = subplots(len(shown), max(1, len(layers)), w=3.6, h=3.0, sharex=True)
    keyed = None  # the first panel with curves: the figure's legend comes from it
    for j, layer in enumerate(layers):
        part = df[df["layer"] == layer]
        judged = judged_layers is None or layer in judged_layers
        for i, stat in enumerate(shown):
            ax = axes[i, j]
            labels = {"xlabel": STEP_LABEL if i == len(shown) - 1 else "",
                      "ylabel": ROW_LABELS[stat] if j == 0 else "",
                      "title": "" if i else layer if judged else f"{layer} (not judged)"}  # fmt: skip
            ax.set(**labels)
            d = part[["label", "seed", "step", stat]].dropna() if stat in part.columns else part[[]]
            if not len(d):
                _say(ax, "no data")
                continue
            if np.ptp(d[stat].to_numpy(dtype=float)) <= 1e-12 * max(1.0, abs(d[stat].iloc[0])):
                # A flat line at one value (the first layer: G' = G) says nothing a line can show.
                _say(ax, f"{stat} = {d[stat].iloc[0]:.3g} at every step\n(nothing to compare)")
                continue
            mean_sd_line(ax, d, "step", stat, "label", colours, order, legend=keyed is None)
            if stat in LOG_STATS and spans_decades(d[stat], 1.0):
                ax.set_yscale("log")
            if burn_in is not None:
                key = "before burn-in: not judged" if keyed is None else None
                ax.axvspan(d["step"].min(), burn_in, color="0.5", alpha=0.12, lw=0, label=key)
            ax.set(**labels)  # again: seaborn labels the axes with the column names
            keyed = keyed or ax
    if keyed is not None:
        figure_legend(fig, keyed, "mean ± sd over seeds")
    return save(
        fig, path, dpi, title="C6: gradient-based ICS per layer (Santurkar et al. Def. 2.1)"
    )


def _say(ax, text: str) -> None:
    """A panel without a curve says why; its y axis is blanked, the x axis left alone (it is
    shared: clearing its ticks here would clear every panel's)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.tick_params(axis="y", left=False, labelleft=False)
    ax.grid(False)
