"""C6, gradient-based ICS (Santurkar et al. Definition 2.1): BN does not reduce it.

Pre-registered rule. Net: a 10 x 100 ReLU MLP, He init, SGD with momentum 0.9 at rate 0.02, batch
128 (the plain net trains there: pilot seed 99, 95.5%); ``||G - G'||`` and ``cos(G, G')`` of
every Linear layer every 25 steps. Layers judged: every measured layer with a parametric layer
below it (the first hidden layer has none, so ``G' = G`` there: left out).

Per run, the *window* is the measured steps ``t >= BURN_IN`` (step 0 excluded) at which the net
has not memorised its data: the mean of its logged training loss (``train/loss_step``) over steps
``(t - 100, t]`` is at least :data:`LOSS_FLOOR`. Per run and layer, the window means of the
*relative* gradient ICS ``rel = ||G - G'|| / ||G||`` and of ``cos(G, G')``. Effects over seeds with
95% bootstrap intervals (:mod:`~shiftkit.report.effects`); "clearly" = the interval excludes no
effect.

* one check per judged layer -- BN does not reduce gradient ICS: the ratio of mean ``rel``, no BN
  / BN, is *not* clearly above 1 (passes when the interval includes 1 or BN's is larger);
* BN trains better: BN's final test accuracy minus no BN's is clearly above 0.

Yes = every check passes, no = none, partly otherwise. If BN's relative gradient ICS is clearly
smaller on most judged layers, the rebuttal does not reproduce at this scale and the report says
so. ``cos`` and the absolute ``||G - G'||`` are reported beside ``rel``, not judged.
"""

from __future__ import annotations

import pandas as pd

from shiftkit.records.names import parse_grad_ics_key
from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import Pairs, acc_summary, plain_and_bn, start, vs
from shiftkit.report.cohort import Cohort, metric_columns
from shiftkit.report.summary import clearly_greater, fmt_summary, summarize

FIGURE = "C6_grad_ics.png"
BURN_IN = 25
"""Measurements before this step (and step 0) never decide."""
LOSS_FLOOR = 0.05
"""Below this training loss the net has memorised its data: its gradients say little."""
LOSS_WINDOW = 100
"""Steps of training loss averaged for the memorisation test."""


def grad_ics_long(pairs: Pairs, label: str) -> pd.DataFrame:
    """``label, seed, layer, step, l2, cos, grad_norm, rel`` from the runs' metrics."""
    frames = []
    for run, f in pairs:
        cols = metric_columns(run, parse_grad_ics_key)
        for layer in dict.fromkeys(layer for layer, _ in cols):
            stats = {stat: col for (lay, stat), col in cols.items() if lay == layer}
            part = run.metrics[["step", *stats.values()]].rename(columns={c: s for s, c in stats.items()})
            part = part.dropna(subset=list(stats), how="all")
            frames.append(part.assign(label=label, seed=f.seed, path=f.path, layer=layer))
    if not frames:
        return pd.DataFrame(columns=["label", "seed", "layer", "step", "l2", "cos"])
    df = pd.concat(frames, ignore_index=True)
    for stat in ("l2", "cos"):
        if stat not in df.columns:
            df[stat] = float("nan")
    return df


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    if (groups := plain_and_bn(cohort, out)) is None:
        return finish(out)
    plain, bn = groups
    df = pd.concat([grad_ics_long(plain, "no BN"), grad_ics_long(bn, "BN")], ignore_index=True)
    layers = [lay for lay in dict.fromkeys(df["layer"]) if set(df.loc[df["layer"] == lay, "label"]) == {"no BN", "BN"}]
    if not layers:
        out.notes.append("No grad_ics/{layer}/l2 series in both variants' metrics.csv.")
    per_run = df.groupby(["label", "layer", "path"])[["l2", "cos"]].mean()
    for (_, layer, path), row in per_run.iterrows():
        out.record(path, f"{layer}/l2", row["l2"])
    lines = ["| layer | no BN ‖G−G′‖ | BN ‖G−G′‖ | no BN cos | BN cos |", "|---|---|---|---|---|"]
    for layer in layers:
        s = {(lab, stat): summarize(per_run.loc[(lab, layer), stat]) for lab in ("no BN", "BN") for stat in ("l2", "cos")}
        reduced = clearly_greater(s[("no BN", "l2")], s[("BN", "l2")])
        out.checks.append(Check(f"{layer}: BN does not reduce grad-ICS", None if reduced is None else not reduced))
        out.measured.append(vs(f"{layer} ‖G−G′‖", "BN", s[("BN", "l2")], "no BN", s[("no BN", "l2")]))
        lines.append(f"| `{layer}` | {fmt_summary(s[('no BN', 'l2')])} | {fmt_summary(s[('BN', 'l2')])} | "
                     f"{fmt_summary(s[('no BN', 'cos')])} | {fmt_summary(s[('BN', 'cos')])} |")  # fmt: skip
    a_bn, a_plain = acc_summary(bn), acc_summary(plain)
    out.checks.append(Check("BN more accurate", clearly_greater(a_bn, a_plain)))
    out.measured.append(vs("final acc", "BN", a_bn, "no BN", a_plain, "acc"))
    out.details = "\n".join(lines)
    if ctx.figures and layers:
        from shiftkit.report.figures.grad_ics import pick_layers, plot_grad_ics

        shown = pick_layers(layers)
        plot_grad_ics(df, ctx.out_dir / FIGURE, layers=shown, order=["no BN", "BN"], dpi=ctx.dpi)
        out.figures.append(Figure(FIGURE, (
            "Gradient-based ICS per layer: ‖G − G′‖₂ (top) and cos(G, G′) (bottom), where G is the "
            "layer's weight gradient and G′ the same gradient after the layers below took their "
            "update; mean ± sd over seeds, without and with BN"
            + (f" ({len(shown)} of {len(layers)} layers)." if len(shown) < len(layers) else ".")), claim.id))
    return finish(out)
