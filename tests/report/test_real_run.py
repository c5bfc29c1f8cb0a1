"""Figures from real (tiny) runs: plain Lightning + ShiftMonitor + CSVLogger, written to run
directories as the CLI will (``monitor.write_records`` + ``write_run_result``), then reported."""

from __future__ import annotations

import shutil

import lightning.pytorch as pl
import pandas as pd
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shiftkit import ShiftMonitor
from shiftkit.records import write_run_result
from shiftkit.report import build_report
from tests.report.helpers import claims_rows, png_size

STEPS, EVAL_EVERY = 30, 10


class TinySigmoidNet(pl.LightningModule):
    """16 inputs -> 3 sigmoid layers of 12 (BN before each sigmoid if ``bn``) -> 3 classes."""

    def __init__(self, bn: bool, lr: float = 0.5):
        super().__init__()
        layers, width = [], 16
        for _ in range(3):
            layers += [nn.Linear(width, 12), nn.BatchNorm1d(12) if bn else nn.Identity(), nn.Sigmoid()]
            width = 12
        self.net = nn.Sequential(*layers, nn.Linear(12, 3))
        self.lr = lr

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def blobs(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.randn(3, 16, generator=torch.Generator().manual_seed(99)) * 1.5
    return TensorDataset(centres[y] + torch.randn(n, 16, generator=g), y)


def fit_run(run_dir, variant: str, seed: int):
    pl.seed_everything(seed, verbose=False)
    model = TinySigmoidNet(bn=variant == "bn")
    monitor = ShiftMonitor(every_n_steps=5, keep_histograms=True, bins=16)
    logger = CSVLogger(run_dir / "logs", name="", version="")
    trainer = pl.Trainer(max_steps=STEPS, val_check_interval=EVAL_EVERY, check_val_every_n_epoch=None,
                         callbacks=[monitor], logger=logger, accelerator="cpu", devices=1,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, log_every_n_steps=5)  # fmt: skip
    train = DataLoader(blobs(960, seed), batch_size=24, shuffle=True)
    trainer.fit(model, train, DataLoader(blobs(240, 1000 + seed), batch_size=240))
    logger.save()
    shutil.copyfile(logger.log_dir + "/metrics.csv", run_dir / "metrics.csv")
    monitor.write_records(run_dir)
    val = pd.read_csv(run_dir / "metrics.csv")["val/acc"].dropna()
    write_run_result(run_dir, {
        "recipe": "mnist_fig1", "variant": variant, "seed": seed,
        "config": {"model": {"norm": "batch" if variant == "bn" else "none", "lr": 0.5, "activation": "sigmoid",
                             "num_classes": 3}, "data": {"batch_size": 24}, "trainer": {"max_steps": STEPS}},
        "metrics": {"val/acc": float(val.iloc[-1])}, "diverged": False, "target_accuracy": 0.8, "steps": STEPS,
    })  # fmt: skip


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("real") / "runs"
    for variant in ("plain", "bn"):  # one torch thread: tests/conftest.py
        run_dir = root / variant / "seed0"
        run_dir.mkdir(parents=True)
        fit_run(run_dir, variant, seed=0)
    return root


def test_report_from_real_runs(real_runs, tmp_path):
    result = build_report([real_runs], tmp_path / "report", progress=False, dpi=80)
    names = {f.file for f in result.figures}
    assert names == {"C1_fig1.png", "mnist_fig1_heatmap_kl_gauss.png", "mnist_fig1_colorful.png"}
    for name in names:
        width, height = png_size(result.out_dir / name)
        assert width > 400 and height > 250 and (result.out_dir / name).stat().st_size > 15_000
    row = claims_rows(result.readme.read_text())["C1"]
    assert row[4].endswith("⚠ n=1 < 3 seeds")
    # The Fig. 1 site is the last sigmoid's input: module net.8 (Linear, norm, Sigmoid x 3).
    assert "median drift (net.8, " in row[3]
    results = pd.read_csv(result.results_csv).set_index("variant")
    for variant in ("plain", "bn"):
        val = pd.read_csv(real_runs / variant / "seed0" / "metrics.csv")["val/acc"].dropna()
        assert results.loc[variant, "final_acc"] == pytest.approx(val.iloc[-1], rel=1e-6)
        assert results.loc[variant, "norm"] == ("batch" if variant == "bn" else "none")
