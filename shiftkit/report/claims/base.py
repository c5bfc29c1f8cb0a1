"""What a claim is, what evaluating it gives back, and how checks become yes / partly / no."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from shiftkit.report.claims.prereg import Amendment, Preregistration
from shiftkit.report.summary import MIN_SEEDS

YES, PARTLY, NO = "yes", "partly", "no"
INCONCLUSIVE, NOT_RUN = "inconclusive", "not run"


@dataclass(frozen=True)
class Claim:
    """A claim of a paper and how the report decides it.

    Attributes:
        id: ``C1``...``C8`` as in CLAIMS.md.
        title: a few words.
        source: the paper.
        recipe: the recipe whose runs test it (``result.json``'s ``recipe``).
        statement: what the paper claims.
        paper: the paper's number(s), as the paper states them (an input, typed once here).
        rule: the decision rule, in words, as the README prints it.
        evaluate: ``evaluate(claim, cohort, ctx) -> ClaimOutcome``.
        generic: the recipe-level figures drawn beside the claim's own (``"accuracy"``,
            ``"heatmap"``, ``"colorful"``).
        prereg: when the rule was fixed and which seeds decide it.
        amendments: corrections of the rule found wrong after its runs, shown beside its verdict.
    """

    id: str
    title: str
    source: str
    recipe: str
    statement: str
    paper: str
    rule: str
    evaluate: Callable
    generic: tuple[str, ...] = ("heatmap",)
    prereg: Preregistration = field(default_factory=Preregistration)
    amendments: tuple[Amendment, ...] = ()


@dataclass
class Check:
    """One part of a decision rule: passed True/False, or None where the data cannot decide it."""

    name: str
    passed: bool | None
    detail: str = ""


@dataclass
class Figure:
    """A figure written beside the README."""

    file: str
    caption: str
    claim: str = ""


@dataclass
class Context:
    """Options shared by the evaluators."""

    out_dir: Path
    figures: bool = True
    target: float | None = None
    seed: int | None = None
    dpi: int = 150
    stat: str = "kl_gauss"
    subtract_floor: bool = False


@dataclass
class ClaimOutcome:
    """The row of the claims table and the section of the README for one claim."""

    claim: Claim
    status: str
    setup: str = ""
    measured: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    min_seeds: int = 0
    figures: list[Figure] = field(default_factory=list)
    details: str = ""
    notes: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)
    per_run: dict[str, dict[str, float]] = field(default_factory=dict)
    amended: list[tuple[Amendment, "ClaimOutcome"]] = field(default_factory=list)
    """The verdicts of the claim's amendments, beside the pre-registered one."""

    def record(self, path: str, column: str, value: float) -> None:
        """Keep a per-run number the claim was computed from (a ``results.csv`` column)."""
        self.per_run.setdefault(path, {})[f"{self.claim.id}:{column}"] = value

    @property
    def few_seeds(self) -> bool:
        return self.status != NOT_RUN and self.min_seeds < MIN_SEEDS


def status_from(checks: list[Check]) -> str:
    """``yes`` if every decidable check passed, ``no`` if none did, ``partly`` otherwise;
    ``inconclusive`` if no check could be decided."""
    decided = [c.passed for c in checks if c.passed is not None]
    if not decided:
        return INCONCLUSIVE
    if all(decided):
        return YES
    if not any(decided):
        return NO
    return PARTLY


def finish(outcome: ClaimOutcome) -> ClaimOutcome:
    """Set the status from the checks and add the checks to the measured lines."""
    outcome.status = status_from(outcome.checks)
    return outcome


def mark(passed: bool | None) -> str:
    return {True: "✔", False: "✘", None: "–"}[passed]


def checks_text(checks: list[Check]) -> str:
    """``Checks: ✔ name; ✘ name`` for the README's claim section."""
    return "Checks: " + "; ".join(f"{mark(c.passed)} {c.name}" for c in checks)
