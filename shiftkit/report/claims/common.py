"""Pieces several decision rules share: picking the BN / no-BN runs, steps-to-target with
censoring, and the measured-line formats."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from shiftkit.records import Run
from shiftkit.report.claims.base import Check, Claim, ClaimOutcome
from shiftkit.report.cohort import Cohort, describe_setup
from shiftkit.report.effects import Effect
from shiftkit.report.facts import RunFacts, accuracy_curve, steps_to_target
from shiftkit.report.summary import Summary, clearly_greater, fmt_summary, summarize

Pairs = list[tuple[Run, RunFacts]]


def with_norm(cohort: Cohort, norm: str, **match: float) -> Pairs:
    """Runs of ``cohort`` with normalization ``norm`` (and the given fact values)."""
    return cohort.select(lambda f: f.norm == norm and all(getattr(f, k) == v for k, v in match.items()))


def acc_summary(pairs: Pairs) -> Summary:
    """Final accuracy over seeds, a diverged run scoring chance (see ``RunFacts.acc_or_chance``)."""
    return summarize(f.acc_or_chance for _, f in pairs)


@dataclass
class StepsToTarget:
    """Steps to the target accuracy over seeds: a seed that never reached it, or diverged, counts
    its last logged step (a lower bound), so the mean is a lower bound when ``reached < n``."""

    summary: Summary
    reached: int
    n: int
    values: list[float] = field(default_factory=list)
    """Per run, in the order of the runs given (censored values included)."""

    @property
    def all_reached(self) -> bool:
        return self.n > 0 and self.reached == self.n

    def text(self) -> str:
        return steps_text(self.values, self.reached)


def steps_summary(pairs: Pairs, target: float) -> StepsToTarget:
    values, reached = [], 0
    for run, f in pairs:
        s = steps_to_target(run, target) if math.isfinite(target) and not f.diverged else float("nan")
        if math.isfinite(s):
            reached += 1
        else:
            curve, _ = accuracy_curve(run)
            s = float(curve["step"].iloc[-1]) if len(curve) else f.steps
        values.append(s)
    return StepsToTarget(summarize(values), reached, len(pairs), values)


def sooner(a: StepsToTarget, b: StepsToTarget) -> bool | None:
    """``a`` reaches the target sooner than ``b``: every seed of ``a`` reached it, and ``b``'s
    (censored) mean exceeds ``a``'s by more than the larger spread."""
    if a.n == 0 or b.n == 0:
        return None
    return a.all_reached and bool(clearly_greater(b.summary, a.summary))


def vs(quantity: str, a_label: str, a: Summary, b_label: str, b: Summary, kind: str = "num") -> str:
    """A measured line: ``quantity: A mean ± sd (n=k) vs B mean ± sd (n=k)``."""
    return f"{quantity}: {a_label} {fmt_summary(a, kind)} vs {b_label} {fmt_summary(b, kind)}"


def min_n(*groups: Pairs) -> int:
    """Smallest number of seeds among the groups (0 if any is empty)."""
    return min((len({f.seed for _, f in g}) for g in groups), default=0)


def start(claim: Claim, cohort: Cohort) -> ClaimOutcome:
    """An outcome for ``claim`` with the setup of ``cohort``; the evaluator fills in the rest."""
    return ClaimOutcome(claim, "", setup=describe_setup(cohort))


def plain_and_bn(cohort: Cohort, out: ClaimOutcome) -> tuple[Pairs, Pairs] | None:
    """The runs without BN (norm ``none``) and with BN (norm ``batch``); sets ``out.min_seeds``.
    None, with a note, when either is missing."""
    plain, bn = with_norm(cohort, "none"), with_norm(cohort, "batch")
    out.min_seeds = min_n(plain, bn)
    if not plain or not bn:
        out.notes.append(f"{out.claim.id} needs runs with norm 'none' and with norm 'batch'.")
        return None
    return plain, bn


# ----------------------------------------------------------------------------- pre-registered rules


def accuracies(pairs: Pairs) -> list[float]:
    """Final accuracy per run (a diverged run scores chance), in the order of ``pairs``."""
    return [f.acc_or_chance for _, f in pairs]


def after_burn_in(history: pd.DataFrame | None, burn_in: float) -> pd.DataFrame | None:
    """The rows of a history (or metrics frame) measured at ``step >= burn_in`` and after step 0:
    the first probe and a warm-up transient never decide a rule."""
    if history is None:
        return None
    return history[(history["step"] >= burn_in) & (history["step"] > 0)]


def effect_check(name: str, effect: Effect, passed: bool | None, **text) -> Check:
    """A check whose detail is the effect with its interval."""
    return Check(name, passed, effect.text(**text))


def effect_line(quantity: str, a_label: str, a: list[float], b_label: str, b: list[float], effect: Effect,
                kind: str = "num", **text) -> str:  # fmt: skip
    """``quantity: A mean ± sd (n) vs B mean ± sd (n); A − B = est [lo, hi]`` (or ``A / B``)."""
    op = "−" if effect.kind == "difference" else "/"
    return (f"{vs(quantity, a_label, summarize(a), b_label, summarize(b), kind)}; "
            f"{a_label} {op} {b_label} = {effect.text(**text)}")


def steps_text(values: list[float], reached: int) -> str:
    """Mean steps over seeds; ``≥`` where some seed never reached the target (its last step is a
    lower bound)."""
    s = fmt_summary(summarize(values), "steps")
    return s if reached == len(values) else f"≥ {s}, {reached}/{len(values)} reached"
