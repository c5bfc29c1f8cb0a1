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

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, finish
from shiftkit.report.claims.common import accuracies, min_n, start
from shiftkit.report.claims.grids import cells, grid_figure, grid_table
from shiftkit.report.cohort import Cohort
from shiftkit.report.effects import difference, mean
from shiftkit.report.summary import summarize

TRAINS_FRACTION = 0.5
"""A cell trains when it recovers more than this share of the best cell's accuracy above chance."""


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    target = cohort.target_accuracy(ctx.target)
    chance = cohort.facts[0].chance if cohort.facts else 0.1
    grid, members = cells(cohort, "init_scale", target)
    out.min_seeds = min_n(*members.values()) if members else 0
    if not len(grid) or set(grid["row"]) != {"no BN", "BN"}:
        out.notes.append("C3 needs runs with norm 'none' and 'batch' at several init_scale values.")
        return finish(out)
    acc = {key: accuracies(pairs) for key, pairs in members.items()}
    best = max(summarize(v).mean for v in acc.values())
    threshold = chance + TRAINS_FRACTION * (best - chance)
    verdict = {}
    for key, values in acc.items():
        m = mean(values)
        verdict[key] = "trains" if m.above(threshold) else "fails" if m.below(threshold) else "undecided"
        for (_, f), v in zip(members[key], values):
            out.record(f.path, "final_acc", v)
    grid["trains"] = [verdict[(row, col)] for row, col in zip(grid["row"], grid["col"])]
    scales = {label: sorted(g["col"]) for label, g in grid.groupby("row")}
    bn_trains = [c for c in scales["BN"] if verdict[("BN", c)] == "trains"]
    plain_fails = [c for c in scales["no BN"] if verdict[("no BN", c)] == "fails"]
    out.checks.append(Check("BN trains at every scale", bn_trains == scales["BN"],
                            f"{len(bn_trains)}/{len(scales['BN'])} scales"))  # fmt: skip
    out.checks.append(Check("without BN some scale fails", bool(plain_fails),
                            f"fails at {', '.join(f'x{c:g}' for c in plain_fails) or 'none'}"))  # fmt: skip
    out.measured.append(f"trains threshold: chance + {TRAINS_FRACTION:g} × (best − chance) = "
                        f"{100 * threshold:.1f}% (best cell {100 * best:.1f}%)")  # fmt: skip
    for label in ("BN", "no BN"):
        states = ", ".join(f"x{c:g} {verdict[(label, c)]}" for c in scales[label])
        out.measured.append(f"{label}: {states}")
    for c in scales["BN"]:
        if ("no BN", c) in acc:
            eff = difference(acc[("BN", c)], acc[("no BN", c)])
            out.measured.append(f"x{c:g}: BN − no BN final test acc = {eff.text(scale=100, unit=' pts')}")
    out.numbers.update(threshold=threshold, bn_trains=len(bn_trains), plain_fails=len(plain_fails))
    out.details = grid_table(grid, "init scale")
    grid_figure(out, cohort, ctx, grid, "init scale (× default weight std)", target, "C3_init_grid.png",
                 "Final accuracy and steps to the target per init scale, with and without BN "
                 "(mean over seeds; hatched: every seed diverged).")  # fmt: skip
    return finish(out)
