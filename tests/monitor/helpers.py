"""Small Lightning models whose layer inputs move by known amounts, their data and a quiet Trainer."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def standardized(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """n x d data with every column at population mean 0 and variance 1 exactly."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0, unbiased=False)
    return x.float()


class OffsetNet(pl.LightningModule):
    """fc1 -> ReLU -> dropout -> fc2; fc1's input is the data plus ``delta`` from ``shift_step`` on."""

    def __init__(self, d_in=6, hidden=8, delta=0.0, shift_step=10**9, lr=0.0, dropout=0.0, batchnorm=False):
        super().__init__()
        self.delta, self.shift_step, self.lr = delta, shift_step, lr
        self.fc1 = nn.Linear(d_in, hidden)
        self.bn = nn.BatchNorm1d(hidden) if batchnorm else nn.Identity()
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, 2)

    def forward(self, x):
        if self._trainer is not None and self.trainer.global_step >= self.shift_step:
            x = x + self.delta
        return self.fc2(self.drop(self.act(self.bn(self.fc1(x)))))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def loader(x: torch.Tensor, batch_size: int, seed: int = 0) -> DataLoader:
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def trainer(**kwargs) -> pl.Trainer:
    """A quiet CPU Trainer; keyword arguments override the defaults."""
    defaults = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        max_steps=5,
    )
    defaults.update(kwargs)
    return pl.Trainer(**defaults)
