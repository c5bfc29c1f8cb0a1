"""Effects with intervals: how every pre-registered decision rule compares two groups of seeds.

An *effect* is the difference (``a - b``) or the ratio (``a / b``) of the means of two groups of
per-seed values, with a percentile bootstrap interval: each group is resampled with replacement,
independently (the runs of two variants share seed numbers but nothing else), ``N_BOOT`` times,
from a generator with a fixed seed, so a report rebuilds to the same digits. "Clearly" in a rule
means the interval excludes no effect (0 for a difference, 1 for a ratio).

The values are sorted before resampling, so an interval does not depend on the order in which
the runs were read. Non-finite values are left out before resampling; a group with fewer than two finite values has
no interval (NaN bounds, never "clearly").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

N_BOOT = 10_000
"""Bootstrap resamples per effect."""
LEVEL = 0.95
"""Coverage of the interval."""
BOOT_SEED = 0
"""The bootstrap generator's seed: fixed, so an effect is a function of its inputs."""


@dataclass(frozen=True)
class Effect:
    """``estimate`` of ``a - b`` (kind ``difference``) or ``a / b`` (kind ``ratio``) with its
    bootstrap interval ``[lo, hi]`` and the group sizes."""

    kind: str
    estimate: float
    lo: float
    hi: float
    n_a: int
    n_b: int

    @property
    def null(self) -> float:
        """The value of no effect: 0 for a difference, 1 for a ratio (a mean has none: NaN)."""
        return {"difference": 0.0, "ratio": 1.0}.get(self.kind, float("nan"))

    @property
    def defined(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def above(self, bound: float | None = None) -> bool | None:
        """The whole interval lies above ``bound`` (default: no effect); None without an interval."""
        if not self.defined:
            return None
        return self.lo > (self.null if bound is None else bound)

    def below(self, bound: float | None = None) -> bool | None:
        """The whole interval lies below ``bound`` (default: no effect); None without an interval."""
        if not self.defined:
            return None
        return self.hi < (self.null if bound is None else bound)

    def text(self, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
        """``+1.23 [0.45, 2.01]`` (difference, times ``scale``) or ``2.8x [1.9, 4.1]`` (ratio).

        Example:
            >>> Effect("ratio", 2.0, 1.5, 3.0, 5, 5).text()
            '2x [1.5, 3]'
            >>> Effect("difference", 0.012, -0.004, 0.03, 5, 5).text(scale=100, unit=" pts")
            '+1.2 pts [-0.4, 3]'
        """

        def f(x: float) -> str:
            return "n/a" if not math.isfinite(x) else f"{x * (1 if self.kind == 'ratio' else scale):.{digits}g}"

        if not math.isfinite(self.estimate):
            return "n/a"
        if self.kind == "ratio":
            return f"{f(self.estimate)}x [{f(self.lo)}, {f(self.hi)}]"
        if self.kind == "mean":
            return f"{self.estimate * scale:.{digits}g}{unit} [{self.lo * scale:.{digits}g}, {self.hi * scale:.{digits}g}]"
        est = self.estimate * scale
        sign = "+" if math.isfinite(est) and est >= 0 else ""
        return f"{sign}{f(self.estimate)}{unit} [{f(self.lo)}, {f(self.hi)}]"


def _finite(values: Iterable[float]) -> np.ndarray:
    """The finite values, sorted: the resamples then depend on the values, not on the order the
    runs were read in (a report rebuilt from copied records gives the same interval)."""
    a = np.asarray([float(v) for v in values], dtype=float)
    return np.sort(a[np.isfinite(a)])


def _boot_means(rng: np.random.Generator, a: np.ndarray, n_boot: int) -> np.ndarray:
    idx = rng.integers(0, a.size, size=(n_boot, a.size))
    return a[idx].mean(axis=1)


def _effect(kind: str, a: Iterable[float], b: Iterable[float], n_boot: int, level: float, seed: int) -> Effect:
    a, b = _finite(a), _finite(b)
    nan = float("nan")
    if a.size == 0 or b.size == 0:
        return Effect(kind, nan, nan, nan, int(a.size), int(b.size))
    op = np.subtract if kind == "difference" else np.divide
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(op(a.mean(), b.mean()))
        if a.size < 2 or b.size < 2:
            return Effect(kind, estimate, nan, nan, int(a.size), int(b.size))
        rng = np.random.default_rng(seed)
        stats = op(_boot_means(rng, a, n_boot), _boot_means(rng, b, n_boot))
    return Effect(kind, estimate, *_percentiles(stats, level), int(a.size), int(b.size))


def _percentiles(stats: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` interval of the bootstrap statistics."""
    tail = (1 - level) / 2
    with np.errstate(invalid="ignore"):  # an infinite ratio (a zero mean below) has no interval
        lo, hi = np.quantile(stats, [tail, 1 - tail])
    return float(lo), float(hi)


def difference(a: Iterable[float], b: Iterable[float], n_boot: int = N_BOOT, level: float = LEVEL,
               seed: int = BOOT_SEED) -> Effect:  # fmt: skip
    """``mean(a) - mean(b)`` with a percentile bootstrap interval.

    Example:
        >>> e = difference([0.95, 0.96, 0.94, 0.95, 0.96], [0.90, 0.91, 0.89, 0.90, 0.92])
        >>> round(e.estimate, 3), e.above()
        (0.048, True)
    """
    return _effect("difference", a, b, n_boot, level, seed)


def ratio(a: Iterable[float], b: Iterable[float], n_boot: int = N_BOOT, level: float = LEVEL,
          seed: int = BOOT_SEED) -> Effect:  # fmt: skip
    """``mean(a) / mean(b)`` with a percentile bootstrap interval (values should be positive).

    Example:
        >>> e = ratio([2.0, 2.2, 1.8], [1.0, 1.1, 0.9])
        >>> round(e.estimate, 2), e.above()
        (2.0, True)
    """
    return _effect("ratio", a, b, n_boot, level, seed)


def mean(values: Iterable[float], n_boot: int = N_BOOT, level: float = LEVEL, seed: int = BOOT_SEED) -> Effect:
    """The mean of one group with a percentile bootstrap interval (kind ``mean``: compare it with a
    bound, ``above(bound)`` / ``below(bound)``; ``n_b`` is 0).

    Example:
        >>> e = mean([0.91, 0.93, 0.92, 0.94, 0.90])
        >>> round(e.estimate, 2), e.above(0.85), e.below(0.85)
        (0.92, True, False)
    """
    a = _finite(values)
    nan = float("nan")
    if a.size == 0:
        return Effect("mean", nan, nan, nan, 0, 0)
    if a.size < 2:
        return Effect("mean", float(a.mean()), nan, nan, int(a.size), 0)
    boot = _boot_means(np.random.default_rng(seed), a, n_boot)
    return Effect("mean", float(a.mean()), *_percentiles(boot, level), int(a.size), 0)
