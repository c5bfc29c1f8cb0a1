"""When each claim's decision rule was fixed, and which runs it may be decided on.

A rule is the docstring and constants of its claim module (what the report prints). It is
*pre-registered*: committed before the runs that decide it, which use seeds never used before
(earlier runs and pilots used 0-2 and 99). ``RULES_COMMIT`` names that commit; a test checks that
the rule text at that commit equals today's, so a rule cannot change silently. A rule found wrong
after its runs is not edited: an :class:`Amendment` is added beside it, and the report shows the
pre-registered verdict and the amended one with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES_COMMIT = "ebc4faf776c8"
"""The commit that fixed the rules of C1-C8 (filled in by the commit after it)."""
RULES_DATE = "2026-12-01"
C2_RULES_COMMIT = "d1062e3253a2"
"""C2's rule was corrected before any of its deciding runs started (its sweep was queued behind
C1's): a censored steps-to-target of the faster cell no longer counts as "sooner"."""
DECIDING_SEEDS = (100, 101, 102, 103, 104)
"""The fresh seeds of the deciding runs (``seed_everything`` in every recipe's grid)."""


@dataclass(frozen=True)
class Preregistration:
    """Where a claim's rule was fixed and which seeds decide it."""

    commit: str = RULES_COMMIT
    date: str = RULES_DATE
    seeds: tuple[int, ...] = DECIDING_SEEDS

    def text(self) -> str:
        """One line for the report.

        Example:
            >>> Preregistration("abc1234", "2026-12-01", (100, 101)).text()
            'Rule pre-registered at commit `abc1234` (2026-12-01), before the runs that decide it (seeds 100, 101).'
        """
        seeds = ", ".join(str(s) for s in self.seeds)
        return (f"Rule pre-registered at commit `{self.commit}` ({self.date}), before the runs that "
                f"decide it (seeds {seeds}).")  # fmt: skip


@dataclass(frozen=True)
class Amendment:
    """A correction of a pre-registered rule found wrong after its runs: ``evaluate`` has the
    claim evaluator's signature; the report shows its verdict beside the pre-registered one."""

    reason: str
    rule: str
    evaluate: object
