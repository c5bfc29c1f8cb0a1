"""With a WandbLogger (offline), the values are in the .wandb run file, histograms too."""

import numpy as np
import pytest

from shiftkit import ShiftMonitor
from shiftkit.records import read_wandb_offline, wait_for_wandb_run
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer


def test_offline_wandb_run_holds_the_monitor_values(tmp_path):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    logger = WandbLogger(project="shiftkit-test", save_dir=str(tmp_path), offline=True)
    monitor = ShiftMonitor(every_n_steps=2, log_histograms=True, histogram_every=2, bins=16)
    trainer(max_steps=7, callbacks=[monitor], logger=logger).fit(
        OffsetNet(lr=0.2, delta=0.5, shift_step=3), loader(standardized(32, 6), 8)
    )
    run_dir = logger.experiment.dir
    wandb.finish()
    frame = read_wandb_offline(wait_for_wandb_run(tmp_path / "wandb"))
    rows = {int(r["trainer/global_step"]): r for _, r in frame.iterrows() if "shift/fc1/mean" in r and r.notna()["shift/fc1/mean"]}
    assert sorted(rows) == [0, 2, 4, 6]
    for h in monitor.history:
        for stat in ("kl_gauss", "mean", "std", "p85", "dead_frac"):
            key = f"shift/{h['site']}/{stat}"
            if not np.isnan(h[stat]):
                assert rows[h["step"]][key] == pytest.approx(h[stat], rel=1e-12)
    # Histograms at measurements 0 and 2 (steps 0 and 4), with the fixed edges: 16 + 2 bins.
    with_hist = [s for s, r in rows.items() if isinstance(r.get("shift_hist/fc1"), dict)]
    assert with_hist == [0, 4]
    hist = rows[0]["shift_hist/fc1"]
    assert len(hist["values"]) == 18 and len(hist["bins"]) == 19
    assert sum(hist["values"]) == 8 * 6  # one batch of 8 rows x 6 inputs
    assert run_dir
