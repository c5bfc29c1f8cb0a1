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

import pandas as pd

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import Pairs, acc_summary, plain_and_bn, start, vs
from shiftkit.report.cohort import Cohort, accuracy_long, late_site_means
from shiftkit.report.summary import clearly_greater, fmt_summary, summarize

LATE_FRACTION = 0.1
SATURATING_STD = 4.0
"""The init std at which the claim is judged."""
BURN_IN = 200
"""Measurements before this step (and step 0) never decide."""
FIGURE = "C4_saturation.png"


def saturation_table(pairs: Pairs, label: str) -> pd.DataFrame:
    """``label, seed, path, layer, site, sat_frac`` (late mean) for each sigmoid input of each run."""
    rows = []
    for run, f in pairs:
        for i, (site, sat) in enumerate(late_site_means(run.history, "sat_frac", LATE_FRACTION).items(), start=1):
            rows.append(dict(label=label, seed=f.seed, path=f.path, layer=i, site=site, sat_frac=sat))
    return pd.DataFrame(rows, columns=["label", "seed", "path", "layer", "site", "sat_frac"])


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    if (groups := plain_and_bn(cohort, out)) is None:
        return finish(out)
    plain, bn = groups
    a_bn, a_plain = acc_summary(bn), acc_summary(plain)
    out.checks.append(Check("BN more accurate", clearly_greater(a_bn, a_plain)))
    out.measured.append(vs("final acc", "BN", a_bn, "no BN", a_plain, "acc"))
    sat = pd.concat([saturation_table(plain, "no BN"), saturation_table(bn, "BN")], ignore_index=True)
    if len(sat):
        per_run = sat.groupby(["label", "path"])["sat_frac"].mean()
        for (_, path), value in per_run.items():
            out.record(path, "late_sat_frac", value)
        s_plain = summarize(per_run.get("no BN", pd.Series(dtype=float)))
        s_bn = summarize(per_run.get("BN", pd.Series(dtype=float)))
        out.checks.append(Check("saturation larger without BN", clearly_greater(s_plain, s_bn)))
        out.measured.append(vs("late saturation, mean over layers", "no BN", s_plain, "BN", s_bn, "acc"))
        lines = ["| sigmoid layer | site | no BN late saturation | BN late saturation |", "|---|---|---|---|"]
        for layer, g in sat.groupby("layer"):
            cell = {lab: fmt_summary(summarize(g.loc[g["label"] == lab, "sat_frac"]), "acc") for lab in ("no BN", "BN")}
            lines.append(f"| {layer} | `{g['site'].iloc[0]}` | {cell['no BN']} | {cell['BN']} |")
        out.details = "\n".join(lines)
    else:
        out.notes.append("No sigmoid/tanh input was monitored (no sat_frac): saturation not judged.")
    if ctx.figures:
        from shiftkit.report.figures.saturation import plot_saturation

        labels = {f.variant: "no BN" for _, f in plain} | {f.variant: "BN" for _, f in bn}
        plot_saturation(accuracy_long(plain + bn, labels), sat, ctx.out_dir / FIGURE,
                        order=["no BN", "BN"], threshold_note="last 10% of training",
                        dpi=ctx.dpi)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            "(a) Held-out accuracy vs step, mean ± sd over seeds; (b) fraction of each sigmoid "
            "layer's inputs beyond the monitor's saturation threshold (sigmoid: |x| > 4), mean over "
            f"the last {LATE_FRACTION:.0%} of training, without and with BN."), claim.id))  # fmt: skip
    return finish(out)

