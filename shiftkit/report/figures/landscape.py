"""C7 (Santurkar et al. Fig. 4 analogue): loss-landscape probes over training, with and without BN."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from shiftkit.report.figures.style import (
    STEP_LABEL,
    figure_legend,
    no_data,
    palette,
    save,
    spans_decades,
    subplots,
)


def plot_landscape(
    df: pd.DataFrame,
    path: Path,
    *,
    order: list[str],
    early_step: float,
    dpi: int = 150,
    burn_in: float | None = None,
) -> Path:
    """Three panels vs step, mean over seeds per variant label: (a) loss range along the gradient,
    (b) gradient predictiveness (band between ``grad_pred_min`` and ``grad_pred_max``),
    (c) effective beta-smoothness. The early-training window the claim is judged on is shaded.

    Args:
        df: ``label, seed, step, loss_range, grad_pred_max, grad_pred_min, beta_smooth``.
        early_step: the window's last step.
        burn_in: if given, the window starts here (not at the first probe) and the steps before
            it, step 0's probe among them, are hatched "not judged".
    """
    colours = palette(order)
    fig, axes = subplots(1, 3, w=4.4)
    panels = (
        ("(a) loss landscape", "loss range along the gradient (nats)", ("loss_range",)),
        (
            "(b) gradient predictiveness",
            "‖∇L(x) − ∇L(x − ηg)‖ (min–max band)",
            ("grad_pred_min", "grad_pred_max"),
        ),
        ("(c) effective β-smoothness", "max ‖Δ∇L‖ / ‖Δx‖", ("beta_smooth",)),
    )
    for ax, (title, ylabel, cols) in zip(axes[0], panels):
        have = [c for c in cols if c in df.columns and df[c].notna().any()]
        if not have:
            no_data(ax)
            ax.set(title=title)
            continue
        mean = df.groupby(["label", "step"])[have].mean().reset_index()
        values = []
        for label in [o for o in order if o in set(mean["label"])]:
            m = mean[mean["label"] == label].sort_values("step")
            if len(have) == 2:
                ax.fill_between(
                    m["step"], m[have[0]], m[have[1]], color=colours[label], alpha=0.3, lw=0
                )
                ax.plot(m["step"], m[have[1]], color=colours[label], lw=1.5, label=label)
            else:
                ax.plot(m["step"], m[have[0]], color=colours[label], lw=1.5, label=label)
            values.extend(m[have].to_numpy().ravel())
        if spans_decades(values, 1.0):
            ax.set_yscale("log")
        start = df["step"].min() if burn_in is None else burn_in
        ax.axvspan(start, early_step, color="0.5", alpha=0.08, lw=0, label="judged window")
        if burn_in is not None:
            ax.axvspan(df["step"].min(), burn_in, facecolor="none", edgecolor="0.6", hatch="//",
                       lw=0, label="before burn-in: not judged")  # fmt: skip
        ax.set(xlabel=STEP_LABEL, ylabel=ylabel, title=title)
    figure_legend(fig, axes[0, 0], f"mean over {df['seed'].nunique()} seeds")
    return save(fig, path, dpi, title="C7: loss-landscape probes (Santurkar et al. Fig. 4)")
