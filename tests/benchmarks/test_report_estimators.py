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


@pytest.mark.parametrize(("start", "end", "busy"), [(0.3, 1.9, False), (1.5, 1.9, True), (0.9, 0.4, False)])
def test_busy_note_is_judged_by_the_load_when_the_run_started(start, end, busy):
    # At its end the 1-minute load counts the benchmark's own threads (one per core): that is
    # not other work, and must not mark a run made on an idle machine as busy.
    import json
    from pathlib import Path

    from benchmarks.configs import CONFIGS
    from benchmarks.report import markdown

    results = json.loads((Path(__file__).parents[2] / "benchmarks/results/overhead.json").read_text())
    results["machine"].update(logical_cores=2, load_average_start=[start, 0.5, 0.5], load_average_end=[end, 1.0, 1.0])
    text = markdown(results, {name: c.label for name, c in CONFIGS.items()})
    assert ("**The machine was busy** (1-minute load %.1f on 2 cores" % start in text) is busy
    assert ("machine was busy" in text) is busy
