"""Seed statistics and the two comparisons every decision rule is built from.

A group of seeds is summarized by its mean, its **spread** (sample standard deviation, ddof=1)
and its size n. Two groups are compared with:

* :func:`clearly_greater` -- ``a`` beats ``b`` when ``mean_a - mean_b`` exceeds the larger of the
  two spreads (and a minimum gap, where a claim sets one): "better in mean, and by more than the
  seed-to-seed variation";
* :func:`within` -- ``a`` matches ``b`` when ``|mean_a - mean_b|`` is at most the larger of a
  tolerance and the two spreads.

A group of one seed has no spread; it counts as 0 in the comparisons (the table then says the
claim rests on fewer than 3 seeds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

MIN_SEEDS = 3
"""Fewer seeds than this in any compared group and the claims table says so."""


@dataclass(frozen=True)
class Summary:
    """Mean, spread (sample sd) and count of the finite values of a group of seeds."""

    mean: float
    sd: float
    n: int

    @property
    def spread(self) -> float:
        """The sd, 0 where it is undefined (n < 2)."""
        return self.sd if math.isfinite(self.sd) else 0.0


def summarize(values: Iterable[float]) -> Summary:
    """Summary of the finite values (NaN and inf are left out of mean, sd and n).

    Example:
        >>> summarize([1.0, 2.0, 3.0, float("nan")])
        Summary(mean=2.0, sd=1.0, n=3)
    """
    a = np.asarray([float(v) for v in values], dtype=float)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return Summary(float("nan"), float("nan"), 0)
    sd = float(np.std(a, ddof=1)) if a.size > 1 else float("nan")
    return Summary(float(np.mean(a)), sd, int(a.size))


def clearly_greater(a: Summary, b: Summary, min_gap: float = 0.0) -> bool | None:
    """``a.mean - b.mean > max(a.spread, b.spread, min_gap)``; None if either group is empty."""
    if a.n == 0 or b.n == 0:
        return None
    return a.mean - b.mean > max(a.spread, b.spread, min_gap)


def within(a: Summary, b: Summary, tol: float) -> bool | None:
    """``|a.mean - b.mean| <= max(tol, a.spread, b.spread)``; None if either group is empty."""
    if a.n == 0 or b.n == 0:
        return None
    return abs(a.mean - b.mean) <= max(tol, a.spread, b.spread)


def fmt(x: float, digits: int = 4) -> str:
    """A number for the tables: ``digits`` significant digits, ``n/a`` for NaN."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_summary(s: Summary, kind: str = "num") -> str:
    """``mean ± sd (n=k)``; ``kind`` ``acc`` shows percent with 2 decimals, ``steps`` integers.

    Example:
        >>> fmt_summary(Summary(0.91234, 0.0041, 3), "acc")
        '91.23 ± 0.41 % (n=3)'
        >>> fmt_summary(Summary(433.3, 57.7, 3), "steps")
        '433 ± 58 (n=3)'
    """
    if math.isfinite(s.sd) and s.sd <= 1e-12 * max(1.0, abs(s.mean)):
        s = Summary(s.mean, 0.0, s.n)  # rounding noise of equal values, not a spread
    if kind == "acc":
        m, sd = _pct(s.mean, ".2f"), _pct(s.sd, ".2f")
        return f"{m} ± {sd} % (n={s.n})"
    if kind == "steps":
        m = f"{s.mean:.0f}" if math.isfinite(s.mean) else "n/a"
        sd = f"{s.sd:.0f}" if math.isfinite(s.sd) else "n/a"
        return f"{m} ± {sd} (n={s.n})"
    return f"{fmt(s.mean)} ± {fmt(s.sd, 3)} (n={s.n})"


def _pct(x: float, spec: str) -> str:
    return format(100 * x, spec) if math.isfinite(x) else "n/a"
