"""C4: accuracy and per-layer saturation of a deep sigmoid network, with and without BN."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from shiftkit.report.figures.style import (
    accuracy_panel,
    no_data,
    palette,
    save,
    seed_strip,
    subplots,
)

DERIV_COLUMN = "sigmoid_deriv"
"""The column of ``sat`` holding a layer's mean sigmoid derivative (panel (c) when present)."""
LAYER_LABEL = "sigmoid layer (1 = nearest the input)"


def sigmoid_derivative_at(x: float) -> float:
    """``s(x)(1 - s(x))`` for the logistic sigmoid ``s``: 0.25 at 0, 0.0177 at ``|x| = 4``."""
    s = 1.0 / (1.0 + math.exp(-abs(x)))
    return s * (1.0 - s)


def plot_saturation(
    acc: pd.DataFrame,
    sat: pd.DataFrame,
    path: Path,
    *,
    order: list[str],
    threshold_note: str,
    dpi: int = 150,
    threshold: float = 4.0,
) -> Path:
    """(a) held-out accuracy vs step; (b) saturated share per sigmoid layer; (c), when ``sat`` has
    a ``sigmoid_deriv`` column, the mean sigmoid derivative per layer -- the gradient a layer
    passes back, which a collapsed layer starves even where few inputs pass the threshold. (b)
    and (c) draw each seed as a point beside its mean ± sd bar.

    Args:
        acc: ``label, seed, step, acc``.
        sat: ``label, seed, layer, sat_frac`` and optionally ``sigmoid_deriv`` (``layer`` an
            index from the input side; one row per run and layer).
        order: label order.
        threshold_note: the window the layer means are over, for the titles (e.g. "steps ≥ 200").
        threshold: the saturation threshold ``|x|`` of ``sat_frac`` (the monitor's, 4 for a
            sigmoid), named in (b)'s axis and marked in (c) as the derivative there.
    """
    colours = palette(order)
    has_deriv = DERIV_COLUMN in sat.columns and sat[DERIV_COLUMN].notna().any()
    fig, axes = subplots(1, 3 if has_deriv else 2, w=5.2)
    accuracy_panel(axes[0, 0], acc, order, colours)
    layers = sorted(sat["layer"].unique()) if len(sat) else []
    ax = axes[0, 1]
    if len(sat) and sat["sat_frac"].notna().any():
        seed_strip(ax, sat.assign(pct=100 * sat["sat_frac"]), "layer", "pct", order, colours,
                   categories=layers)  # fmt: skip
        ax.legend(
            title="points: seeds; bar: mean ± sd", fontsize="x-small", title_fontsize="x-small"
        )
    else:
        no_data(ax, "no saturation fractions")
    ax.set(xlabel=LAYER_LABEL, ylabel=f"inputs with |x| > {threshold:g} (%)",
           title=f"(b) saturated share per layer, {threshold_note}")  # fmt: skip
    if has_deriv:
        ax = axes[0, 2]
        seed_strip(ax, sat, "layer", DERIV_COLUMN, order, colours, categories=layers)
        at = sigmoid_derivative_at(threshold)
        ax.axhline(0.25, color="0.4", lw=0.9, ls="--")
        ax.axhline(at, color="#d55e00", lw=1.1, ls="-.")
        ax.text(0.99, 0.25, "maximum 0.25 (at x = 0)", transform=ax.get_yaxis_transform(),
                ha="right",
                va="bottom", fontsize="x-small", color="0.3")  # fmt: skip
        ax.text(0.99, at, f"{at:.3f}: at |x| = {threshold:g} (saturation threshold)",
                transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize="x-small",
                color="#d55e00")  # fmt: skip
        ax.set_ylim(0, 0.27)
        ax.set(xlabel=LAYER_LABEL, ylabel="mean σ′(x) = σ(x)(1 − σ(x))",
               title=f"(c) mean sigmoid derivative per layer, {threshold_note}")  # fmt: skip
    return save(fig, path, dpi, title="C4: deep sigmoid network, with and without BN")
