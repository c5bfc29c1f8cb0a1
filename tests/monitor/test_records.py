"""The monitor's series and histograms, written to a run directory and read back."""

import numpy as np
import pytest

from shiftkit import ShiftMonitor
from shiftkit.records import read_run, write_run_result
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer


def test_write_records_round_trip(tmp_path):
    monitor = ShiftMonitor(every_n_steps=2, keep_histograms=True, bins=8)
    x = standardized(32, 6)
    trainer(max_steps=5, callbacks=[monitor]).fit(OffsetNet(lr=0.1), loader(x, 8))
    monitor.write_records(tmp_path)
    write_run_result(tmp_path, {"recipe": "t", "variant": "plain", "seed": 0})
    run = read_run(tmp_path)
    assert run.recipe == "t" and run.metrics is None
    assert len(run.history) == len(monitor.history) == 3 * 3
    fc1 = run.history[run.history.site == "fc1"].set_index("step")
    assert list(fc1.index) == [0, 2, 4]
    for row in monitor.history:
        if row["site"] == "fc1" and not np.isnan(row["kl_gauss"]):
            assert fc1.loc[row["step"], "kl_gauss"] == pytest.approx(row["kl_gauss"], rel=1e-15)
    h = run.histograms
    assert list(h["steps"]) == [0, 2, 4] and h["counts"].shape == (3, 3, 10)
    assert list(h["sites"]) == ["fc1", "act", "fc2"]
    # fc1's histogram at step 0 holds the first batch: 8 rows x 6 inputs, all inside the edges.
    assert h["counts"][0, 0].sum() == 48 and h["counts"][0, 0, [0, -1]].sum() == 0
    assert h["lo"][0] < float(x[:8].min()) and h["hi"][0] > float(x[:8].max())
