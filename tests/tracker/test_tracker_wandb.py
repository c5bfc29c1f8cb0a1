"""ShiftTracker(wandb=True): the keys declared against shift/step, the values and heat maps in the
(offline) W&B run; ShiftMonitor declares them against the Trainer's step."""

import pytest
import torch
from torch import nn

from shiftkit import ShiftTracker
from shiftkit.records import read_wandb_offline, wait_for_wandb_run
from shiftkit.records.wandb_offline import find_wandb_run_file, iter_wandb_records


def metric_definitions(run_dir) -> dict[str, str]:
    """``{key or glob: step metric}`` of the define_metric records of a local W&B run."""
    from wandb.proto import wandb_internal_pb2

    out = {}
    for payload in iter_wandb_records(find_wandb_run_file(run_dir)):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "metric":
            out[record.metric.glob_name or record.metric.name] = record.metric.step_metric
    return out


def test_tracker_logs_to_the_current_wandb_run_with_its_step_metric_and_heat_maps(tmp_path):
    import wandb

    wandb.init(project="shiftkit-test", dir=str(tmp_path), mode="offline")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    tracker = ShiftTracker(net, every_n_steps=2, wandb=True, heatmap_every=2)
    for _ in range(6):
        wandb.log({"loss": 1.0})  # the user's own logging is not disturbed
        with tracker.step():
            net(torch.randn(8, 4)).square().mean().backward()
            opt.step()
            opt.zero_grad()
    tracker.close()
    wandb.finish()

    run_dir = wait_for_wandb_run(tmp_path / "wandb")
    defs = metric_definitions(run_dir)
    assert {
        k: defs.get(k) for k in ("shift/*", "shift_hist/*", "shift_heatmap/*")
    } == dict.fromkeys(("shift/*", "shift_hist/*", "shift_heatmap/*"), "shift/step")
    frame = read_wandb_offline(run_dir, step_col="shift/step")
    rows = {int(r["shift/step"]): r for _, r in frame.iterrows()}
    assert sorted(rows) == [0, 2, 4]
    for h in tracker.history:
        assert rows[h["step"]][f"shift/{h['site']}/mean"] == pytest.approx(h["mean"], rel=1e-12)
    # The heat map every 2nd measurement: at step 2 only.
    with_image = [s for s, r in rows.items() if isinstance(r.get("shift_heatmap/kl_gauss"), dict)]
    assert with_image == [2]
    assert rows[2]["shift_heatmap/kl_gauss"]["_type"] == "image-file"


def test_monitor_declares_its_keys_against_the_trainer_step(tmp_path):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    from shiftkit import ShiftMonitor
    from tests.monitor.helpers import OffsetNet, loader, standardized, trainer

    logger = WandbLogger(project="shiftkit-test", save_dir=str(tmp_path), offline=True)
    monitor = ShiftMonitor(every_n_steps=2, heatmap_every=2)
    trainer(max_steps=3, callbacks=[monitor], logger=logger).fit(
        OffsetNet(lr=0.1), loader(standardized(32, 6), 8)
    )
    wandb.finish()
    run_dir = wait_for_wandb_run(tmp_path / "wandb")
    defs = metric_definitions(run_dir)
    assert defs.get("shift/*") == defs.get("shift_hist/*") == "trainer/global_step"
    frame = read_wandb_offline(run_dir, step_col="trainer/global_step")
    heat = "shift_heatmap/kl_gauss"
    images = [
        int(r["trainer/global_step"]) for _, r in frame.iterrows() if isinstance(r.get(heat), dict)
    ]
    assert images == [2]  # heatmap_every=2: the 2nd measurement (steps 0 and 2 are measured)
