"""Grids of BN / no BN x a knob (C2 learning-rate multipliers, C3 init scales).

A *cell* is the runs of one normalization (``none`` or ``batch``) at one value of the knob, over
seeds. Per cell: seeds, diverged seeds, final accuracy (mean and sd over the seeds that did not
diverge) and steps to the target accuracy (mean over the seeds that did not diverge, an unreached
seed counting its last logged step).
"""

from __future__ import annotations

import math

import pandas as pd

from shiftkit.report.claims.base import Figure
from shiftkit.report.claims.common import Pairs, steps_summary
from shiftkit.report.cohort import Cohort
from shiftkit.report.summary import fmt, summarize

FAMILIES = (("none", "no BN"), ("batch", "BN"))


def cells(cohort: Cohort, knob: str, target: float) -> tuple[pd.DataFrame, dict]:
    """One row per (family, knob value) with the grid's numbers, and the cells' run lists."""
    rows, members = [], {}
    for norm, label in FAMILIES:
        pairs = cohort.select(lambda f: f.norm == norm)
        for value in sorted({getattr(f, knob) for _, f in pairs}):
            cell: Pairs = [(r, f) for r, f in pairs if getattr(f, knob) == value]
            ok = [f for _, f in cell if not f.diverged]
            acc = summarize(f.final_acc for f in ok)
            steps = steps_summary([(r, f) for r, f in cell if not f.diverged], target)
            rows.append(dict(row=label, col=float(value), n=len(cell),
                             n_diverged=len(cell) - len(ok), acc_mean=acc.mean, acc_sd=acc.sd,
                             steps_mean=steps.summary.mean, steps_sd=steps.summary.sd,
                             n_reached=steps.reached,
                             min_acc=min((f.final_acc for f in ok), default=float("nan"))))  # fmt: skip
            members[(label, float(value))] = cell
    return pd.DataFrame(rows), members


def grid_figure(out, cohort, ctx, grid, knob_label, target, file, caption):
    if ctx.figures and len(grid):
        from shiftkit.report.figures.grid import plot_outcome_grid

        plot_outcome_grid(grid, ctx.out_dir / file, row_order=["no BN", "BN"], col_label=knob_label,
                          target=target, title=f"{out.claim.id}: {out.claim.title}", dpi=ctx.dpi)  # fmt: skip
        out.figures.append(Figure(file, caption, out.claim.id))


def grid_table(grid: pd.DataFrame, knob: str) -> str:
    stable = "n_stable" in grid.columns
    lines = [f"| family | {knob} | seeds | diverged |" + (" stable |" if stable else "")
             + " final acc. (%) | steps to target | reached |",
             "|---|---|---|---|" + ("---|" if stable else "") + "---|---|---|"]  # fmt: skip
    for _, c in grid.iterrows():
        acc = "n/a" if not math.isfinite(c["acc_mean"]) else f"{100 * c['acc_mean']:.2f} ± {fmt(100 * c['acc_sd'], 2)}"
        steps = f"{c['steps_mean']:.0f}" if math.isfinite(c["steps_mean"]) else "n/a"
        if math.isfinite(c["steps_mean"]) and c["n_reached"] < c["n"] - c["n_diverged"]:
            steps = f"≥ {steps}"  # an unreached seed counts its last step: a lower bound
        stable_cell = f" {c['n_stable']}/{c['n']} |" if stable else ""
        lines.append(f"| {c['row']} | {c['col']:g} | {c['n']} | {c['n_diverged']} |{stable_cell} {acc} | "
                     f"{steps} | {c['n_reached']}/{c['n'] - c['n_diverged']} |")  # fmt: skip
    return "\n".join(lines)
