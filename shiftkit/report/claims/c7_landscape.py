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
from shiftkit.report.claims.common import Pairs, plain_and_bn, start, vs
from shiftkit.report.cohort import Cohort
from shiftkit.report.summary import clearly_greater, fmt, summarize

EARLY_FRACTION = 0.5
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
    """Per (label, run path): the mean of each quantity over steps <= EARLY_FRACTION x the run's last step."""
    rows = []
    for (label, path), g in df.groupby(["label", "path"]):
        early = g[g["step"] <= EARLY_FRACTION * g["step"].max()]
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
    for name in JUDGED:
        p = summarize(early.loc[early["label"] == "no BN", name])
        b = summarize(early.loc[early["label"] == "BN", name])
        out.checks.append(Check(f"{name} smaller with BN", clearly_greater(p, b)))
        ratio = p.mean / b.mean if b.n and b.mean > 0 else float("nan")
        out.measured.append(vs(f"early {name}", "no BN", p, "BN", b) + f" (ratio {fmt(ratio, 3)})")
        out.numbers[f"ratio_{name}"] = ratio if math.isfinite(ratio) else float("nan")
    out.details = f"Early window: steps ≤ {EARLY_FRACTION:g} × each run's last landscape step."
    if ctx.figures:
        from shiftkit.report.figures.landscape import plot_landscape

        plot_landscape(df, ctx.out_dir / FIGURE, order=["no BN", "BN"],
                       early_step=EARLY_FRACTION * float(df["step"].max()), dpi=ctx.dpi)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            "Loss-landscape probes along the gradient (step sizes 0.5–4 × LR): (a) range of the loss, "
            "(b) gradient predictiveness, (c) effective β-smoothness; mean over seeds, without and with "
            "BN; the shaded early window is what the claim is judged on."), claim.id))
    return finish(out)
