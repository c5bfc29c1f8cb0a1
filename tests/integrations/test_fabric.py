"""Lightning Fabric: the tracker attaches to a Fabric loop, logs through Fabric's loggers, and
measures what the plain loop measures."""

import math

import pytest
import torch
from lightning.fabric import Fabric
from lightning.fabric.loggers import CSVLogger
from torch import nn

from shiftkit import ShiftTracker
from shiftkit.records import read_csv_metrics


def make_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.LayerNorm(12), nn.GELU(), nn.Linear(12, 2))


def batches(n=6):
    g = torch.Generator().manual_seed(2)
    return [
        (torch.randn(10, 5, generator=g), torch.randint(0, 2, (10,), generator=g)) for _ in range(n)
    ]


def train_plain(data):
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    tracker = ShiftTracker(net, every_n_steps=2)
    for x, y in data:
        with tracker.step():
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad()
    tracker.close()
    return tracker.history


def test_fabric_loop_logs_through_fabric_and_matches_the_plain_loop(tmp_path):
    data = batches()
    fabric = Fabric(
        accelerator="cpu", devices=1, loggers=CSVLogger(tmp_path, name="run", version=0)
    )
    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    model, opt = fabric.setup(net, opt)
    # Attached to Fabric's wrapper: sites keep the network's own names.
    tracker = ShiftTracker(model, every_n_steps=2, log_fn=fabric.log_dict)
    for x, y in fabric.setup_dataloaders(torch.utils.data.DataLoader(data, batch_size=None)):
        with tracker.step():
            fabric.backward(nn.functional.cross_entropy(model(x), y))
            opt.step()
            opt.zero_grad()
    tracker.close()
    fabric.loggers[0].finalize("success")

    assert tracker.site_names == ["0", "1", "2", "3"]
    plain = train_plain(data)
    assert [(r["step"], r["site"]) for r in tracker.history] == [
        (r["step"], r["site"]) for r in plain
    ]
    for a, b in zip(tracker.history, plain):
        for key in ("kl_gauss", "mean", "std", "p50", "mean_drift"):
            if not math.isnan(b[key]):
                assert a[key] == pytest.approx(b[key], rel=1e-6), (a["step"], a["site"], key)
    logged = read_csv_metrics(tmp_path / "run" / "version_0").set_index("step")
    assert sorted(logged.index) == [0, 2, 4]
    last = next(r for r in tracker.history if r["step"] == 4 and r["site"] == "2")
    assert logged.loc[4, "shift/2/kl_gauss"] == pytest.approx(last["kl_gauss"], rel=1e-6)
