"""A layer input that outgrows its warm-up range: the range doubles, percentiles stay values."""

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn

from shiftkit import ShiftMonitor
from tests.monitor.helpers import loader, standardized, trainer

GROWTH = 12.0


class Growing(pl.LightningModule):
    """fc's input is the data times a factor that grows from 1 to GROWTH over 5 steps."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 2)

    def scale(self):
        return 1.0 + (GROWTH - 1.0) * min(self.trainer.global_step, 5) / 5

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self.fc(x * self.scale()), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def fit(**kwargs):
    x = standardized(256, 6)
    monitor = ShiftMonitor(every_n_steps=1, layers=["fc"], bins=32, keep_histograms=True, **kwargs)
    trainer(max_steps=8, callbacks=[monitor]).fit(Growing(), loader(x, 256))
    return monitor, x


def test_outgrown_range_doubles_and_percentiles_stay_values(tmp_path):
    monitor, x = fit()
    last = [r for r in monitor.history if r["step"] == 7][0]
    data = (GROWTH * x).numpy().ravel()
    lo, hi = monitor._acc.layout.lo[0], monitor._acc.layout.hi[0]
    width = (hi - lo) / 32
    for name, q in (("p15", 15), ("p50", 50), ("p85", 85)):
        assert last[name] == pytest.approx(np.percentile(data, q), abs=width)
    assert last["hist_outside"] <= 0.01
    assert lo < data.min() and data.max() < hi  # widened (by doublings) to hold the grown data
    # Histograms kept at earlier, narrower edges are written re-binned onto the final ones.
    monitor.write_records(tmp_path)
    with np.load(tmp_path / "shift_histograms.npz") as npz:
        counts, file_lo, file_hi = npz["counts"], npz["lo"], npz["hi"]
    assert (file_lo[0], file_hi[0]) == (lo, hi)
    assert counts[0, 0].sum() == 256 * 6 and counts[0, 0, [0, -1]].sum() == 0


def test_without_widening_the_percentiles_are_clamped_bounds():
    monitor, x = fit(widen_at=None)
    last = [r for r in monitor.history if r["step"] == 7][0]
    assert last["hist_outside"] > 0.5  # |z| > 0.55 of the grown data is past the warm-up range
    assert last["p85"] == pytest.approx(monitor._acc.layout.hi[0])  # a bound, not a value
