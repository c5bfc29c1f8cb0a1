"""C7, smoother landscape (Santurkar et al. Fig. 4): loss range, gradient predictiveness and
effective beta-smoothness are smaller with BN, by large factors, early in training.

Pre-registered rule. Per run, each quantity is averaged over the *early window*: the landscape
probes (every 25 steps) at steps from :data:`BURN_IN` to :data:`EARLY_END` (step 0 excluded).
Gradient predictiveness is judged on ``grad_pred_max`` (the upper envelope the paper shades).
Effects over seeds: the ratio of means no BN / BN with a 95% bootstrap interval
(:mod:`~shiftkit.report.effects`).

1-3. for ``loss_range``, ``grad_pred_max`` and ``beta_smooth``: the ratio is clearly above 1
     (smaller with BN);
4. by large factors: every one of the three intervals lies above :data:`LARGE_FACTOR`.

Yes = all pass, no = none, partly otherwise.
"""

from __future__ import annotations

import math

import pandas as pd

from shiftkit.records.names import LANDSCAPE_PREFIX, LANDSCAPE_STATS, landscape_key
from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import Pairs, effect_check, effect_line, plain_and_bn, start
from shiftkit.report.cohort import Cohort
from shiftkit.report.effects import ratio

BURN_IN = 50
"""Probes before this step (and step 0) never decide."""
EARLY_END = 450
"""The early window ends at this step."""
LARGE_FACTOR = 2.0
"""What the paper's "large factors" is taken to mean: at least twice."""
JUDGED = ("loss_range", "grad_pred_max", "beta_smooth")
FIGURE = "C7_landscape.png"
_KEYS = tuple(landscape_key(s) for s in LANDSCAPE_STATS)


def landscape_long(pairs: Pairs, label: str) -> pd.DataFrame:
    """``label, seed, path, step`` and the landscape quantities (short names) of each run."""
    frames = []
    for run, f in pairs:
        m = run.metrics
        if m is None:
            continue
        cols = [k for k in _KEYS if k in m.columns]
        if not cols:
            continue
        part = m[["step", *cols]].dropna(subset=cols, how="all")
        part = part.rename(columns={k: k[len(LANDSCAPE_PREFIX):] for k in cols})
        frames.append(part.assign(label=label, seed=f.seed, path=f.path))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["label", "seed", "path", "step"])
    for name in LANDSCAPE_STATS:
        if name not in df.columns:
            df[name] = float("nan")
    return df


def early_means(df: pd.DataFrame) -> pd.DataFrame:
    """Per (label, run path): the mean of each quantity over the probes at steps in
    [BURN_IN, EARLY_END] (step 0 excluded)."""
    rows = []
    for (label, path), g in df.groupby(["label", "path"]):
        early = g[(g["step"] >= BURN_IN) & (g["step"] > 0) & (g["step"] <= EARLY_END)]
        rows.append(dict(label=label, path=path, **{n: early[n].mean() for n in LANDSCAPE_STATS}))
    return pd.DataFrame(rows)


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    if (groups := plain_and_bn(cohort, out)) is None:
        return finish(out)
    plain, bn = groups
    df = pd.concat([landscape_long(plain, "no BN"), landscape_long(bn, "BN")], ignore_index=True)
    if not len(df):
        out.notes.append("No landscape/* series in the runs' metrics.csv.")
        return finish(out)
    early = early_means(df)
    for _, row in early.iterrows():
        for name in JUDGED:
            out.record(row["path"], f"early_{name}", row[name])
    effects = {}
    for name in JUDGED:
        p = list(early.loc[early["label"] == "no BN", name])
        b = list(early.loc[early["label"] == "BN", name])
        eff = effects[name] = ratio(p, b)
        out.checks.append(effect_check(f"{name} smaller with BN", eff, eff.above()))
        out.measured.append(effect_line(f"{name}, steps {BURN_IN}–{EARLY_END}", "no BN", p, "BN", b, eff))
        out.numbers[f"ratio_{name}"] = eff.estimate if math.isfinite(eff.estimate) else float("nan")
    large = [e.above(LARGE_FACTOR) for e in effects.values()]
    passed = None if any(x is None for x in large) else all(large)
    out.checks.append(Check(f"by large factors (every interval above {LARGE_FACTOR:g}x)", passed,
                            ", ".join(f"{n} {e.text()}" for n, e in effects.items())))  # fmt: skip
    out.details = f"Early window: probes at steps {BURN_IN}–{EARLY_END} (step 0 excluded)."
    if ctx.figures:
        from shiftkit.report.figures.landscape import plot_landscape

        plot_landscape(df, ctx.out_dir / FIGURE, order=["no BN", "BN"], early_step=float(EARLY_END), dpi=ctx.dpi,
                       burn_in=BURN_IN)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            "Loss-landscape probes along the gradient (step sizes 0.5–4 × LR): (a) range of the loss, "
            "(b) gradient predictiveness, (c) effective β-smoothness; mean over seeds, without and with "
            f"BN; the claim is judged on the probes at steps {BURN_IN}–{EARLY_END} (shaded up to {EARLY_END})."),
            claim.id))  # fmt: skip
    return finish(out)
