"""C1, Ioffe & Szegedy Fig. 1: BN reaches higher accuracy sooner; a sigmoid input drifts without BN.

Pre-registered rule. Every comparison is an effect over seeds with a 95% bootstrap interval
(:mod:`~shiftkit.report.effects`); "clearly" means the interval excludes no effect (0 for a
difference, 1 for a ratio). Measurements at step 0 and before :data:`BURN_IN` are plotted but
never decide. Yes = every check passes, no = none, partly otherwise.

1. *early training*: the mean validation accuracy over the validations at steps up to
   :data:`EARLY_END` (every 25 steps: the area under the early accuracy curve, per step) --
   BN minus no BN is clearly above 0;
2. *final accuracy*: the test accuracy of the final weights (``test/acc``) -- BN minus no BN is
   clearly above 0 (the paper's BN curve ends above the plain one);
3. *median drift*: for the input of the last sigmoid layer (the last monitored site with a
   saturation fraction), over the measurements at steps >= :data:`BURN_IN`,
   ``(max_t p50 - min_t p50) / median_t(p85 - p15)`` -- the largest move of the median in units
   of the typical 15-85 spread -- the ratio no BN / BN is clearly above 1;
4. *spread drift*: ``ln(max_t (p85 - p15) / min_t (p85 - p15))`` over the same measurements --
   the ratio no BN / BN is clearly above 1.

The percentiles pool the site's units (not one unit as in the paper's figure) and are read from a
histogram with fixed edges, so a percentile beyond the edges is *clamped* to them: when a band
touches the site's edges (``shift_histograms.npz``) -- or, without histograms, two percentiles
coincide -- in any run, checks 3 and 4 use the exact moments instead (mean for the median, sd for
the 15-85 spread) and the report says so. Steps to 80/85/90% accuracy are reported, not judged
(one validation set of 500 digits: a target on a plateau is ill-posed).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from shiftkit.report.claims.base import Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import (
    accuracies,
    after_burn_in,
    effect_check,
    effect_line,
    plain_and_bn,
    start,
    steps_summary,
    vs,
)
from shiftkit.report.cohort import Cohort, accuracy_long, saturating_sites
from shiftkit.report.effects import difference, ratio
from shiftkit.report.facts import accuracy_at, accuracy_curve
from shiftkit.report.summary import fmt, summarize

EARLY_END = 1000
"""Early training: validations at steps up to this one."""
BURN_IN = 200
"""Measurements before this step (and step 0) never decide."""
EARLY_FRACTION = 0.1
"""The early step shown in the table: the first accuracy step at or after this fraction of training."""
REPORTED_TARGETS = (0.8, 0.85, 0.9)
"""Steps to these accuracies are reported, not judged."""
FIGURE = "C1_fig1.png"


def last_sigmoid_site(history: pd.DataFrame | None) -> str | None:
    """The last monitored sigmoid/tanh input of a run (None if there is none)."""
    sites = saturating_sites(history)
    return sites[-1] if sites else None


def percentile_band(history: pd.DataFrame | None, site: str | None) -> pd.DataFrame:
    """``step, p15, p50, p85`` of ``site`` (finite rows), sorted by step."""
    cols = ["step", "p15", "p50", "p85"]
    if history is None or site is None or not set(cols) <= set(history.columns):
        return pd.DataFrame(columns=cols)
    band = history.loc[history["site"] == site, cols].dropna()
    return band.sort_values("step").reset_index(drop=True)


def site_edges(run, site: str | None) -> tuple[float, float] | None:
    """The fixed histogram edges ``(lo, hi)`` of ``site`` in the run's ``shift_histograms.npz``."""
    h = run.histograms
    if h is None or site is None or site not in [str(s) for s in h["sites"]]:
        return None
    i = [str(s) for s in h["sites"]].index(site)
    return float(h["lo"][i]), float(h["hi"][i])


def clamped(band: pd.DataFrame, edges: tuple[float, float] | None) -> bool:
    """Whether a percentile of the band touches the histogram's edges (or, without edges, two
    percentiles coincide) at some measurement."""
    p = band[["p15", "p50", "p85"]].to_numpy(dtype=float)
    if not len(p):
        return False
    if edges is None:
        return bool(((p[:, 0] == p[:, 1]) | (p[:, 1] == p[:, 2])).any())
    lo, hi = edges
    tol = 1e-6 * max(hi - lo, 1e-12)
    return bool(((p <= lo + tol) | (p >= hi - tol)).any())


def moment_band(history: pd.DataFrame | None, site: str | None) -> pd.DataFrame:
    """``step, center, spread`` of ``site`` from the exact moments (mean, sd)."""
    if history is None or site is None or not {"mean", "std"} <= set(history.columns):
        return pd.DataFrame(columns=["step", "center", "spread"])
    b = history.loc[history["site"] == site, ["step", "mean", "std"]].dropna().sort_values("step")
    return b.rename(columns={"mean": "center", "std": "spread"}).reset_index(drop=True)


def drift(center, spread) -> tuple[float, float]:
    """``(median drift, spread drift)``: ``(max - min of center) / median spread`` and
    ``ln(max spread / min spread)`` (NaN where undefined)."""
    center, spread = np.asarray(center, dtype=float), np.asarray(spread, dtype=float)
    if not center.size:
        return float("nan"), float("nan")
    typical = float(np.median(spread))
    med = (center.max() - center.min()) / typical if typical > 0 else float("nan")
    spr = math.log(spread.max() / spread.min()) if spread.min() > 0 else float("nan")
    return float(med), spr


def early_step(acc: pd.DataFrame) -> float:
    """The first logged accuracy step >= EARLY_FRACTION x the last one (NaN without curves)."""
    if not len(acc):
        return float("nan")
    steps = np.sort(acc["step"].unique())
    return float(steps[steps >= EARLY_FRACTION * steps.max()][0])


def early_mean_accuracy(run) -> float:
    """The mean validation accuracy over the validations at steps in (0, EARLY_END]: the area
    under the early accuracy curve per step when validations are evenly spaced (NaN without)."""
    curve, _ = accuracy_curve(run)
    early = curve.loc[(curve["step"] > 0) & (curve["step"] <= EARLY_END), "acc"]
    return float(early.mean()) if len(early) else float("nan")


def drift_after_burn_in(run, use_moments: bool) -> tuple[float, float]:
    """``(median drift, spread drift)`` of the run's last sigmoid input over the measurements at
    steps >= BURN_IN, from the percentiles or (``use_moments``) from the mean and sd."""
    site = last_sigmoid_site(run.history)
    if use_moments:
        m = after_burn_in(moment_band(run.history, site), BURN_IN)
        return drift(m["center"], m["spread"])
    b = after_burn_in(percentile_band(run.history, site), BURN_IN)
    return drift(b["p50"], b["p85"] - b["p15"])


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    if (groups := plain_and_bn(cohort, out)) is None:
        return finish(out)
    plain, bn = groups
    labels = {f.variant: "no BN" for _, f in plain} | {f.variant: "BN" for _, f in bn}
    acc = accuracy_long(plain + bn, labels)

    # 1. early training: mean validation accuracy up to EARLY_END.
    early = {f.path: early_mean_accuracy(r) for r, f in plain + bn}
    for path, value in early.items():
        out.record(path, "early_mean_acc", value)
    e_bn, e_plain = [early[f.path] for _, f in bn], [early[f.path] for _, f in plain]
    eff = difference(e_bn, e_plain)
    out.checks.append(effect_check(f"BN more accurate early (mean val acc, steps ≤ {EARLY_END})", eff, eff.above(),
                                   scale=100, unit=" pts"))  # fmt: skip
    out.measured.append(effect_line(f"mean val acc, steps ≤ {EARLY_END}", "BN", e_bn, "no BN", e_plain, eff, "acc",
                                    scale=100, unit=" pts"))  # fmt: skip

    # 2. final test accuracy.
    f_bn, f_plain = accuracies(bn), accuracies(plain)
    eff = difference(f_bn, f_plain)
    out.checks.append(effect_check("BN more accurate at the end (test)", eff, eff.above(), scale=100, unit=" pts"))
    out.measured.append(effect_line("final test acc", "BN", f_bn, "no BN", f_plain, eff, "acc", scale=100, unit=" pts"))
    for (_, f), value in zip(plain + bn, f_plain + f_bn):
        out.record(f.path, "final_acc", value)

    # Reported, not judged: accuracy at the early step and steps to a few targets.
    t0 = early_step(acc)
    a_bn, a_plain = (summarize(accuracy_at(r, t0) for r, _ in g) for g in (bn, plain))
    out.measured.append(vs(f"val acc @ step {fmt(t0)} (reported)", "BN", a_bn, "no BN", a_plain, "acc"))
    reached = []
    for target in REPORTED_TARGETS:
        s_bn, s_plain = steps_summary(bn, target), steps_summary(plain, target)
        reached.append(f"{100 * target:g}%: BN {s_bn.text()} vs no BN {s_plain.text()}")
    out.measured.append("steps to (reported) " + "; ".join(reached))

    # 3, 4. drift of the last sigmoid input after burn-in: percentiles, or moments where they clamp.
    site = next((s for r, _ in plain + bn if (s := last_sigmoid_site(r.history))), None)
    n_clamped = sum(clamped(percentile_band(r.history, last_sigmoid_site(r.history)),
                            site_edges(r, last_sigmoid_site(r.history))) for r, _ in plain + bn)  # fmt: skip
    source = "mean/sd" if n_clamped else "percentiles"
    drifts = {}
    for name, group in (("no BN", plain), ("BN", bn)):
        values = [drift_after_burn_in(r, bool(n_clamped)) for r, _ in group]
        for (_, f), v in zip(group, values):
            out.record(f.path, "median_drift", v[0])
            out.record(f.path, "spread_drift", v[1])
        drifts[name] = values
    if site is None:
        out.notes.append("No sigmoid/tanh input was monitored (no sat_frac in shift_history): drift not judged.")
    else:
        if n_clamped:
            out.notes.append(
                f"The percentiles of `{site}` hit the fixed histogram edges in {n_clamped} of {len(plain + bn)} "
                "runs (values beyond the edges read as the edge), so the drift is judged on the exact mean "
                "and sd; the percentile panels show the edges.")
        for i, what in enumerate(("median drift", "spread drift")):
            p, b = [v[i] for v in drifts["no BN"]], [v[i] for v in drifts["BN"]]
            eff = ratio(p, b)
            out.checks.append(effect_check(f"{what} larger without BN ({source}, steps ≥ {BURN_IN})", eff, eff.above()))
            out.measured.append(effect_line(f"{what} ({site}, {source}, steps ≥ {BURN_IN})", "no BN", p, "BN", b, eff))
    out.numbers.update(early_step=t0, burn_in=BURN_IN)

    if ctx.figures:
        from shiftkit.report.figures.fig1 import plot_fig1

        seed = cohort.figure_seed(ctx.seed)
        bands, edges = {}, {}
        for name, group in (("no BN", plain), ("BN", bn)):
            run = next((r for r, f in group if f.seed == seed), group[0][0])
            bands[name] = percentile_band(run.history, last_sigmoid_site(run.history))
            edges[name] = site_edges(run, last_sigmoid_site(run.history))
        plot_fig1(acc, bands, ctx.out_dir / FIGURE, site=site or "?", seed=seed,
                  order=["no BN", "BN"], edges=edges, dpi=ctx.dpi, early_end=EARLY_END, burn_in=BURN_IN)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            f"(a) Held-out accuracy vs step, mean ± sd over seeds; (b, c) 15th/50th/85th percentiles of "
            f"the input to `{site}` (the last sigmoid layer, pooled over its units), seed {seed}, "
            f"without and with BN. Drift is judged from step {BURN_IN} on."), "C1"))  # fmt: skip
    return finish(out)
