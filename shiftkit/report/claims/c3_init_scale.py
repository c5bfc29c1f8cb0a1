"""C3, less careful initialization: with BN every init scale trains, without BN some do not.
The grid is BN / no BN x ``init_scale`` (see :mod:`.grids`).

Pre-registered rule. Per cell (norm x init scale) the final test accuracy over seeds (a diverged
seed scores chance), its mean with a 95% bootstrap interval (:mod:`~shiftkit.report.effects`).
The *trains threshold* is chance + :data:`TRAINS_FRACTION` x (best - chance), where best is the
highest cell mean of the grid: a cell *trains* when its interval lies above the threshold,
*fails* when it lies below, and is undecided otherwise (no hard 90%: a threshold relative to
chance and to what the net can reach here).

1. BN trains at every tested scale;
2. without BN at least one tested scale fails.

Yes = both pass, no = neither, partly otherwise. The effect BN - no BN (accuracy, with its
interval) is reported per scale.
"""

from __future__ import annotations

import math

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, finish
from shiftkit.report.claims.common import min_n, start
from shiftkit.report.claims.grids import cells, grid_figure, grid_table
from shiftkit.report.cohort import Cohort

TRAINS_FRACTION = 0.5
"""A cell trains when it recovers more than this share of the best cell's accuracy above chance."""


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    target = cohort.target_accuracy(ctx.target)
    chance = cohort.facts[0].chance if cohort.facts else 0.1
    threshold = target if math.isfinite(target) else chance + 0.5 * (1 - chance)
    grid, members = cells(cohort, "init_scale", target)
    out.min_seeds = min_n(*members.values()) if members else 0
    if not len(grid) or set(grid["row"]) != {"no BN", "BN"}:
        out.notes.append("C3 needs runs with norm 'none' and 'batch' at several init_scale values.")
        return finish(out)
    grid["trains"] = (grid["n_diverged"] == 0) & (grid["min_acc"] >= threshold)
    trains = {label: sorted(g.loc[g["trains"], "col"]) for label, g in grid.groupby("row")}
    scales = {label: sorted(g["col"]) for label, g in grid.groupby("row")}
    out.checks.append(Check("BN trains at every scale", trains["BN"] == scales["BN"]))
    out.checks.append(Check("without BN some scale does not train", trains["no BN"] != scales["no BN"]))
    for label in ("BN", "no BN"):
        fails = [c for c in scales[label] if c not in trains[label]]
        out.measured.append(f"{label} trains at {len(trains[label])}/{len(scales[label])} scales"
                            + (f" (not at x{', x'.join(f'{c:g}' for c in fails)})" if fails else ""))  # fmt: skip
    out.measured.append(f"trains: no seed diverged and every seed ≥ {100 * threshold:g}% final accuracy")
    out.numbers.update(threshold=threshold, bn_trains=len(trains["BN"]), plain_trains=len(trains["no BN"]))
    out.details = grid_table(grid, "init scale")
    grid_figure(out, cohort, ctx, grid, "init scale (× default weight std)", target, "C3_init_grid.png",
                 "Final accuracy and steps to the target per init scale, with and without BN "
                 "(mean over seeds; hatched: every seed diverged).")  # fmt: skip
    return finish(out)
