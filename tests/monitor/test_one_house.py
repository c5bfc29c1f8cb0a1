"""The three callbacks alike: any percentile level end to end, one checkpoint state per monitor,
and a failing logger that never stops training."""

from __future__ import annotations

import math
import warnings

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

from shiftkit import GradientICSMonitor, LandscapeMonitor, ShiftMonitor
from shiftkit.tracker.summary import summarize_history
from shiftkit.records import shift_key
from shiftkit.stats import histogram_percentiles
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer


class Recording(Logger):
    """A logger that keeps every ``log_metrics`` call; ``fail=True`` raises at each call."""

    def __init__(self, fail: bool = False):
        super().__init__()
        self.fail, self.calls = fail, []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        if self.fail:
            raise OSError("disk full")
        self.calls.append((step, dict(metrics)))


def test_non_default_quantiles_are_measured_and_logged_end_to_end():
    x = standardized(40, 6)
    monitor = ShiftMonitor(
        every_n_steps=1, layers=["fc1"], quantiles=(0.1, 0.9), bins=64, widen_at=None
    )
    logger = Recording()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(max_steps=3, callbacks=[monitor], logger=logger).fit(OffsetNet(), loader(x, 8))
    assert not [w for w in caught if "ShiftMonitor" in str(w.message)]
    assert monitor.measurements == 3 and not monitor._disabled
    _, (lo,), (hi,) = monitor.histogram_edges()
    logged = dict(logger.calls)
    for step in range(3):
        row = next(r for r in monitor.history if r["step"] == step and r["site"] == "fc1")
        # Oracle: numpy's counts of this step's batch on the monitor's edges, then the percentile
        # read-out (tested on its own in tests/stats) at the two levels.
        values = x[8 * step : 8 * step + 8].double().numpy().ravel()
        inner, _ = np.histogram(values, bins=64, range=(lo, hi))
        counts = np.concatenate([[np.sum(values < lo)], inner, [np.sum(values > hi)]])
        expected = histogram_percentiles(
            torch.tensor(counts), torch.tensor(lo), torch.tensor(hi), (0.1, 0.9)
        ).tolist()
        for value, name in zip(expected, ("p10", "p90")):
            assert row[name] == pytest.approx(value, rel=1e-6)  # float32 bin assignment
            assert logged[step][shift_key("fc1", name)] == row[name]
        assert row["p10"] < row["p90"]
        assert "p15" not in row and shift_key("fc1", "p50") not in logged[step]


def test_state_key_tells_apart_monitors_that_differ_in_any_argument():
    base = {"every_n_steps": 2, "layers": ["fc1"]}
    keys = {
        ShiftMonitor(**base).state_key,
        ShiftMonitor(**{**base, "every_n_steps": 3}).state_key,
        ShiftMonitor(**base, exclude=["fc2"]).state_key,
        ShiftMonitor(**base, quantiles=(0.1, 0.9)).state_key,
        ShiftMonitor(**base, bins=32).state_key,
        ShiftMonitor(**base, track="both").state_key,
    }
    assert len(keys) == 6
    assert ShiftMonitor(**base).state_key == ShiftMonitor(**base).state_key


def test_state_key_is_rebuilt_when_an_option_changes_after_it_was_read():
    # The key is kept between reads (Lightning reads it around every hook); a changed option
    # must still give the key a fresh monitor with that option has.
    base = {"every_n_steps": 2, "layers": ["fc1"]}
    monitor = ShiftMonitor(**base)
    first = monitor.state_key
    monitor.every_n_steps = 3
    assert monitor.state_key == ShiftMonitor(**{**base, "every_n_steps": 3}).state_key != first
    monitor.tracker.bins = 32
    assert monitor.state_key == ShiftMonitor(**{**base, "every_n_steps": 3}, bins=32).state_key


def test_two_monitors_that_differ_only_in_every_n_steps_resume_their_own_state(tmp_path):
    def run(max_epochs, ckpt_path=None):
        pl.seed_everything(0, verbose=False)
        monitors = [ShiftMonitor(every_n_steps=1), ShiftMonitor(every_n_steps=2)]
        ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_epochs=1)
        t = trainer(max_steps=-1, max_epochs=max_epochs, callbacks=[*monitors, ckpt],
                    enable_checkpointing=True, default_root_dir=tmp_path)  # fmt: skip
        t.fit(OffsetNet(lr=0.3), loader(standardized(32, 6), 8), ckpt_path=ckpt_path)
        return monitors

    every1, every2 = run(1)
    assert (every1.measurements, every2.measurements) == (4, 2)
    resumed1, resumed2 = run(2, ckpt_path=tmp_path / "last.ckpt")
    # Each resumed with its own state: 4 + 4 and 2 + 2 measurements, one series each.
    assert (resumed1.measurements, resumed2.measurements) == (8, 4)
    assert sorted({r["step"] for r in resumed2.history}) == [0, 2, 4, 6]
    assert sorted({r["step"] for r in resumed1.history}) == list(range(8))


MONITORS = {
    "ShiftMonitor": lambda: ShiftMonitor(every_n_steps=1),
    "GradientICSMonitor": lambda: GradientICSMonitor(every_n_steps=1),
    "LandscapeMonitor": lambda: LandscapeMonitor(every_n_steps=1),
}


@pytest.mark.parametrize("name", MONITORS)
def test_a_failing_logger_is_one_warning_and_training_goes_on(name):
    monitor, broken, working = MONITORS[name](), Recording(fail=True), Recording()
    model = OffsetNet(lr=0.3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(max_steps=3, callbacks=[monitor], logger=[broken, working]).fit(
            model, loader(standardized(24, 6), 8)
        )
    messages = [str(w.message) for w in caught if str(w.message).startswith(name)]
    assert messages == [
        (
            f"{name}: logging to Recording failed (OSError: disk full); the monitor stops logging "
            "to it. Its history and the other loggers are unaffected"
        )
    ]
    assert model.trainer.global_step == 3 and monitor.measurements == 3
    steps = sorted({step for step, metrics in working.calls if any("/" in k for k in metrics)})
    assert steps == [0, 1, 2]
    assert all(math.isfinite(v) for _, metrics in working.calls for v in metrics.values())


def test_summary_names_the_peak_over_time_apart_from_the_max_over_units():
    history = [
        {"step": s, "site": "fc1", "kl_gauss": k, "mean_drift": d, "mean_drift_max": m}
        for s, k, d, m in ((0, 0.1, 0.2, 0.9), (1, 0.3, 0.5, 0.7), (2, 0.2, 0.1, 0.4))
    ]
    table = summarize_history(history).set_index("site")
    assert table.loc["fc1", "mean_drift_peak"] == 0.5  # largest mean over units, over time
    assert "mean_drift_max" not in table
    assert table.loc["fc1", "kl_gauss_mean"] == pytest.approx(0.2)
