"""C6, gradient-based ICS (Santurkar et al. Definition 2.1): BN does not reduce it.

Per run and layer, the *grad-ICS* is the mean over the logged steps of ``grad_ics/{layer}/l2``
(``||G - G'||_2``); ``cos`` is averaged the same way and reported beside it.

Decision rule (yes = all checks pass, no = none, partly otherwise):

* one check per layer present in both variants: BN's grad-ICS is *not* clearly smaller than no
  BN's (it is not true that no BN's mean exceeds BN's by more than both spreads);
* BN trains better: BN's final accuracy is clearly greater than no BN's (a diverged seed scores
  chance). The paper's point is that both hold at once.
"""

from __future__ import annotations

import pandas as pd

from shiftkit.records.names import parse_grad_ics_key
from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import Pairs, acc_summary, plain_and_bn, start, vs
from shiftkit.report.cohort import Cohort, metric_columns
from shiftkit.report.summary import clearly_greater, fmt_summary, summarize

FIGURE = "C6_grad_ics.png"


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
