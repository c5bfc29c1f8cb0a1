"""The measurement on a CUDA device gives the CPU's numbers (marked ``cuda``: skipped without a
GPU, see tests/conftest.py; run them with ``pytest -m cuda tests``, as ``benchmarks/gpu.sh`` does).

Same network, initial weights and batches on both devices, float32 matmuls at full precision
(no TF32): the numbers may differ only by rounding (another summation order on the GPU). The
moment statistics (mean, std, the Gaussian KL, drifts) are compared to 1e-4 relative / 1e-5
absolute. The histogram ones (quantiles, histogram KL/JS) and the threshold fractions jump when a
value within rounding of a bin edge or threshold lands on its other side, so they get a looser
bound that still catches a wrong histogram; the counts may differ by a few such values.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from shiftkit import ShiftMonitor, ShiftTracker

pytestmark = pytest.mark.cuda

STEPS = 6
BATCH = 64  # 64 x 16 values per site: one value changing bin moves a histogram statistic little
REL, ABS = 1e-4, 1e-5
#: Statistics read off the histograms or counted against a threshold (and their bounds).
HIST_REL, HIST_ABS = 0.1, 0.02
COUNTED = {
    "sat_frac": 0.01,
    "dead_frac": 0.01,
    "dead_units": 1,
    "nonfinite": 0,
    "hist_outside": 0.01,
}


def is_histogram_stat(key: str) -> bool:
    return key in ("kl_hist", "js_hist") or (key[:1] == "p" and key[1:].isdigit())


@pytest.fixture(autouse=True)
def _full_fp32_matmuls():
    # TF32 matmuls would differ from the CPU by ~1e-3, not by rounding.
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def make_net() -> nn.Module:
    """Every kind of site: a plain Linear input, BN, a saturating and a rectifier input."""
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.Sigmoid(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def make_batches(n: int = STEPS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.randn(BATCH, 6, generator=g) * (1 + i / 4),
            torch.randint(0, 3, (BATCH,), generator=g),
        )
        for i in range(n)
    ]


def track(device: str, batches) -> ShiftTracker:
    """A plain loop with ShiftTracker measuring every step, on ``device``."""
    net = make_net().to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.2, momentum=0.9)
    tracker = ShiftTracker(net, every_n_steps=1, keep_histograms=True)
    for x, y in batches:
        with tracker.step():
            nn.functional.cross_entropy(net(x.to(device)), y.to(device)).backward()
            opt.step()
            opt.zero_grad()
    tracker.close()
    return tracker


def assert_same_history(cuda_rows: list[dict], cpu_rows: list[dict]) -> None:
    assert cpu_rows, "nothing measured"
    assert [(r["step"], r["site"]) for r in cuda_rows] == [(r["step"], r["site"]) for r in cpu_rows]
    for a, b in zip(cuda_rows, cpu_rows):
        assert a.keys() == b.keys()
        for key, va in a.items():
            vb = b[key]
            where = (a["step"], a["site"], key, va, vb)
            if isinstance(va, str) or va is None:
                assert va == vb, where
            elif isinstance(va, float) and math.isnan(va):
                assert math.isnan(vb), where
            elif key in COUNTED:
                assert va == pytest.approx(vb, abs=COUNTED[key]), where
            elif is_histogram_stat(key):
                assert va == pytest.approx(vb, rel=HIST_REL, abs=HIST_ABS), where
            else:
                assert va == pytest.approx(vb, rel=REL, abs=ABS), where


def assert_same_histograms(cuda_hist, cpu_hist) -> None:
    assert [e[0] for e in cuda_hist] == [e[0] for e in cpu_hist]  # the same steps
    for (step, counts_a, lo_a, hi_a), (_, counts_b, lo_b, hi_b) in zip(cuda_hist, cpu_hist):
        assert lo_a == pytest.approx(lo_b, rel=REL, abs=ABS), step
        assert hi_a == pytest.approx(hi_b, rel=REL, abs=ABS), step
        for ca, cb in zip(counts_a, counts_b, strict=True):
            assert sum(ca) == sum(cb), step  # every value counted on both devices
            # A value within rounding of a bin edge may land in the neighbouring bin.
            moved = sum(abs(p - q) for p, q in zip(ca, cb, strict=True))
            assert moved <= max(4, sum(cb) / 100), (step, moved)


def test_tracker_on_cuda_gives_the_cpu_statistics():
    batches = make_batches()
    on_cuda = track("cuda", batches)
    on_cpu = track("cpu", batches)

    assert sorted({r["step"] for r in on_cuda.history}) == list(range(STEPS))
    assert_same_history(on_cuda.history, on_cpu.history)
    assert_same_histograms(on_cuda.histogram_history, on_cpu.histogram_history)
    # Not trivially equal: the network moved, so there is a shift to measure.
    assert on_cuda.history[-1]["kl_gauss"] > 0
    # The history holds plain numbers, nothing left on the device.
    assert not any(isinstance(v, torch.Tensor) for r in on_cuda.history for v in r.values())


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = make_net()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2, momentum=0.9)


def fit(accelerator: str, batches) -> ShiftMonitor:
    monitor = ShiftMonitor(every_n_steps=2, keep_histograms=True)
    trainer = pl.Trainer(
        accelerator=accelerator, devices=1, max_steps=STEPS, callbacks=[monitor], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Classifier(), DataLoader(batches, batch_size=None, shuffle=False))
    return monitor


def test_shift_monitor_on_gpu_trainer_gives_the_cpu_statistics():
    batches = make_batches()
    on_gpu = fit("gpu", batches)
    on_cpu = fit("cpu", batches)

    assert sorted({r["step"] for r in on_gpu.history}) == [0, 2, 4]
    assert_same_history(on_gpu.history, on_cpu.history)
    assert_same_histograms(on_gpu.histogram_history, on_cpu.histogram_history)


def test_replay_seeds_the_cuda_generator():
    # GradientICSMonitor's two gradient passes must see the same dropout mask: on a CUDA model
    # that is the CUDA generator's, which the CPU seed does not reach.
    from shiftkit.stats.gradient_ics import Replay

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.Dropout(0.5), nn.Linear(64, 1)).cuda()
    x = torch.randn(16, 32, device="cuda")
    with Replay(net, seed=0) as replay:
        _, g1 = replay.grad(lambda m: m(x).sum(), [net[0].weight])
        _, g2 = replay.grad(lambda m: m(x).sum(), [net[0].weight])
    assert torch.equal(g1[0], g2[0])
    # Without the replay, two passes draw two masks (else the check above proves nothing).
    grads = [torch.autograd.grad(net(x).sum(), [net[0].weight])[0] for _ in range(2)]
    assert not torch.equal(*grads)
