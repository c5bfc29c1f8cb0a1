"""ShiftTracker in a plain loop gives ShiftMonitor's history in a Lightning Trainer: same model,
initial weights and batches; with gradient accumulation and with two optimizers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from shiftkit import ShiftMonitor, ShiftTracker

REPO = Path(__file__).resolve().parents[2]
EVERY = 2


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(6, 16),
        nn.BatchNorm1d(16),
        nn.Tanh(),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


def make_batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (torch.randn(12, 6, generator=g) * (1 + i / 4), torch.randint(0, 3, (12,), generator=g))
        for i in range(n)
    ]


def named(net: nn.Module) -> nn.Module:
    # The LightningModules hold the network as `net`: the same site names (net.0, ...) here.
    return nn.ModuleDict({"net": net})


def loss_of(net, batch):
    x, y = batch
    return nn.functional.cross_entropy(net(x), y)


class Accumulating(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = make_net()

    def training_step(self, batch, batch_idx):
        return loss_of(self.net, batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9)


class TwoOptimizers(pl.LightningModule):
    """Manual optimization: the first two layers and the rest have their own optimizer; each
    ``step()`` is one Trainer global step (two per batch)."""

    def __init__(self):
        super().__init__()
        self.net = make_net()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        first, rest = self.optimizers()
        loss = loss_of(self.net, batch)
        self.manual_backward(loss)
        first.step()
        rest.step()
        first.zero_grad()
        rest.zero_grad()

    def configure_optimizers(self):
        return [
            torch.optim.SGD(self.net[:2].parameters(), lr=0.3),
            torch.optim.Adam(self.net[2:].parameters(), lr=0.05),
        ]


def fit(module: pl.LightningModule, batches, steps: int, accumulate: int = 1) -> ShiftMonitor:
    monitor = ShiftMonitor(every_n_steps=EVERY, keep_histograms=True)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_steps=steps, accumulate_grad_batches=accumulate, callbacks=[monitor],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, DataLoader(batches, batch_size=None, shuffle=False))
    return monitor


def assert_same_history(plain: list[dict], lightning: list[dict]) -> None:
    assert [(r["step"], r["site"]) for r in plain] == [(r["step"], r["site"]) for r in lightning]
    for a, b in zip(plain, lightning):
        assert a.keys() == b.keys()
        for key, va in a.items():
            vb = b[key]
            if isinstance(va, str):
                assert va == vb
            elif isinstance(va, float) and math.isnan(va):
                assert math.isnan(vb), (a["step"], a["site"], key)
            else:
                assert va == pytest.approx(vb, rel=1e-6, abs=1e-9), (
                    a["step"],
                    a["site"],
                    key,
                    va,
                    vb,
                )


def test_gradient_accumulation_plain_loop_equals_trainer():
    batches = make_batches(12)  # 6 optimizer steps of 2 micro-batches
    monitor = fit(Accumulating(), batches, steps=6, accumulate=2)

    net = make_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    tracker = ShiftTracker(named(net), every_n_steps=EVERY, keep_histograms=True)
    for i in range(0, len(batches), 2):
        with tracker.step():
            for micro in batches[i : i + 2]:
                (
                    loss_of(net, micro) / 2
                ).backward()  # Lightning scales by 1/accumulate_grad_batches
            opt.step()
            opt.zero_grad()
    tracker.close()

    assert sorted({r["step"] for r in tracker.history}) == [0, 2, 4]
    assert len(tracker.history) == 3 * len(tracker.site_names) == 3 * 6
    assert_same_history(tracker.history, monitor.history)
    # The measured histograms fold both micro-batches: 24 inputs per site, as in the Trainer.
    assert [h for _, h, _, _ in tracker.histogram_history] == [
        h for _, h, _, _ in monitor.histogram_history
    ]
    assert sum(tracker.histogram_history[0][1][0]) == 24 * 6  # Linear(6, ...): 24 rows x 6 features


def test_two_optimizers_plain_loop_equals_trainer():
    batches = make_batches(4)
    monitor = fit(TwoOptimizers(), batches, steps=8)  # 8 optimizer steps: 2 per batch

    net = make_net()
    first = torch.optim.SGD(net[:2].parameters(), lr=0.3)
    rest = torch.optim.Adam(net[2:].parameters(), lr=0.05)
    tracker = ShiftTracker(named(net), every_n_steps=EVERY)
    for i, batch in enumerate(batches):
        with tracker.step(2 * i):  # two optimizer steps per batch, as the Trainer's global_step
            loss_of(net, batch).backward()
            first.step()
            rest.step()
            first.zero_grad()
            rest.zero_grad()
    tracker.close()

    assert sorted({r["step"] for r in tracker.history}) == [0, 2, 4, 6]
    assert_same_history(tracker.history, monitor.history)
    # Not trivially equal: the network moved, so the previous-step reference differs from the first.
    assert tracker.history[-1]["kl_gauss"] > 0


def test_tracker_runs_without_lightning_and_logs_to_log_fn():
    code = (
        "import json, sys, torch\n"
        "from torch import nn\n"
        "from shiftkit import ShiftTracker\n"
        "torch.manual_seed(0)\n"
        "net = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))\n"
        "opt = torch.optim.SGD(net.parameters(), lr=0.5)\n"
        "logged = []\n"
        "tracker = ShiftTracker(net, every_n_steps=3, log_fn=lambda m, s: logged.append((s, sorted(m))))\n"
        "for _ in range(7):\n"
        "    with tracker.step():\n"
        "        net(torch.randn(16, 4)).square().mean().backward(); opt.step(); opt.zero_grad()\n"
        "    net(torch.randn(5, 4))  # an evaluation forward outside the block: not measured\n"
        "tracker.close()\n"
        "hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in net.modules())\n"
        "lightning = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning'))\n"
        "print(json.dumps({'logged': logged, 'steps': sorted({r['step'] for r in tracker.history}),\n"
        "                  'hooks': hooks, 'lightning': lightning, 'summary': list(tracker.summary(top=2)['site'])}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["lightning"] == [] and out["hooks"] == 0
    assert out["steps"] == [0, 3, 6]
    assert [s for s, _ in out["logged"]] == [0, 3, 6]
    keys = out["logged"][1][1]
    assert (
        "shift/0/kl_gauss" in keys and "shift/mean_kl_gauss" in keys and "shift/1/sat_frac" in keys
    )
    assert len(out["summary"]) == 2
