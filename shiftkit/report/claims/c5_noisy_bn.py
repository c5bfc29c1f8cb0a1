"""C5, Santurkar et al.'s noisy BN: it trains about as well as BN although its layer inputs shift
more than the plain network's; the same noise stops the plain network training.

Pre-registered rule. Variants: no BN, BN, noisy BN, noisy no BN (depth 3, rate 0.2), and no BN /
noisy no BN on a deeper net (depth 6, rate 0.1: the rate at which the deeper plain net trains).
The *noise sites* are the inputs of the activations (``model.hidden.<i>.act``): where the noise
enters in the noisy variants (BN's output, plus noise, is the activation's input). A run's shift
is the mean, over the noise sites and the measurements at steps >= :data:`BURN_IN`, of each
statistic to the previous measurement (the monitor's default reference): ``js_hist``,
``mean_drift`` and ``kl_gauss``. Accuracies are final test accuracies, a diverged seed scoring
chance. Effects over seeds with 95% bootstrap intervals (:mod:`~shiftkit.report.effects`);
"clearly" = the interval excludes no effect.

1. noisy BN about as accurate as BN: the interval of BN minus noisy BN lies below
   :data:`ACC_TOLERANCE`;
2. noisy BN shifts more than no BN, by histogram JS: ratio noisy BN / no BN clearly above 1;
3. ... by mean drift: the same ratio clearly above 1;
4. ... by Gaussian KL: the same ratio clearly above 1;
5. noise stops the deeper plain net: deeper no BN minus deeper noisy no BN is clearly above
   :data:`STOP_MARGIN` (the interval's lower bound).

Yes = all pass, no = none, partly otherwise. The depth-3 noisy no BN is reported, not judged.
"""

from __future__ import annotations

import pandas as pd

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import Pairs, acc_summary, min_n, start, vs, with_norm
from shiftkit.report.cohort import NORM_LABELS, Cohort, accuracy_long
from shiftkit.report.summary import clearly_greater, fmt_summary, summarize, within

ACC_TOLERANCE = 0.02
"""Two points of accuracy: "about as well"."""
STOP_MARGIN = 0.25
"""Noise *stops* a net that loses more than this much accuracy to it."""
BURN_IN = 150
"""Measurements before this step (and step 0) never decide."""
SHIFT_STATS = ("js_hist", "mean_drift", "kl_gauss")
"""The shift statistics judged, in check order."""
VARIANTS = tuple((norm, NORM_LABELS[norm]) for norm in ("none", "batch", "noisy_batch", "noisy_none"))
"""The four variants and their labels: no BN (plain), BN, noisy BN, noisy no BN (noisy plain)."""
FIGURE = "C5_noisy_bn.png"


def common_sites(pairs: Pairs) -> set[str]:
    """Sites present in every run's history."""
    sets = [set(r.history["site"].astype(str)) for r, _ in pairs if r.history is not None]
    return set.intersection(*sets) if sets else set()


def shift_series(run, sites: set[str], stat: str) -> pd.DataFrame:
    """``step, value``: the mean over ``sites`` of ``stat`` at each measurement (NaN rows dropped)."""
    h = run.history
    if h is None or stat not in h.columns:
        return pd.DataFrame(columns=["step", "value"])
    part = h[h["site"].astype(str).isin(sites)]
    return part.groupby("step")[stat].mean().dropna().rename("value").reset_index()


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    groups = {label: with_norm(cohort, norm) for norm, label in VARIANTS}
    present = {k: v for k, v in groups.items() if v}
    out.min_seeds = min_n(*groups.values())
    if len(present) < 4:
        missing = [label for label, g in groups.items() if not g]
        out.notes.append(f"C5 needs all four variants; missing: {', '.join(missing)}.")
    sites = common_sites([p for g in present.values() for p in g])
    acc = {k: acc_summary(g) for k, g in groups.items()}
    per_run = {f.path: shift_series(r, sites, ctx.stat)["value"].mean() for g in groups.values() for r, f in g}
    shift = {k: summarize(per_run[f.path] for _, f in g) for k, g in groups.items()}
    for path, value in per_run.items():
        out.record(path, f"mean_{ctx.stat}", value)
    plain, noisy_plain = NORM_LABELS["none"], NORM_LABELS["noisy_none"]
    out.checks.append(Check("noisy BN about as accurate as BN", within(acc["noisy BN"], acc["BN"], ACC_TOLERANCE)))
    out.checks.append(Check("noisy BN shifts more than no BN", clearly_greater(shift["noisy BN"], shift[plain])))
    out.checks.append(Check("noise stops the net without BN", clearly_greater(acc[plain], acc[noisy_plain], ACC_TOLERANCE)))
    out.measured.append(vs("final acc", "noisy BN", acc["noisy BN"], "BN", acc["BN"], "acc"))
    out.measured.append(vs(f"mean {ctx.stat}", "noisy BN", shift["noisy BN"], plain, shift[plain]))
    out.measured.append(vs("final acc", plain, acc[plain], noisy_plain, acc[noisy_plain], "acc"))
    lines = [f"| variant | final acc. (%) | mean {ctx.stat} |", "|---|---|---|"]
    for label in groups:
        lines.append(f"| {label} | {fmt_summary(acc[label], 'acc')} | {fmt_summary(shift[label])} |")
    out.details = "\n".join(lines) + f"\n\nShift sites (common to all variants): {', '.join(f'`{s}`' for s in sorted(sites))}"
    if ctx.figures and present:
        from shiftkit.report.figures.noisy_bn import plot_noisy_bn

        labels = {f.variant: label for label, g in present.items() for _, f in g}
        pairs = [p for g in present.values() for p in g]
        shift_df = pd.concat([shift_series(r, sites, ctx.stat).assign(label=labels[f.variant], seed=f.seed)
                              for r, f in pairs], ignore_index=True)  # fmt: skip
        plot_noisy_bn(accuracy_long(pairs, labels), shift_df, ctx.out_dir / FIGURE,
                      order=[label for _, label in VARIANTS], stat=ctx.stat, dpi=ctx.dpi)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            f"(a) Held-out accuracy and (b) shift of the layer inputs ({ctx.stat} to the monitor's reference "
            "snapshot, averaged over the sites all variants share), mean ± sd over seeds."), claim.id))
    return finish(out)
