"""C2, higher learning rates: BN tolerates several times the learning rate and then reaches a target
accuracy in fewer steps. The grid is BN / no BN x ``lr_multiplier`` (see :mod:`.grids`).

Pre-registered rule. Effects are over seeds with a 95% bootstrap interval
(:mod:`~shiftkit.report.effects`); "clearly" = the interval excludes no effect. Yes = every
check passes, no = none, partly otherwise.

A run is *stable* when its loss stayed finite (not diverged) and its final validation accuracy is
at least chance + :data:`STABLE_MARGIN` (500 validation digits: chance is 10 ± 1.3 points, so a
run at chance counts as unstable however finite its loss). Per norm and seed, the *max stable
multiplier* is the largest multiplier whose run of that seed is stable (0 if none).

1. BN tolerates higher rates: BN's mean max stable multiplier minus no BN's is clearly above 0
   (the ratio is reported beside it);
2. BN at x:data:`FAST_MULTIPLIER` (the paper's BN-x5) reaches the target accuracy sooner than no
   BN at x1 (Inception at its own rate): the ratio of mean steps to the target, no BN x1 / BN x5,
   is clearly above 1;
3. BN at x5 reaches it sooner than BN at x1: ratio BN x1 / BN x5 clearly above 1.

Steps to the target are read at the validations (every 10 steps); a seed that never reached it,
or diverged, counts its last validated step (a lower bound). A comparison in which every seed of
both cells reached the target at the first validation cannot be resolved and is not decided.
"""

from __future__ import annotations

import math

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, finish
from shiftkit.report.claims.common import min_n, sooner, start, steps_summary
from shiftkit.report.claims.grids import cells, grid_figure, grid_table
from shiftkit.report.cohort import Cohort

STABLE_MARGIN = 0.1
"""A stable run ends at least this far above chance accuracy."""
FAST_MULTIPLIER = 5.0
"""The BN cell judged for speed (the paper's BN-x5)."""


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    target = cohort.target_accuracy(ctx.target)
    grid, members = cells(cohort, "lr_multiplier", target)
    out.min_seeds = min_n(*members.values()) if members else 0
    if not len(grid) or set(grid["row"]) != {"no BN", "BN"}:
        out.notes.append("C2 needs runs with norm 'none' and 'batch' at several lr_multiplier values.")
        return finish(out)
    max_stable = {}
    for label in ("no BN", "BN"):
        g = grid[(grid["row"] == label) & (grid["n_diverged"] == 0)]
        max_stable[label] = float(g["col"].max()) if len(g) else 0.0
    div = {label: f"{int(g['n_diverged'].sum())}/{int(g['n'].sum())}" for label, g in grid.groupby("row")}
    out.checks.append(Check("max stable LR multiplier larger with BN", max_stable["BN"] > max_stable["no BN"]))
    out.measured.append(f"max stable multiplier: BN x{max_stable['BN']:g} vs no BN x{max_stable['no BN']:g}; "
                        f"diverged seeds: BN {div.get('BN')}, no BN {div.get('no BN')}")  # fmt: skip
    base = float(grid["col"].min())
    if math.isfinite(target):
        s = {k: steps_summary(v, target) for k, v in members.items()}  # a diverged seed did not reach it
        higher = [k for k in s if k[0] == "BN" and k[1] > base and s[k].all_reached]
        best = min(higher, key=lambda k: s[k].summary.mean) if higher else None
        plain_base, bn_base = s.get(("no BN", base)), s.get(("BN", base))
        if best is None:
            out.checks.append(Check(f"BN above x{base:g} reaches {100 * target:g}% sooner than no BN x{base:g}", False))
            out.checks.append(Check(f"... and sooner than BN x{base:g}", False))
            out.measured.append(f"steps to {100 * target:g}%: no BN cell above x{base:g} reached it with every seed")
        else:
            out.checks.append(Check(f"BN x{best[1]:g} reaches {100 * target:g}% sooner than no BN x{base:g}",
                                    sooner(s[best], plain_base) if plain_base else None))  # fmt: skip
            out.checks.append(Check(f"BN x{best[1]:g} sooner than BN x{base:g}", sooner(s[best], bn_base) if bn_base else None))
            out.measured.append(
                f"steps to {100 * target:g}%: BN x{best[1]:g} {s[best].text()} vs no BN x{base:g} "
                f"{plain_base.text() if plain_base else 'n/a'} vs BN x{base:g} {bn_base.text() if bn_base else 'n/a'}")
    else:
        out.notes.append("No target accuracy in the records (give --target): steps-to-target not judged.")
    out.numbers.update(max_stable_bn=max_stable["BN"], max_stable_plain=max_stable["no BN"], target=target)
    out.details = grid_table(grid, "LR multiplier")
    grid_figure(out, cohort, ctx, grid, "learning-rate multiplier (× base LR)", target, "C2_lr_grid.png",
                 "Final accuracy and steps to the target per learning-rate multiplier, with and without BN "
                 "(mean over seeds; hatched: every seed diverged).")  # fmt: skip
    return finish(out)
