"""Effects with bootstrap intervals, checked against scipy's bootstrap (an independent oracle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from shiftkit.report.effects import difference, mean, ratio


def _scipy_interval(a, b, statistic):
    res = stats.bootstrap((np.asarray(a), np.asarray(b)), statistic, method="percentile", n_resamples=20_000,
                          vectorized=True, axis=-1, random_state=np.random.default_rng(7))  # fmt: skip
    return res.confidence_interval.low, res.confidence_interval.high


A = [0.951, 0.948, 0.960, 0.944, 0.955]
B = [0.912, 0.930, 0.905, 0.921, 0.917]


def test_difference_matches_scipy_percentile_bootstrap():
    e = difference(A, B)
    lo, hi = _scipy_interval(A, B, lambda a, b, axis=-1: a.mean(axis) - b.mean(axis))
    assert e.estimate == pytest.approx(np.mean(A) - np.mean(B), rel=1e-12)
    assert e.lo == pytest.approx(lo, abs=1.5e-3) and e.hi == pytest.approx(hi, abs=1.5e-3)
    assert e.above() is True and e.below() is False


def test_ratio_matches_scipy_percentile_bootstrap():
    e = ratio(A, B)
    lo, hi = _scipy_interval(A, B, lambda a, b, axis=-1: a.mean(axis) / b.mean(axis))
    assert e.estimate == pytest.approx(np.mean(A) / np.mean(B), rel=1e-12)
    assert e.lo == pytest.approx(lo, abs=2e-3) and e.hi == pytest.approx(hi, abs=2e-3)


def test_no_effect_when_groups_overlap():
    e = difference([0.90, 0.95, 0.85, 0.92, 0.88], [0.91, 0.89, 0.94, 0.86, 0.90])
    assert e.lo < 0 < e.hi and e.above() is False and e.below() is False


def test_interval_is_a_function_of_the_inputs():
    assert difference(A, B) == difference(list(A), list(B))


def test_one_seed_has_no_interval_and_never_decides():
    e = difference([0.9], B)
    assert math.isnan(e.lo) and e.above() is None and e.below() is None
    assert e.estimate == pytest.approx(0.9 - np.mean(B))


def test_non_finite_values_are_left_out():
    e = mean([0.5, float("nan"), 0.7, float("inf")])
    assert e.n_a == 2 and e.estimate == pytest.approx(0.6)


def test_mean_interval_against_bound():
    e = mean([0.91, 0.93, 0.92, 0.94, 0.90])
    assert e.above(0.5) is True and e.below(0.95) is True and e.above(0.92) is False


def test_report_saturation_threshold_is_the_monitors():
    from shiftkit.report.cohort import SIGMOID_SATURATION
    from shiftkit.stats.activation import SATURATION_THRESHOLDS

    assert SIGMOID_SATURATION == SATURATION_THRESHOLDS["Sigmoid"]


def test_interval_does_not_depend_on_the_order_of_the_runs():
    assert difference(A, B) == difference(A[::-1], B[::-1])
    assert ratio(A, B) == ratio(sorted(A), B[2:] + B[:2])
