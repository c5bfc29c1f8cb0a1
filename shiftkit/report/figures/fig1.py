"""Ioffe & Szegedy (2015) Fig. 1 analogue: accuracy vs step, and the percentile bands of a
last-hidden-layer sigmoid input without and with BN."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from shiftkit.report.figures.style import (
    STEP_LABEL,
    accuracy_panel,
    accuracy_zoom,
    no_data,
    palette,
    save,
    subplots,
)

EDGE_STYLE = {"color": "0.45", "lw": 1.0, "ls": ":"}
"""The histogram edges: grey, dotted, thin -- unlike any percentile line (all in colour)."""
PERCENTILE_STYLES = (("p85", "85th", {"lw": 1.2, "ls": "--"}),
                     ("p50", "50th (median)", {"lw": 2.2, "ls": "-"}),
                     ("p15", "15th", {"lw": 1.2, "ls": "-."}))  # fmt: skip
"""Column, legend name and line style of each percentile line (drawn in the variant's colour)."""


def plot_fig1(
    acc: pd.DataFrame,
    bands: dict[str, pd.DataFrame],
    path: Path,
    *,
    site: str,
    seed: int,
    order: list[str],
    edges: dict[str, tuple[float, float] | None] | None = None,
    dpi: int = 150,
    zoom: bool = True,
    early_end: float | None = None,
    burn_in: float | None = None,
) -> Path:
    """Three panels: (a) held-out accuracy vs step, mean and sd over seeds, per variant label;
    (b, c, ...) the 15th/50th/85th percentiles of ``site``'s input over training, one panel per
    label of ``bands`` (``step, p15, p50, p85`` of seed ``seed``).

    Args:
        acc: ``label, seed, step, acc`` (acc a fraction; drawn in percent).
        bands: label -> percentile frame, in panel order (no BN first, as in the paper).
        path: the PNG to write.
        site: the monitored site the bands are of (named in the titles).
        seed: the seed the bands come from.
        order: label order for colours and legend.
        edges: label -> the site's fixed histogram edges ``(lo, hi)``, drawn as grey dotted
            lines labelled "histogram edge": a percentile read from the histogram cannot leave
            them (it is clamped).
        zoom: panel (a) on the accuracies where the curves differ (:func:`accuracy_zoom`: the
            first validations, near chance, fall below the axis and are counted in a note);
            False: the full 0-100% range.
        early_end: if given, panel (a) shades the steps up to it ("early window", the one the
            early-training check judges).
        burn_in: if given, the percentile panels shade the steps before it ("burn-in: not
            judged").
    """
    colours = palette(order)
    fig, axes = subplots(1, 1 + len(bands))
    for ax in axes[0, 2:]:  # the percentile panels share one y scale: "stays put" is visible
        ax.sharey(axes[0, 1])
    ax = axes[0, 0]
    accuracy_panel(ax, acc, order, colours, ylim=accuracy_zoom(acc) if zoom and len(acc) else None)
    if early_end is not None and len(acc):
        ax.axvspan(ax.get_xlim()[0], early_end, color="0.5", alpha=0.08, lw=0)
        ax.text(early_end, ax.get_ylim()[1], " early window ", ha="right", va="top",
                fontsize="x-small", color="0.35")  # fmt: skip
    letters = "bcdefgh"
    for i, (label, band) in enumerate(bands.items()):
        ax = axes[0, 1 + i]
        if band is None or not len(band):
            no_data(ax, f"no percentiles for {label}")
        else:
            c = colours.get(label)
            ax.fill_between(band["step"], band["p15"], band["p85"], color=c, alpha=0.15, lw=0)
            for col, _, style in PERCENTILE_STYLES:
                ax.plot(band["step"], band[col], color=c, **style)
            for y in (edges or {}).get(label) or ():
                ax.axhline(y, **EDGE_STYLE)
                ax.text(band["step"].min(), y, "histogram edge", fontsize="x-small", color="0.35",
                        va="bottom" if y > band["p50"].median() else "top")  # fmt: skip
            if burn_in is not None:
                ax.axvspan(band["step"].min(), burn_in, color="0.5", alpha=0.08, lw=0)
        ax.set(xlabel=STEP_LABEL, ylabel=f"input to {site} (pre-activation)" if i == 0 else "",
               title=f"({letters[i]}) {label}: input percentiles, seed {seed}")  # fmt: skip
    # One key for the percentile panels, outside them (inside it would sit on the bands).
    keys = [
        Line2D([], [], color="0.2", label=name, **style) for _, name, style in PERCENTILE_STYLES
    ]
    if any((edges or {}).values()):
        keys.append(Line2D([], [], label="histogram edge:\npercentiles clamp here", **EDGE_STYLE))
    if burn_in is not None:
        keys.append(
            Patch(color="0.5", alpha=0.15, label=f"burn-in (< step {burn_in:g}):\nnot judged")
        )
    axes[0, -1].legend(handles=keys, title="percentile (line style)", loc="center left",
                       bbox_to_anchor=(1.02, 0.5), frameon=False)  # fmt: skip
    return save(fig, path, dpi, title="Ioffe & Szegedy Fig. 1 analogue")
