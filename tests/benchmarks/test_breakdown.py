"""The phase timer of the overhead benchmark: exclusive times, and shiftkit left as it was found."""

from __future__ import annotations

import pytest

from benchmarks import breakdown
from benchmarks.breakdown import PhaseTimer


def test_phases_are_exclusive_and_per_measurement():
    t = PhaseTimer()
    # Inclusive seconds as the wrappers would add them, over 2 measurements.
    t.seconds.update(
        hooks=0.010, accumulation=0.006, snapshot=0.008, comparison=0.004, measurement=0.020
    )
    t.calls.update(hooks=14, accumulation=14, snapshot=2, comparison=2, measurement=2)
    out = t.per_measurement()
    ms = out["ms_per_measurement"]
    assert out["measurements"] == 2
    assert ms["hooks"] == pytest.approx(2.0)  # (10 - 6) ms over 2 measurements
    assert ms["accumulation"] == pytest.approx(3.0)
    assert ms["snapshot"] == pytest.approx(4.0)
    assert ms["other"] == pytest.approx(4.0)  # 20 - 8 - 4 ms of _measure_now left unnamed
    assert ms["ddp_reduce"] is None and "ddp_reduce" in out["not_run"]
    assert out["total_ms_per_measurement"] == pytest.approx(2 + 3 + 4 + 2 + 4)
    assert out["calls_per_measurement"]["accumulation"] == 7


def test_installed_restores_originals_and_names_what_is_missing(monkeypatch):
    from shiftkit.stats import ShiftAccumulator
    from shiftkit.tracker import tracker

    observe, stats = ShiftAccumulator.observe, tracker.statistics_table
    missing = ("history", "shiftkit.tracker.logging:SiteRecord", "no_such_method")
    monkeypatch.setattr(breakdown, "WRAPPED", (*breakdown.WRAPPED, missing))
    t = PhaseTimer()
    with t.installed():
        assert ShiftAccumulator.observe is not observe
        assert tracker.statistics_table is not stats
    assert ShiftAccumulator.observe is observe and tracker.statistics_table is stats
    assert t.missing == ["history: shiftkit.tracker.logging.SiteRecord.no_such_method"]
