"""Shared pieces for the records tests: an offline W&B sandbox and a tiny Lightning fit."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.records.helpers import MAX_STEPS, known_shift_metrics


@pytest.fixture(scope="session")
def offline_wandb():
    """Return a context manager: offline, silent W&B keeping every file (run, config, cache)
    under the directory it is given, with no API key in sight."""

    @contextlib.contextmanager
    def offline_under(root: Path):
        with pytest.MonkeyPatch.context() as mp:
            for var, sub in [("WANDB_DIR", ""), ("WANDB_CONFIG_DIR", "cfg"),
                             ("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data")]:
                (root / sub).mkdir(exist_ok=True)
                mp.setenv(var, str(root / sub))
            mp.setenv("WANDB_MODE", "offline")
            mp.setenv("WANDB_SILENT", "true")
            mp.setenv("WANDB_CONSOLE", "off")
            mp.delenv("WANDB_API_KEY", raising=False)
            yield root

    return offline_under


@pytest.fixture
def wandb_sandbox(tmp_path, offline_wandb):
    """A tmp_path under which offline W&B writes everything (see ``offline_wandb``)."""
    with offline_wandb(tmp_path):
        yield tmp_path


@pytest.fixture
def fit_two_layer():
    """Return ``fit(logger) -> (module, logged)``: a 6-step fit of a 2-layer MLP on random data.

    A callback logs :func:`known_shift_metrics` straight to the loggers at
    ``trainer.global_step`` (as ShiftMonitor does); ``logged`` maps step to what
    it logged, and ``module.losses`` holds each ``train/loss`` it ``self.log``-ged.
    """
    import lightning as L
    import torch
    from torch import nn
    from torch.nn import functional as F

    class TwoLayer(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 3)
            self.losses: list[float] = []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.fc2(torch.relu(self.fc1(x))), y)
            self.log("train/loss", loss)
            self.losses.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class KnownShift(L.Callback):
        def __init__(self):
            self.logged: dict[int, dict[str, float]] = {}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            step = trainer.global_step
            self.logged[step] = known_shift_metrics(step)
            for lg in trainer.loggers:
                lg.log_metrics(self.logged[step], step=step)

    def fit(logger):
        torch.manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.randn(48, 4), torch.randint(0, 3, (48,)))
        module, callback = TwoLayer(), KnownShift()
        trainer = L.Trainer(
            max_steps=MAX_STEPS, log_every_n_steps=1, logger=logger, callbacks=[callback],
            accelerator="cpu", devices=1, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
        )
        trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8))
        return module, callback.logged

    return fit
