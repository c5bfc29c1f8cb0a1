"""C8: per-device BN vs synced BN against the per-device batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiftkit.report.figures.style import palette, save, subplots

LOCAL, SYNCED = "per-device BN", "synced BN"


def plot_syncbn(local: pd.DataFrame, synced: pd.DataFrame, path: Path, *, small: int, large: int,
                tolerance: float, dpi: int = 150) -> Path:  # fmt: skip
    """Final accuracy vs per-device batch (log2 axis), mean ± sd over seeds.

    Per-device BN is a line with error bars; synced BN, which normalizes over the global batch, is
    a horizontal band (mean ± sd) per global batch size, with a dotted line ``tolerance`` below it.
    The batch sizes the claim judges (<= ``small``, >= ``large``) are marked.

    Args:
        local: ``per_device_batch, global_batch, seed, acc``.
        synced: ``global_batch, seed, acc``.
    """
    colours = palette([LOCAL, SYNCED])
    fig, axes = subplots(1, 1, w=6.4, h=4.2)
    ax = axes[0, 0]
    if len(local):
        g = local.groupby("per_device_batch")["acc"].agg(["mean", "std"]).reset_index()
        ax.errorbar(g["per_device_batch"], 100 * g["mean"], yerr=100 * g["std"].fillna(0), marker="o",
                    capsize=3, color=colours[LOCAL], label=f"{LOCAL} (normalizes over its own batch)")  # fmt: skip
        xs = np.asarray(g["per_device_batch"], dtype=float)
    else:
        xs = np.asarray([1.0, 64.0])
    lo, hi = xs.min() / 1.5, xs.max() * 1.5
    for gb, s in synced.groupby("global_batch"):
        m, sd = 100 * s["acc"].mean(), 100 * (s["acc"].std() if len(s) > 1 else 0.0)
        ax.axhspan(m - sd, m + sd, color=colours[SYNCED], alpha=0.2, lw=0)
        ax.axhline(m, color=colours[SYNCED], lw=2, label=f"{SYNCED}, global batch {gb:g}")
        ax.axhline(m - 100 * tolerance, color=colours[SYNCED], lw=1, ls=":",
                   label=f"{SYNCED} − {100 * tolerance:g} point")  # fmt: skip
    ax.axvspan(lo, small * 1.2, color="0.5", alpha=0.08, lw=0, label=f"judged 'worse' (≤ {small})")
    ax.axvspan(large / 1.2, hi, color="0.5", alpha=0.04, lw=0, hatch="//", label=f"judged 'within' (≥ {large})")
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, hi)
    ticks = sorted(set(xs.tolist()))
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.set(xlabel="per-device batch size (examples per BN group)", ylabel="final accuracy (%)")
    ax.legend(loc="lower right", fontsize="x-small")
    return save(fig, path, dpi, title="C8: per-device vs synced batch norm")
