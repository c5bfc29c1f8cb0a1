"""A run resumed from its checkpoint continues the monitor's series as if never stopped."""

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from shiftkit import ShiftMonitor
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer

STEPS_PER_EPOCH, EPOCHS = 4, 4


def run(tmp_path, max_epochs, ckpt_path=None, monitor=None):
    pl.seed_everything(0, verbose=False)
    monitor = monitor or ShiftMonitor(every_n_steps=1)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_epochs=1, save_top_k=-1)
    t = trainer(
        max_steps=-1, max_epochs=max_epochs, callbacks=[monitor, ckpt], enable_checkpointing=True, default_root_dir=tmp_path
    )
    t.fit(OffsetNet(lr=0.3, dropout=0.0), loader(standardized(32, 6), 8), ckpt_path=ckpt_path)
    return monitor


def test_resume_continues_series_reference_and_edges(tmp_path):
    straight = run(tmp_path / "a", EPOCHS)
    first = run(tmp_path / "b", EPOCHS // 2)
    state = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["callbacks"]
    assert any("ShiftMonitor" in key for key in state)  # saved, and loadable without pickle
    resumed_monitor = ShiftMonitor(every_n_steps=1)
    resumed = run(tmp_path / "b", EPOCHS, ckpt_path=tmp_path / "b" / "last.ckpt", monitor=resumed_monitor)
    steps = [r["step"] for r in resumed.history if r["site"] == "fc1"]
    assert steps == list(range(EPOCHS * STEPS_PER_EPOCH))  # no gaps, no duplicates
    assert len(first.history) < len(resumed.history)
    a = {(r["step"], r["site"]): r for r in straight.history}
    b = {(r["step"], r["site"]): r for r in resumed.history}
    assert a.keys() == b.keys()
    resume_step = (EPOCHS // 2) * STEPS_PER_EPOCH
    for key, row in a.items():
        for stat in ("kl_gauss", "kl_hist", "p50", "mean"):
            # The first measurement after resuming is compared with the restored
            # reference, and histogram edges are the same, so every value matches.
            assert b[key][stat] == pytest.approx(row[stat], rel=1e-9, abs=1e-12, nan_ok=True), (key, stat)
    assert b[(resume_step, "fc1")]["kl_gauss"] > 0
    assert resumed_monitor._acc.layout == straight._acc.layout


def test_resume_with_other_layers_is_a_clear_error(tmp_path):
    run(tmp_path, 1)
    other = ShiftMonitor(every_n_steps=1, layers=["fc1"])
    other_key = ShiftMonitor(every_n_steps=1).state_key
    ckpt = torch.load(tmp_path / "last.ckpt", weights_only=True)
    ckpt["callbacks"][other.state_key] = ckpt["callbacks"].pop(other_key)
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="written for other monitored layers"):
        run(tmp_path, 2, ckpt_path=tmp_path / "other.ckpt", monitor=other)
