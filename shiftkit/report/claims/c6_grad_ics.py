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

from shiftkit.records.names import TRAIN_LOSS, parse_grad_ics_key
from shiftkit.report.claims.base import Claim, ClaimOutcome, Context, Figure, finish
from shiftkit.report.claims.common import (
    Pairs,
    accuracies,
    after_burn_in,
    effect_check,
    effect_line,
    plain_and_bn,
    start,
)
from shiftkit.report.cohort import Cohort, metric_columns, site_order
from shiftkit.report.effects import difference, ratio
from shiftkit.report.summary import fmt_summary, summarize

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
    for stat in ("l2", "cos", "rel", "grad_norm"):
        if stat not in df.columns:
            df[stat] = float("nan")
    return df


def memorised_mask(run, steps: pd.Series) -> pd.Series:
    """True where the run has memorised its data at a measured step ``t``: its mean logged training
    loss over ``(t - LOSS_WINDOW, t]`` is below LOSS_FLOOR (False where no loss was logged)."""
    m = run.metrics
    col = next((c for c in (f"{TRAIN_LOSS}_step", TRAIN_LOSS) if m is not None and c in m.columns), None)
    if col is None:
        return pd.Series(False, index=steps.index)
    loss = m[["step", col]].dropna()
    means = [loss.loc[(loss["step"] > t - LOSS_WINDOW) & (loss["step"] <= t), col].mean() for t in steps]
    return pd.Series([bool(x < LOSS_FLOOR) for x in means], index=steps.index)


def judged_window(df: pd.DataFrame, runs: dict) -> pd.DataFrame:
    """The rows of ``grad_ics_long`` in each run's window: steps >= BURN_IN (> 0), not memorised."""
    parts = []
    for path, g in df.groupby("path"):
        g = after_burn_in(g, BURN_IN)
        steps = g["step"].drop_duplicates()
        mem = dict(zip(steps, memorised_mask(runs[path], steps)))
        parts.append(g[~g["step"].map(mem).astype(bool)])
    return pd.concat(parts, ignore_index=True) if parts else df.iloc[0:0]


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    if (groups := plain_and_bn(cohort, out)) is None:
        return finish(out)
    plain, bn = groups
    df = pd.concat([grad_ics_long(plain, "no BN"), grad_ics_long(bn, "BN")], ignore_index=True)
    if "rel" not in df.columns:
        df["rel"] = df["l2"] / df["grad_norm"] if "grad_norm" in df.columns else float("nan")
    layers = [lay for lay in dict.fromkeys(df["layer"]) if set(df.loc[df["layer"] == lay, "label"]) == {"no BN", "BN"}]
    order = site_order(r.history for r, _ in plain + bn)  # the monitor's sites are in module order
    layers.sort(key=lambda lay: order.index(lay) if lay in order else len(order))
    # The first measured layer has no parametric layer below it: G' = G there, nothing to judge.
    judged = layers[1:]
    if not layers:
        out.notes.append("No grad_ics/{layer}/l2 series in both variants' metrics.csv.")
    runs = {f.path: r for r, f in plain + bn}
    win = judged_window(df, runs) if len(df) else df
    per_run = win.groupby(["label", "layer", "path"])[["l2", "rel", "cos"]].mean()
    for (_, layer, path), row in per_run.iterrows():
        out.record(path, f"{layer}/rel", row["rel"])
    steps = win.groupby("label")["step"].agg(["min", "max"]) if len(win) else None
    lines = ["| layer | no BN ‖G−G′‖/‖G‖ | BN ‖G−G′‖/‖G‖ | no BN / BN | no BN cos | BN cos | no BN ‖G−G′‖ | BN ‖G−G′‖ |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    reduced = 0
    for layer in layers:
        vals = {(lab, stat): list(per_run.loc[(lab, layer), stat]) if (lab, layer) in per_run.index.droplevel(2) else []
                for lab in ("no BN", "BN") for stat in ("l2", "rel", "cos")}  # fmt: skip
        eff = ratio(vals[("no BN", "rel")], vals[("BN", "rel")])
        if layer in judged:
            clearly = eff.above()
            reduced += bool(clearly)
            out.checks.append(effect_check(f"{layer}: BN does not reduce relative grad-ICS", eff,
                                           None if clearly is None else not clearly))  # fmt: skip
        s = {k: fmt_summary(summarize(v)) for k, v in vals.items()}
        lines.append(f"| `{layer}`{'' if layer in judged else ' (not judged)'} | {s[('no BN', 'rel')]} | "
                     f"{s[('BN', 'rel')]} | {eff.text()} | {s[('no BN', 'cos')]} | {s[('BN', 'cos')]} | "
                     f"{s[('no BN', 'l2')]} | {s[('BN', 'l2')]} |")  # fmt: skip
    if judged:
        out.measured.append(f"relative grad-ICS clearly smaller with BN on {reduced} of {len(judged)} judged layers "
                            f"(window: steps ≥ {BURN_IN}, before memorisation)")  # fmt: skip
    if steps is not None:
        out.measured.append("window: " + "; ".join(f"{lab} steps {int(r['min'])}–{int(r['max'])}" for lab, r in steps.iterrows()))
    a_bn, a_plain = accuracies(bn), accuracies(plain)
    eff = difference(a_bn, a_plain)
    out.checks.append(effect_check("BN more accurate", eff, eff.above(), scale=100, unit=" pts"))
    out.measured.append(effect_line("final test acc", "BN", a_bn, "no BN", a_plain, eff, "acc", scale=100, unit=" pts"))
    if judged and reduced > len(judged) / 2:
        out.notes.append(f"BN clearly reduces the relative gradient-based ICS on {reduced} of {len(judged)} judged "
                         "layers: the rebuttal (BN does not reduce ICS) does not reproduce at this scale.")  # fmt: skip
    out.details = "\n".join(lines)
    if ctx.figures and layers:
        from shiftkit.report.figures.grad_ics import pick_layers, plot_grad_ics

        shown = pick_layers(layers)
        plot_grad_ics(df, ctx.out_dir / FIGURE, layers=shown, order=["no BN", "BN"], dpi=ctx.dpi,
                      rows=("rel", "cos", "l2"), burn_in=BURN_IN, judged_layers=judged)  # fmt: skip
        out.figures.append(Figure(FIGURE, (
            "Gradient-based ICS per layer: ‖G − G′‖/‖G‖ (top), cos(G, G′) (middle) and ‖G − G′‖₂ (bottom), where G is the "
            "layer's weight gradient and G′ the same gradient after the layers below took their "
            "update; mean ± sd over seeds, without and with BN; the claim is judged on ‖G − G′‖/‖G‖ from "
            f"step {BURN_IN} until the training loss falls below {LOSS_FLOOR:g}"
            + (f" ({len(shown)} of {len(layers)} layers)." if len(shown) < len(layers) else ".")), claim.id))
    return finish(out)
