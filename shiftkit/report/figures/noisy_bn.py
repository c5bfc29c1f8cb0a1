"""C5 (Santurkar et al. Fig. 2 analogue): accuracy and shift of plain / BN / noisy BN / noisy plain,
per seed where seeds disagree, and one layer's input distribution at successive steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shiftkit.report.figures.style import (
    ACC_LABEL,
    STEP_LABEL,
    accuracy_panel,
    no_data,
    palette,
    save,
    seed_lines,
    seed_strip,
    spans_decades,
    stat_label,
    subplots,
)

RIDGE_OVERLAP = 1.6
"""The tallest density of a distribution figure is this many ridge spacings high."""
OUTSIDE_NOTE = 0.005
"""Mass beyond the histogram's edges is written beside a ridge when above this fraction."""


def plot_noisy_bn(
    acc: pd.DataFrame,
    shift: pd.DataFrame,
    path: Path,
    *,
    order: list[str],
    stat: str,
    dpi: int = 150,
    final: pd.DataFrame | None = None,
    judged: pd.DataFrame | None = None,
    burn_in: float | None = None,
    sites_note: str = "the sites all variants share",
) -> Path:
    """(a) held-out accuracy vs step; (b) the network's shift (``stat`` averaged over sites) vs
    step; (c) final accuracy; each seed drawn (thin lines, points) over the mean, one fixed colour
    per variant (:data:`~shiftkit.report.figures.style.VARIANT_COLOURS`: up to six variants, e.g.
    the depth-6 pair). Seeds that disagree -- some at chance, some trained -- show as such, where a
    mean ± sd band would cover accuracies no seed had. With ``judged``, a second row shows, per
    statistic, each run's number the claim's rule compares (points per seed over mean ± sd).

    Args:
        acc: ``label, seed, step, acc``.
        shift: ``label, seed, step, value`` (the per-step site mean).
        order: label order (legend and strip order).
        stat: the statistic of ``shift`` (axis label).
        final: ``label, seed, acc``: each run's final accuracy (fraction), e.g. the test accuracy
            the rule judges (a diverged seed at chance). None: the last validation accuracy from
            ``acc`` (the panel says so).
        judged: ``label, seed, stat, value``: per run and statistic, the shift the rule compares
            (e.g. the mean ``js_hist`` over the noise sites after burn-in); one panel per
            statistic, in order of appearance. None: no second row.
        burn_in: if given, panel (b) shades the steps before it ("burn-in: not judged").
        sites_note: which sites panel (b) averages, for its y label.
    """
    colours = palette(order)
    stats = list(dict.fromkeys(judged["stat"])) if judged is not None and len(judged) else []
    ncols = max(3, len(stats))
    fig, axes = subplots(2 if stats else 1, ncols, w=4.6)
    for ax in axes[0, 3:]:
        ax.set_visible(False)
    accuracy_panel(axes[0, 0], acc, order, colours, per_seed=True)

    ax = axes[0, 1]
    if len(shift):
        seed_lines(ax, shift, "step", "value", colours, order)
        if spans_decades(shift["value"], 1.5):
            ax.set_yscale("log")
        if burn_in is not None:
            ax.axvspan(shift["step"].min(), burn_in, color="0.5", alpha=0.1, lw=0,
                       label="burn-in: not judged")  # fmt: skip
        ax.legend(title=f"mean (thick), seeds (thin)\nover {sites_note}", fontsize="x-small",
                  title_fontsize="x-small")  # fmt: skip
    else:
        no_data(ax, f"no {stat} logged")
    ax.set(xlabel=STEP_LABEL, ylabel=stat_label(stat), title="(b) shift of the layer inputs")

    ax = axes[0, 2]
    source = "final accuracy"
    if final is None and len(acc):
        last = acc.sort_values("step").groupby(["label", "seed"], as_index=False).last()
        final, source = last[["label", "seed", "acc"]], "last validation accuracy"
    if final is not None and len(final):
        seed_strip(ax, final.assign(pct=100 * final["acc"]), "label", "pct", order, colours)
        ax.tick_params(axis="x", labelrotation=25, labelsize="x-small")
    else:
        no_data(ax, "no final accuracy")
    ax.set(ylabel=ACC_LABEL, title=f"(c) {source}")
    ax.text(0.02, 0.02, "points: seeds; bar: mean ± sd", transform=ax.transAxes,
            fontsize="x-small",
            color="0.3")  # fmt: skip

    letters = "defghij"
    for k, name in enumerate(stats):
        ax = axes[1, k]
        part = judged[judged["stat"] == name]
        seed_strip(ax, part, "label", "value", order, colours)
        if spans_decades(part["value"], 1.5):
            ax.set_yscale("log")
        ax.tick_params(axis="x", labelrotation=25, labelsize="x-small")
        ax.set(ylabel=stat_label(name), title=f"({letters[k]}) {name} as judged, per seed")
    for ax in axes[1, len(stats) :] if stats else ():
        ax.set_visible(False)
    return save(fig, path, dpi, title="C5: noisy BN vs BN vs no BN (Santurkar et al. Fig. 2)")


# ----------------------------------------------------------------------------- distributions


def pick_steps(available, steps: list[int] | None = None, n: int = 5) -> list[int]:
    """The measured steps to draw.

    ``steps`` given: each must be a measured step (in ``available``), else a ValueError names the
    nearest measured ones. None: ``n`` steps evenly spaced in step value from the first measured
    to the last, each the nearest measured step (duplicates dropped).
    """
    avail = np.unique(np.asarray(available, dtype=np.int64))
    if not avail.size:
        raise ValueError("plot_distribution_over_steps: no measured steps (empty histograms)")
    if steps is not None:
        missing = [s for s in steps if s not in set(avail.tolist())]
        if missing:
            near = sorted({int(avail[np.abs(avail - s).argmin()]) for s in missing})
            raise ValueError(f"plot_distribution_over_steps: steps {missing} were not measured "
                             f"(in every variant); nearest measured: {near}")  # fmt: skip
        return [int(s) for s in steps]
    targets = np.linspace(avail[0], avail[-1], max(1, n))
    picked = [int(avail[np.abs(avail - t).argmin()]) for t in targets]
    return list(dict.fromkeys(picked))


def site_densities(h: dict[str, np.ndarray], site: str, steps: list[int]) -> dict[str, np.ndarray]:
    """One site's input distribution at ``steps``, from a run's ``shift_histograms.npz`` arrays.

    Returns ``edges`` (bins + 1, from ``lo``/``hi``), ``density`` (len(steps), bins: fraction of
    the values per unit of input value, so that a wider distribution is lower), ``under`` and
    ``over`` (len(steps): the fractions beyond the edges), and ``steps``. Raises ValueError
    naming the site or step when the run has no such site or did not measure the step.
    """
    names = [str(s) for s in h["sites"]]
    if site not in names:
        raise ValueError(f"site_densities: no site {site!r} in the histograms (sites: {names})")
    s = names.index(site)
    measured = np.asarray(h["steps"], dtype=np.int64).tolist()
    rows = []
    for step in steps:
        if step not in measured:
            raise ValueError(f"site_densities: step {step} was not measured for {site!r}")
        rows.append(measured.index(step))
    counts = np.asarray(h["counts"], dtype=float)[
        rows, s, :
    ]  # (k, bins + 2): under, in range, over
    lo, hi = float(h["lo"][s]), float(h["hi"][s])
    bins = counts.shape[1] - 2
    edges = np.linspace(lo, hi, bins + 1)
    total = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)
    return {"edges": edges, "density": frac[:, 1:-1] / np.diff(edges), "under": frac[:, 0],
            "over": frac[:, -1], "steps": np.asarray(steps, dtype=np.int64)}  # fmt: skip


def occupied_range(densities: list[dict[str, np.ndarray]]) -> tuple[float, float]:
    """The x range holding every nonzero bin of the given densities, padded by one bin."""
    lows, highs = [], []
    for d in densities:
        edges, nonzero = d["edges"], (d["density"] > 0).any(axis=0)
        if nonzero.any():
            idx = np.flatnonzero(nonzero)
            width = edges[1] - edges[0]
            lows.append(edges[idx[0]] - width)
            highs.append(edges[idx[-1] + 1] + width)
    return (min(lows), max(highs)) if lows else (-1.0, 1.0)


def plot_distribution_over_steps(
    histograms_by_variant: dict[str, dict[str, np.ndarray]],
    path: Path,
    *,
    site: str,
    steps: list[int] | None = None,
    n_steps: int = 5,
    seed: int | None = None,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Santurkar et al. Fig. 2 analogue: one layer's input distribution at successive steps, a
    column per variant (e.g. BN and noisy BN), as a ridge plot: the earliest step at the bottom,
    each later one a row higher, all on one x range and one density scale, so that a distribution
    that moves or widens from step to step -- shift -- reads directly, and variants compare.

    The densities come from the fixed-edge histograms (bins of ``np.linspace(lo, hi, bins + 1)``);
    the mass beyond the edges is written beside a ridge ("◂ 3%", "2% ▸") when above 0.5%.

    Args:
        histograms_by_variant: label -> a run's ``shift_histograms.npz`` arrays (``steps`` (T,),
            ``counts`` (T, S, bins + 2), ``sites`` (S,), ``lo``/``hi`` (S,)), in column order.
        site: the monitored site, e.g. ``"model.hidden.1.act"`` (a noise site).
        steps: the steps to draw, each measured in every variant; None: ``n_steps`` evenly
            spaced over training (:func:`pick_steps`, on the steps every variant measured).
        seed: the seed the runs are of (named in the title).
        title: the figure title (default names the site and seed).
    """
    labels = list(histograms_by_variant)
    if not labels:
        raise ValueError("plot_distribution_over_steps: no variants given")
    having = [
        lab for lab in labels if site in [str(s) for s in histograms_by_variant[lab]["sites"]]
    ]
    common = set.intersection(*(set(np.asarray(histograms_by_variant[lab]["steps"]).tolist())
                                for lab in having)) if having else set()  # fmt: skip
    chosen = pick_steps(sorted(common), steps, n_steps) if having else []
    dens = {lab: site_densities(histograms_by_variant[lab], site, chosen) for lab in having}
    xlim = occupied_range(list(dens.values()))
    peak = max((float(d["density"].max()) for d in dens.values()), default=0.0) or 1.0
    colours = palette(labels)
    fig, axes = subplots(1, len(labels), w=3.6, h=0.55 * max(len(chosen), 3) + 1.4, sharey=True)
    for j, label in enumerate(labels):
        ax = axes[0, j]
        if label not in dens:
            no_data(ax, f"{site}\nabsent in {label}")
            ax.set(title=label)
            continue
        _ridges(ax, dens[label], colours[label], peak, xlim)
        ax.set(xlabel=f"input to {site}", title=label)
    axes[0, 0].set_yticks(range(len(chosen)), [f"step {s}" for s in chosen])
    axes[0, 0].set_ylabel("training step (earliest at the bottom)")
    who = f", seed {seed}" if seed is not None else ""
    heading = title or f"Input distribution of {site} over training{who} (Santurkar et al. Fig. 2)"
    return save(fig, path, dpi, title=heading)


def _ridges(ax, d: dict[str, np.ndarray], colour, peak: float, xlim: tuple[float, float]) -> None:
    """One ridge per step: the density scaled so that ``peak`` is RIDGE_OVERLAP rows high."""
    edges = d["edges"]
    x = np.repeat(edges, 2)[1:-1]  # a step outline: each bin flat across its width
    shades = np.linspace(0.35, 1.0, len(d["steps"]))
    for i in range(len(d["steps"]))[::-1]:  # later ridges first: earlier ones are drawn over them
        y = i + RIDGE_OVERLAP * np.repeat(d["density"][i], 2) / peak
        ax.fill_between(
            x, i, y, color=colour, alpha=0.25 + 0.5 * shades[i], lw=0, zorder=2 * (10 - i)
        )
        ax.plot(x, y, color="0.15", lw=0.8, zorder=2 * (10 - i) + 1)
        for frac, at, ha, text in ((d["under"][i], xlim[0], "left", "◂ {:.0%}"),
                                   (d["over"][i], xlim[1], "right", "{:.0%} ▸")):  # fmt: skip
            if frac > OUTSIDE_NOTE:
                ax.text(at, i + 0.15, text.format(frac), ha=ha, fontsize="x-small", color="0.3")
    ax.axhline(-0.02, color="0.6", lw=0.5)
    ax.set_xlim(*xlim)
    ax.set_ylim(-0.2, len(d["steps"]) - 1 + RIDGE_OVERLAP + 0.2)
    ax.grid(axis="y", visible=False)
