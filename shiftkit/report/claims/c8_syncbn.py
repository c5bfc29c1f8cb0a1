"""C8, per-device vs synced BN statistics (Goyal et al. 2017; Hoffer et al. 2017).

Runs are *synced* when BN normalizes over the global batch (``norm: syncbatch``, or ``batch`` on
one process without a ghost group size) and *per-device* when it normalizes over a per-device
batch (``batch`` with ``ghost_batch_size``, or ``batch`` on several devices). The per-device batch
is ``per_device_batch`` if the record or config gives it, else ``ghost_batch_size``, else
``batch_size``. Each per-device batch size is compared with the synced runs of the same global
batch (all synced runs if none match). Accuracies are final accuracies, a diverged seed scoring
chance.

Pre-registered rule (per-device batch 4, 8, 16 and 32 on 2 ranks). The effect is synced minus
per-device accuracy over seeds with a 95% bootstrap interval (:mod:`~shiftkit.report.effects`).
One check per tested size:

* per-device batch <= :data:`SMALL`: synced is clearly more accurate (the interval lies above 0)
  and by at least :data:`TOLERANCE` (the estimate);
* per-device batch >= :data:`LARGE`: within about a point of synced -- the interval's upper
  bound is below :data:`TOLERANCE`.

Sizes in between are reported, not judged. Yes = all checks pass, no = none, partly otherwise.
"""

from __future__ import annotations

import pandas as pd

from shiftkit.report.claims.base import Claim, ClaimOutcome, Context, Figure, finish, mark
from shiftkit.report.claims.common import effect_check, effect_line, start
from shiftkit.report.cohort import Cohort
from shiftkit.report.effects import difference
from shiftkit.report.summary import fmt_summary, summarize

SMALL, LARGE = 4, 16
TOLERANCE = 0.015
""""About a point" of accuracy (one and a half: the validation set has 500 digits)."""
FIGURE = "C8_syncbn.png"


def evaluate(claim: Claim, cohort: Cohort, ctx: Context) -> ClaimOutcome:
    out = start(claim, cohort)
    local = pd.DataFrame([dict(per_device_batch=f.per_device_batch, global_batch=f.global_batch, seed=f.seed,
                               acc=f.acc_or_chance) for f in cohort.facts if f.norm == "batch" and not f.synced],
                         columns=["per_device_batch", "global_batch", "seed", "acc"])  # fmt: skip
    synced = pd.DataFrame([dict(global_batch=f.global_batch, seed=f.seed, acc=f.acc_or_chance)
                           for f in cohort.facts if f.synced], columns=["global_batch", "seed", "acc"])  # fmt: skip
    if not len(local) or not len(synced):
        out.notes.append("C8 needs per-device BN runs (ghost_batch_size or several devices) and synced BN runs.")
        out.min_seeds = 0
        return finish(out)
    seeds = []
    lines = ["| per-device batch | global batch | per-device BN acc. (%) | synced BN acc. (%) | synced − per-device | judged |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for (pdb, gb), g in local.groupby(["per_device_batch", "global_batch"]):
        ref = synced[synced["global_batch"] == gb]
        ref = ref if len(ref) else synced
        a, s = summarize(g["acc"]), summarize(ref["acc"])
        seeds += [a.n, s.n]
        eff = difference(ref["acc"], g["acc"])
        text = dict(scale=100, unit=" pts")
        if pdb <= SMALL:
            worse = eff.above()
            passed = None if worse is None else bool(worse and eff.estimate >= TOLERANCE)
            check = effect_check(f"per-device batch {pdb:g} clearly worse than synced (by ≥ {100 * TOLERANCE:g} pts)",
                                 eff, passed, **text)  # fmt: skip
        elif pdb >= LARGE:
            check = effect_check(f"per-device batch {pdb:g} within {100 * TOLERANCE:g} pts of synced", eff,
                                 eff.below(TOLERANCE), **text)  # fmt: skip
        else:
            check = None
        if check is not None:
            out.checks.append(check)
        out.measured.append(effect_line(f"batch {pdb:g}/device" + ("" if check else " (reported)"), "synced",
                                        list(ref["acc"]), "per-device", list(g["acc"]), eff, "acc", **text))  # fmt: skip
        lines.append(f"| {pdb:g} | {gb:g} | {fmt_summary(a, 'acc')} | {fmt_summary(s, 'acc')} | "
                     f"{eff.text(scale=100, unit=' pts')} | {mark(check.passed) if check else 'not judged'} |")  # fmt: skip
    out.min_seeds = min(seeds) if seeds else 0
    if not out.checks:
        out.notes.append(f"No per-device batch <= {SMALL} or >= {LARGE} was run.")
    out.details = "\n".join(lines)
    if ctx.figures:
        from shiftkit.report.figures.syncbn import plot_syncbn

        plot_syncbn(local, synced, ctx.out_dir / FIGURE, small=SMALL, large=LARGE, tolerance=TOLERANCE, dpi=ctx.dpi)
        out.figures.append(Figure(FIGURE, (
            "Final accuracy against the per-device batch (the number of examples each BN layer "
            "normalizes over), mean ± sd over seeds; the band is synced BN over the global batch."), claim.id))
    return finish(out)
