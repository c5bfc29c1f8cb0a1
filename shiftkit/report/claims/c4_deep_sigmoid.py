"""C4, saturating nonlinearities: a deep sigmoid network trains with BN, and saturates less.

Pre-registered rule. The grid is init std {0.1, :data:`SATURATING_STD`} x {no BN, BN}. The
*saturating init* is std :data:`SATURATING_STD` (pilot, seed 99, not a deciding seed: 97-100%
of the plain net's sigmoid inputs beyond +-4 from step 50 on, accuracy at chance); std 0.1 (where
the plain net fails from a vanishing signal rather than saturation) is reported beside it, not
judged.

Per run and sigmoid input (the sites with a saturation fraction), over the measurements at steps
>= :data:`BURN_IN`: the mean *saturated share* (``sat_frac``, |x| > 4) and the mean *sigmoid
derivative* ``s(x)(1 - s(x))`` read from the fixed-edge histogram (bin centres; the overflow bins
count at the edge, an upper bound); a run's value is the mean over its sigmoid layers (every
layer is also shown). Effects over seeds with 95% bootstrap intervals
(:mod:`~shiftkit.report.effects`); "clearly" = the interval excludes no effect. At the saturating
init:

1. BN's final test accuracy minus no BN's is clearly above 0 (a diverged seed scores chance);
2. the mean sigmoid derivative, BN / no BN, is clearly above 1;
3. the saturated share, no BN minus BN, is clearly above 0.

Yes = all pass, no = none, partly otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from shiftkit.report.claims.base import Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import (
    Pairs,
    accuracies,
    after_burn_in,
    effect_check,
    effect_line,
    min_n,
    plain_and_bn,
    start,
)
from shiftkit.report.cohort import SIGMOID_SATURATION, Cohort, accuracy_long, saturating_sites
from shiftkit.report.effects import difference, ratio
from shiftkit.report.summary import fmt_summary, summarize

LATE_FRACTION = 0.1
SATURATING_STD = 4.0
"""The init std at which the claim is judged."""
BURN_IN = 200
"""Measurements before this step (and step 0) never decide."""
FIGURE = "C4_saturation.png"


def sigmoid_derivative(run, sites: list[str], burn_in: float) -> dict[str, float]:
    """Per site, the mean over the kept histograms at steps >= ``burn_in`` (and > 0) of the mean of
    ``s(x)(1 - s(x))`` over the site's values, read from the fixed-edge histogram: in-range bins at
    their centres, the under/overflow bins at the edges (an upper bound: s' falls away from 0)."""
    h = run.histograms
    if h is None:
        return {}
    names = [str(s) for s in h["sites"]]
    keep = (h["steps"] >= burn_in) & (h["steps"] > 0)
    out = {}
    for site in sites:
        if site not in names or not keep.any():
            continue
        i = names.index(site)
        counts = np.asarray(h["counts"][keep, i, :], dtype=float)
        bins = counts.shape[-1] - 2
        edges = np.linspace(float(h["lo"][i]), float(h["hi"][i]), bins + 1)
        x = np.concatenate([[edges[0]], (edges[:-1] + edges[1:]) / 2, [edges[-1]]])
        s = 0.5 * (1.0 + np.tanh(x / 2))  # the sigmoid, without overflow far from 0
        total = counts.sum(axis=1)
        per_step = (counts * (s * (1 - s))).sum(axis=1) / np.where(total > 0, total, np.nan)
        out[site] = float(np.nanmean(per_step)) if np.isfinite(per_step).any() else float("nan")
    return out


def saturation_table(pairs: Pairs, label: str) -> pd.DataFrame:
    """``label, seed, path, init_std, layer, site, sat_frac, sigmoid_deriv`` per sigmoid input per
    run: the means over the measurements at steps >= BURN_IN."""
    rows = []
    for run, f in pairs:
        h = after_burn_in(run.history, BURN_IN)
        sites = saturating_sites(run.history)
        deriv = sigmoid_derivative(run, sites, BURN_IN)
        for i, site in enumerate(sites, start=1):
            sat = h.loc[h["site"] == site, "sat_frac"].mean() if h is not None else float("nan")
            rows.append(dict(label=label, seed=f.seed, path=f.path, init_std=f.init_std, layer=i, site=site,
                             sat_frac=float(sat), sigmoid_deriv=deriv.get(site, float("nan"))))  # fmt: skip
    cols = ["label", "seed", "path", "init_std", "layer", "site", "sat_frac", "sigmoid_deriv"]
    return pd.DataFrame(rows, columns=cols)


def layer_table(sat: pd.DataFrame) -> str:
    lines = ["| init std | sigmoid layer | site | no BN saturated | BN saturated | no BN mean s′ | BN mean s′ |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for (std, layer), g in sat.groupby(["init_std", "layer"]):
        cell = {(lab, col): fmt_summary(summarize(g.loc[g["label"] == lab, col]), "acc" if col == "sat_frac" else "num")
                for lab in ("no BN", "BN") for col in ("sat_frac", "sigmoid_deriv")}  # fmt: skip
        lines.append(f"| {std:g} | {layer} | `{g['site'].iloc[0]}` | {cell[('no BN', 'sat_frac')]} | "
                     f"{cell[('BN', 'sat_frac')]} | {cell[('no BN', 'sigmoid_deriv')]} | {cell[('BN', 'sigmoid_deriv')]} |")
    return "\n".join(lines)


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    if (groups := plain_and_bn(cohort, out)) is None:
        return finish(out)
    plain_all, bn_all = groups
    stds = sorted({f.init_std for _, f in plain_all + bn_all}, key=lambda s: (not math.isfinite(s), s))
    judged = SATURATING_STD if SATURATING_STD in stds else None
    if judged is None:
        out.notes.append(f"No runs at the saturating init std {SATURATING_STD:g}: the claim is judged there only.")
    sat = pd.concat([saturation_table(plain_all, "no BN"), saturation_table(bn_all, "BN")], ignore_index=True)
    per_run = sat.groupby(["path"])[["sat_frac", "sigmoid_deriv"]].mean() if len(sat) else pd.DataFrame()
    for path, row in per_run.iterrows():
        out.record(path, "sat_frac", row["sat_frac"])
        out.record(path, "sigmoid_deriv", row["sigmoid_deriv"])
    for std in stds:
        plain = [(r, f) for r, f in plain_all if f.init_std == std or (math.isnan(std) and math.isnan(f.init_std))]
        bn = [(r, f) for r, f in bn_all if f.init_std == std or (math.isnan(std) and math.isnan(f.init_std))]
        tag = f"init std {std:g}" + ("" if std == judged else ", reported")
        a_bn, a_plain = accuracies(bn), accuracies(plain)
        eff = difference(a_bn, a_plain)
        line = effect_line(f"final test acc ({tag})", "BN", a_bn, "no BN", a_plain, eff, "acc", scale=100, unit=" pts")
        out.measured.append(line)
        deriv, satf = ({lab: [per_run[col].get(f.path, float("nan")) if len(per_run) else float("nan") for _, f in g]
                        for lab, g in (("no BN", plain), ("BN", bn))} for col in ("sigmoid_deriv", "sat_frac"))  # fmt: skip
        e_d = ratio(deriv["BN"], deriv["no BN"])
        e_s = difference(satf["no BN"], satf["BN"])
        out.measured.append(effect_line(f"mean sigmoid derivative, steps ≥ {BURN_IN} ({tag})", "BN", deriv["BN"], "no BN",
                                        deriv["no BN"], e_d))  # fmt: skip
        out.measured.append(effect_line(f"saturated share (beyond ±4), steps ≥ {BURN_IN} ({tag})", "no BN", satf["no BN"], "BN",
                                        satf["BN"], e_s, "acc", scale=100, unit=" pts"))  # fmt: skip
        if std == judged:
            out.min_seeds = min_n(plain, bn)
            out.checks.append(effect_check(f"BN more accurate (init std {std:g})", eff, eff.above(), scale=100, unit=" pts"))
            out.checks.append(effect_check(f"sigmoid derivative larger with BN (init std {std:g})", e_d, e_d.above()))
            out.checks.append(effect_check(f"saturation larger without BN (init std {std:g})", e_s, e_s.above(),
                                           scale=100, unit=" pts"))  # fmt: skip
    if len(sat):
        out.details = layer_table(sat)
    else:
        out.notes.append("No sigmoid/tanh input was monitored (no sat_frac): saturation not judged.")
    if ctx.figures:
        from shiftkit.report.figures.saturation import plot_saturation

        plain = [(r, f) for r, f in plain_all if judged is None or f.init_std == judged]
        bn = [(r, f) for r, f in bn_all if judged is None or f.init_std == judged]
        labels = {f.variant: "no BN" for _, f in plain} | {f.variant: "BN" for _, f in bn}
        shown = sat[sat["init_std"] == judged] if judged is not None else sat
        plot_saturation(accuracy_long(plain + bn, labels), shown, ctx.out_dir / FIGURE,
                        order=["no BN", "BN"], threshold_note=f"steps ≥ {BURN_IN}", dpi=ctx.dpi,
                        threshold=SIGMOID_SATURATION)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            f"Init std {judged:g} (the saturating init): (a) held-out accuracy vs step, mean ± sd over seeds; "
            "(b) fraction of each sigmoid layer's inputs beyond the monitor's saturation threshold "
            f"(sigmoid: |x| > 4), mean over the measurements from step {BURN_IN} on, and (c) its mean sigmoid "
            "derivative s(x)(1 − s(x)) read from the histograms, without and with BN."
            if judged is not None else "Accuracy and saturation per sigmoid layer."), claim.id))  # fmt: skip
    return finish(out)
