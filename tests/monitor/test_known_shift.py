"""The monitor reports the closed-form shift of a layer input moved by a known amount."""

import math

import pytest

from shiftkit import ShiftMonitor
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer

DELTA, SHIFT_STEP, N = 0.8, 4, 64


def fit(reference, **monitor_kwargs):
    # One batch repeated: the inputs are identical at every step until the offset.
    x = standardized(N, 6)
    monitor = ShiftMonitor(every_n_steps=1, reference=reference, **monitor_kwargs)
    trainer(max_steps=8, callbacks=[monitor]).fit(OffsetNet(delta=DELTA, shift_step=SHIFT_STEP), loader(x, N))
    return {r["step"]: r for r in monitor.history if r["site"] == "fc1"}


def test_previous_reference_sees_the_shift_at_its_step_only():
    fc1 = fit("previous")
    assert sorted(fc1) == list(range(8))
    # Unit variance in both snapshots, means apart by DELTA: KL = DELTA^2 / 2 per unit.
    assert fc1[SHIFT_STEP]["kl_gauss"] == pytest.approx(DELTA**2 / 2, rel=1e-6)
    assert fc1[SHIFT_STEP]["mean_drift"] == pytest.approx(DELTA, rel=1e-6)
    assert fc1[SHIFT_STEP]["mean_drift_max"] == pytest.approx(DELTA, rel=1e-6)
    assert fc1[SHIFT_STEP]["std_log_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert fc1[SHIFT_STEP]["kl_hist"] > 0.1
    for step in (1, 2, 3, 5, 6, 7):
        assert fc1[step]["kl_gauss"] < 1e-10, step
        assert fc1[step]["kl_hist"] < 1e-12, step
    assert math.isnan(fc1[0]["kl_gauss"])  # no reference yet


def test_initial_reference_keeps_reporting_the_shift():
    fc1 = fit("initial")
    for step in range(SHIFT_STEP, 8):
        assert fc1[step]["kl_gauss"] == pytest.approx(DELTA**2 / 2, rel=1e-6)
    for step in range(1, SHIFT_STEP):
        assert fc1[step]["kl_gauss"] < 1e-10


def test_moments_and_percentiles_follow_the_offset():
    fc1 = fit("previous", bins=256)
    before, after = fc1[SHIFT_STEP - 1], fc1[SHIFT_STEP]
    assert before["mean"] == pytest.approx(0.0, abs=1e-6)
    assert after["mean"] == pytest.approx(DELTA, abs=1e-6)
    assert after["std"] == pytest.approx(before["std"], rel=1e-6)
    width = 4 * 2 * 3.0 / 256  # generous: the range is about 4x the data's span
    for p in ("p15", "p50", "p85"):
        assert after[p] - before[p] == pytest.approx(DELTA, abs=width)


def test_network_summary_and_logged_keys(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from shiftkit.records import read_csv_metrics

    x = standardized(N, 6)
    monitor = ShiftMonitor(every_n_steps=1)
    logger = CSVLogger(tmp_path, name="run")
    trainer(max_steps=6, callbacks=[monitor], logger=logger).fit(
        OffsetNet(delta=DELTA, shift_step=SHIFT_STEP), loader(x, N)
    )
    frame = read_csv_metrics(logger.log_dir).set_index("step")
    history = monitor.history_frame()
    for (step, site), row in history.set_index(["step", "site"]).iterrows():
        for stat in ("kl_gauss", "mean", "std", "p50", "nonfinite"):
            if not math.isnan(row[stat]):
                assert frame.loc[step, f"shift/{site}/{stat}"] == row[stat]
    at_shift = history[history.step == SHIFT_STEP]
    assert frame.loc[SHIFT_STEP, "shift/mean_kl_gauss"] == pytest.approx(at_shift.kl_gauss.mean())
    assert frame.loc[SHIFT_STEP, "shift/max_kl_gauss"] == pytest.approx(at_shift.kl_gauss.max())
    assert "shift/act/dead_frac" in frame and "shift/fc1/dead_frac" not in frame
