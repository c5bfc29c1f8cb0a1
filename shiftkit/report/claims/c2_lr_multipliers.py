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
or diverged, counts its last validated step (a lower bound). BN x5 is sooner only if every one of
its seeds reached the target (a censored value of the faster cell would bias the ratio its way);
a comparison in which every seed of both cells reached the target at the first validation cannot
be resolved and is not decided.
"""

from __future__ import annotations

import math

from shiftkit.report.claims.base import Check, Claim, ClaimOutcome, Context, finish
from shiftkit.report.claims.common import effect_check, effect_line, min_n, start, steps_summary
from shiftkit.report.claims.grids import cells, grid_figure, grid_table
from shiftkit.report.cohort import Cohort
from shiftkit.report.effects import difference, ratio
from shiftkit.report.facts import accuracy_curve
from shiftkit.report.summary import summarize

STABLE_MARGIN = 0.1
"""A stable run ends at least this far above chance accuracy."""
FAST_MULTIPLIER = 5.0
"""The BN cell judged for speed (the paper's BN-x5)."""


def stable(run, f) -> bool:
    """Finite loss and a final validation accuracy at least STABLE_MARGIN above chance."""
    if f.diverged:
        return False
    curve, _ = accuracy_curve(run)
    final = float(curve["acc"].iloc[-1]) if len(curve) else f.final_acc
    return math.isfinite(final) and final >= f.chance + STABLE_MARGIN


def max_stable(members: dict, label: str) -> dict[int, float]:
    """Per seed of family ``label``: the largest multiplier whose run is stable (0 if none)."""
    best: dict[int, float] = {}
    for (row, mult), pairs in members.items():
        if row != label:
            continue
        for run, f in pairs:
            best.setdefault(f.seed, 0.0)
            if stable(run, f):
                best[f.seed] = max(best[f.seed], float(mult))
    return best


def first_validation(pairs) -> float:
    """The earliest validation step of the runs (NaN without curves)."""
    steps = [float(c["step"].iloc[0]) for c, _ in (accuracy_curve(r) for r, _ in pairs) if len(c)]
    return min(steps) if steps else float("nan")


def speed_check(name: str, slow: tuple, fast: tuple, s: dict, members: dict, target: float):
    """Ratio of mean steps to the target, ``slow`` cell / ``fast`` cell; undecided when a cell is
    missing or every seed of both cells reached the target at the first validation."""
    if slow not in s or fast not in s:
        return Check(name, None, "cell not run"), None
    first = first_validation(members[slow] + members[fast])
    unresolved = all(v <= first for v in s[slow].values + s[fast].values)
    eff = ratio(s[slow].values, s[fast].values)
    if unresolved:
        return Check(name, None, f"unresolved: every seed reached {100 * target:g}% at the first validation"), eff
    if not s[fast].all_reached:
        return effect_check(name, eff, False), eff
    return effect_check(name, eff, eff.above()), eff


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    target = cohort.target_accuracy(ctx.target)
    grid, members = cells(cohort, "lr_multiplier", target)
    out.min_seeds = min_n(*members.values()) if members else 0
    if not len(grid) or set(grid["row"]) != {"no BN", "BN"}:
        out.notes.append("C2 needs runs with norm 'none' and 'batch' at several lr_multiplier values.")
        return finish(out)
    for pairs in members.values():
        for run, f in pairs:
            out.record(f.path, "stable", float(stable(run, f)))
    grid["n_stable"] = [sum(stable(r, f) for r, f in members[(row, col)]) for row, col in zip(grid["row"], grid["col"])]

    # 1. max stable multiplier per seed.
    ms = {label: max_stable(members, label) for label in ("no BN", "BN")}
    b, p = list(ms["BN"].values()), list(ms["no BN"].values())
    eff = difference(b, p)
    out.checks.append(effect_check("max stable LR multiplier larger with BN", eff, eff.above()))
    rat = ratio(b, p)
    out.measured.append(effect_line("max stable multiplier (stable = finite, ≥ chance + "
                                    f"{100 * STABLE_MARGIN:g} pts)", "BN", b, "no BN", p, eff)
                        + f"; ratio {rat.text()}")  # fmt: skip
    div = {label: f"{int(g['n_diverged'].sum())}/{int(g['n'].sum())}" for label, g in grid.groupby("row")}
    unstable = {label: f"{int((g['n'] - g['n_stable']).sum())}/{int(g['n'].sum())}" for label, g in grid.groupby("row")}
    out.measured.append(f"unstable runs: BN {unstable.get('BN')}, no BN {unstable.get('no BN')} "
                        f"(of which non-finite: BN {div.get('BN')}, no BN {div.get('no BN')})")  # fmt: skip

    # 2, 3. steps to the target: BN x5 vs no BN x1 and vs BN x1.
    if math.isfinite(target):
        s = {k: steps_summary(v, target) for k, v in members.items()}  # a diverged seed did not reach it
        fast, base = ("BN", FAST_MULTIPLIER), 1.0
        for slow, name in (((("no BN", base)), f"BN x{FAST_MULTIPLIER:g} reaches {100 * target:g}% sooner than no BN x1"),
                           ((("BN", base)), f"BN x{FAST_MULTIPLIER:g} sooner than BN x1")):
            check, eff = speed_check(name, slow, fast, s, members, target)
            out.checks.append(check)
            if eff is not None:
                out.measured.append(f"steps to {100 * target:g}%: {slow[0]} x{slow[1]:g} {s[slow].text()} vs BN "
                                    f"x{FAST_MULTIPLIER:g} {s[fast].text()}; ratio {eff.text()}")  # fmt: skip
    else:
        out.notes.append("No target accuracy in the records (give --target): steps-to-target not judged.")
    out.numbers.update(target=target, max_stable_bn=summarize(b).mean, max_stable_plain=summarize(p).mean)
    out.details = grid_table(grid, "LR multiplier")
    grid_figure(out, cohort, ctx, grid, "learning-rate multiplier (× base LR)", target, "C2_lr_grid.png",
                 "Final accuracy and steps to the target per learning-rate multiplier, with and without BN "
                 "(mean over seeds; hatched: every seed diverged).")  # fmt: skip
    return finish(out)
