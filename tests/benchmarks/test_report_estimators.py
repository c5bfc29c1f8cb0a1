"""The benchmark's estimators of a periodic monitor's cost, on step times made up so that the
answer is known: a drift between blocks must cancel out of the measurement's amortized cost."""

from __future__ import annotations

import pytest

from benchmarks.report import default_cost_parts


def block(config: str, round_index: int, base: float, measured: float | None = None, period: int = 10) -> dict:
    steps = list(range(1, 41))
    seconds = [measured if (measured is not None and s % period == 0) else base for s in steps]
    return {"config": config, "round": round_index, "steps": steps, "seconds": seconds}


def test_measurement_cost_is_taken_within_its_block_and_drift_shows_only_in_unmeasured_steps():
    # Round 0: the monitor's block ran 10% slower than the reference (drift); round 1: no drift.
    # In both rounds a measurement costs 3 reference steps more than an unmeasured step of its block.
    blocks = [block("none", 0, 1.0), block("shift_default", 0, 1.1, measured=1.1 + 3.0),
              block("none", 1, 2.0), block("shift_default", 1, 2.0, measured=2.0 + 6.0)]  # fmt: skip
    parts = default_cost_parts(blocks, "shift_default", period=10)
    assert parts["measuring"] == pytest.approx(1 + 3.0 / 10)  # against the reference: 1.31 in round 0
    assert parts["unmeasured"] == pytest.approx(1.05)  # median of the two rounds: 1.1 and 1.0
