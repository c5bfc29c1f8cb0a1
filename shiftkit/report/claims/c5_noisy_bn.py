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

import math

import pandas as pd

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import (
    Pairs,
    accuracies,
    after_burn_in,
    effect_check,
    effect_line,
    min_n,
    start,
    with_norm,
)
from shiftkit.report.cohort import NORM_LABELS, Cohort, accuracy_long, activation_sites, site_order
from shiftkit.report.effects import difference, ratio
from shiftkit.report.summary import fmt_summary, summarize

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
DISTRIBUTION_FIGURE = "C5_distribution.png"


def noise_sites(pairs: Pairs) -> list[str]:
    """The activation inputs (``model.hidden.<i>.act``) present in every run's history: where the
    noise enters in the noisy variants."""
    sets = [set(activation_sites(r.history)) for r, _ in pairs if r.history is not None]
    common = set.intersection(*sets) if sets else set()
    order = site_order(r.history for r, _ in pairs)
    return [s for s in order if s in common]


def shift_series(run, sites: list[str] | set[str], stat: str) -> pd.DataFrame:
    """``step, value``: the mean over ``sites`` of ``stat`` at each measurement (NaN rows dropped)."""
    h = run.history
    if h is None or stat not in h.columns:
        return pd.DataFrame(columns=["step", "value"])
    part = h[h["site"].astype(str).isin(set(sites))]
    return part.groupby("step")[stat].mean().dropna().rename("value").reset_index()


def window_shift(run, sites: list[str], stat: str) -> float:
    """The run's shift: the mean of ``stat`` over the noise sites and the measurements at steps
    >= BURN_IN."""
    s = after_burn_in(shift_series(run, sites, stat), BURN_IN)
    return float(s["value"].mean()) if s is not None and len(s) else float("nan")


def groups_of(cohort: Cohort) -> dict[str, Pairs]:
    """The variants by label; the deeper pair (depth above the cohort's smallest) gets its own labels."""
    depths = sorted({f.depth for f in cohort.facts if math.isfinite(f.depth)})
    shallow = depths[0] if depths else float("nan")
    out: dict[str, Pairs] = {}
    for norm, label in VARIANTS:
        pairs = with_norm(cohort, norm)
        out[label] = [(r, f) for r, f in pairs if not (math.isfinite(f.depth) and f.depth > shallow)]
        deep = [(r, f) for r, f in pairs if math.isfinite(f.depth) and f.depth > shallow]
        if deep:
            out[f"{label} (depth {max(f.depth for _, f in deep):g})"] = deep
    return {k: v for k, v in out.items() if v or k in dict(VARIANTS).values()}


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    groups = groups_of(cohort)
    plain, noisy_plain = NORM_LABELS["none"], NORM_LABELS["noisy_none"]
    deep = {k: v for k, v in groups.items() if "(depth" in k}
    deep_plain = next((k for k in deep if k.startswith(plain + " (")), None)
    deep_noisy = next((k for k in deep if k.startswith(noisy_plain + " (")), None)
    main = {label: groups.get(label, []) for _, label in VARIANTS}
    out.min_seeds = min_n(*main.values())
    missing = [label for label, g in main.items() if not g]
    if missing:
        out.notes.append(f"C5 needs all four variants; missing: {', '.join(missing)}.")
    sites = noise_sites([p for g in main.values() for p in g])
    acc = {k: accuracies(g) for k, g in groups.items()}
    shift = {stat: {k: [window_shift(r, sites, stat) for r, _ in g] for k, g in main.items()} for stat in SHIFT_STATS}
    for stat in SHIFT_STATS:
        for k, g in main.items():
            for (_, f), v in zip(g, shift[stat][k]):
                out.record(f.path, f"{stat}_noise_sites", v)

    eff = difference(acc["BN"], acc["noisy BN"])
    out.checks.append(effect_check(f"noisy BN about as accurate as BN (BN − noisy BN below {100 * ACC_TOLERANCE:g} pts)",
                                   eff, eff.below(ACC_TOLERANCE), scale=100, unit=" pts"))  # fmt: skip
    out.measured.append(effect_line("final test acc", "BN", acc["BN"], "noisy BN", acc["noisy BN"], eff, "acc",
                                    scale=100, unit=" pts"))  # fmt: skip
    for stat in SHIFT_STATS:
        e = ratio(shift[stat]["noisy BN"], shift[stat][plain])
        out.checks.append(effect_check(f"noisy BN shifts more than no BN ({stat}, noise sites)", e, e.above()))
        out.measured.append(effect_line(f"{stat} at the noise sites, steps ≥ {BURN_IN}", "noisy BN",
                                        shift[stat]["noisy BN"], plain, shift[stat][plain], e))  # fmt: skip
    if deep_plain and deep_noisy:
        e = difference(acc[deep_plain], acc[deep_noisy])
        out.checks.append(effect_check(f"noise stops the deeper net without BN (loss > {100 * STOP_MARGIN:g} pts)",
                                       e, e.above(STOP_MARGIN), scale=100, unit=" pts"))  # fmt: skip
        out.measured.append(effect_line("final test acc, deeper net", deep_plain, acc[deep_plain], deep_noisy,
                                        acc[deep_noisy], e, "acc", scale=100, unit=" pts"))  # fmt: skip
    else:
        out.checks.append(Check("noise stops the deeper net without BN", None, "no deeper pair in the records"))
    if main[plain] and main[noisy_plain]:
        e = difference(acc[plain], acc[noisy_plain])
        out.measured.append(effect_line("final test acc, depth 3 (reported)", plain, acc[plain], noisy_plain,
                                        acc[noisy_plain], e, "acc", scale=100, unit=" pts"))  # fmt: skip
    lines = ["| variant | final acc. (%) | " + " | ".join(f"{s} (noise sites)" for s in SHIFT_STATS) + " |",
             "|---|---|" + "---|" * len(SHIFT_STATS)]  # fmt: skip
    for label, g in groups.items():
        cells = [fmt_summary(summarize(shift[s][label]), "num") if label in main else "—" for s in SHIFT_STATS]
        lines.append(f"| {label} | {fmt_summary(summarize(acc[label]), 'acc')} | " + " | ".join(cells) + " |")
    out.details = (("\n".join(lines)) + f"\n\nNoise sites: {', '.join(f'`{s}`' for s in sites)}; "
                   f"shift = mean over them and over the measurements at steps ≥ {BURN_IN}, each to the "
                   "previous measurement (50 steps earlier).")  # fmt: skip
    present = {k: v for k, v in groups.items() if v}
    if ctx.figures and present:
        from shiftkit.report.figures.noisy_bn import plot_noisy_bn

        labels = {f.variant: label for label, g in present.items() for _, f in g}
        pairs = [p for g in present.values() for p in g]
        shift_df = pd.concat([shift_series(r, sites, ctx.stat).assign(label=labels[f.variant], seed=f.seed)
                              for r, f in pairs], ignore_index=True)  # fmt: skip
        final = pd.DataFrame([dict(label=k, seed=f.seed, acc=a) for k, g in present.items()
                              for (_, f), a in zip(g, acc[k])], columns=["label", "seed", "acc"])  # fmt: skip
        judged = pd.DataFrame([dict(label=k, seed=f.seed, stat=s, value=v) for s in SHIFT_STATS for k, g in main.items()
                               for (_, f), v in zip(g, shift[s][k])], columns=["label", "seed", "stat", "value"])  # fmt: skip
        plot_noisy_bn(accuracy_long(pairs, labels), shift_df, ctx.out_dir / FIGURE,
                      order=list(present), stat=ctx.stat, dpi=ctx.dpi, final=final, judged=judged,
                      burn_in=BURN_IN, sites_note="the noise sites (activation inputs)")  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            f"(a) Held-out accuracy and (b) shift of the activation inputs ({ctx.stat} to the previous "
            "measurement, averaged over the noise sites), mean ± sd over seeds; the claim is judged from "
            f"step {BURN_IN} on."), claim.id))  # fmt: skip
        distribution_figure(out, main, sites, ctx)
    return finish(out)


def distribution_figure(out: ClaimOutcome, main: dict[str, Pairs], sites: list[str], ctx: Context) -> None:
    """Santurkar et al.'s Fig. 2: one noise site's input distribution at successive steps, no BN,
    BN and noisy BN, one seed (the middle noise site: the noise of the layers below has entered)."""
    from shiftkit.report.figures.noisy_bn import plot_distribution_over_steps

    if not sites:
        return
    site = sites[len(sites) // 2]
    seeds = sorted({f.seed for g in main.values() for _, f in g})
    seed = ctx.seed if ctx.seed in seeds else (seeds[0] if seeds else None)
    hists = {label: run.histograms for label in ("no BN", "BN", "noisy BN") for run, f in main.get(label, [])
             if f.seed == seed and run.histograms is not None and site in [str(s) for s in run.histograms["sites"]]}
    if len(hists) < 2:
        return
    plot_distribution_over_steps(hists, ctx.out_dir / DISTRIBUTION_FIGURE, site=site, seed=seed, dpi=ctx.dpi)
    out.figures.append(Figure(DISTRIBUTION_FIGURE, (
        f"As Santurkar et al.'s Fig. 2: the distribution of the input of `{site}` (a noise site) at successive "
        f"steps, seed {seed}, from the monitor's fixed-edge histograms, one column per variant: how far it "
        "moves from step to step is the shift the claim is about."), out.claim.id))  # fmt: skip
