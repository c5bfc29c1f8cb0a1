"""Two CPU ranks, uneven batches: rank 1's first batch is empty, the last batches are partial.

Run from the repository root (a subprocess: Lightning's DDP launchers re-run or fork the
process): ``python -m tests.hardening.ddp_uneven --out DIR``. Each rank writes
``rank{r}.json`` with its history and how often it entered each collective.
"""

import argparse
import json
import os
from pathlib import Path

import torch

torch.set_num_threads(1)  # two ranks on two shared cores

import lightning.pytorch as pl  # noqa: E402
from torch import nn  # noqa: E402

import shiftkit.monitor.shift_monitor as shift_monitor_module  # noqa: E402
from shiftkit import ShiftMonitor  # noqa: E402
from tests.hardening.zoo import Classifier, batches_loader  # noqa: E402
from tests.monitor.ddp_run import CountingAllReduce  # noqa: E402

FEATURES = 6
#: Rows per batch, by step and rank: 27 rows in all (not a multiple of the global
#: batch 16); rank 1 gets an empty batch at the first (discovery) measurement and
#: both ranks get a partial last batch.
ROWS = [(5, 0), (8, 8), (3, 3)]
GLOBAL_BATCH = 16


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(sum(map(sum, ROWS)), FEATURES, generator=g)


def rank_batches(rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Rank ``rank``'s batches; step t's global batch is the next ``sum(ROWS[t])`` rows, rank 0 first."""
    x, out, start = data(), [], 0
    for rows in ROWS:
        lo = start + sum(rows[:rank])
        xb = x[lo : lo + rows[rank]]
        out.append((xb, (xb[:, 0] > 0).long()))
        start += sum(rows)
    return out


class PerRank(pl.LightningDataModule):
    def train_dataloader(self):
        return batches_loader(rank_batches(self.trainer.global_rank))


class Dump(pl.Callback):
    def __init__(self, monitor, counter, out):
        self.monitor, self.counter, self.out = monitor, counter, Path(out)

    def setup(self, trainer, pl_module, stage):
        shift_monitor_module.torch_distributed_all_reduce = self.counter

    def on_train_end(self, trainer, pl_module):
        record = {
            "history": self.monitor.history,
            "collectives": self.counter.calls,
            "world": trainer.world_size,
        }
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    counter = CountingAllReduce(shift_monitor_module.torch_distributed_all_reduce)
    pl.seed_everything(0, verbose=False)
    monitor = ShiftMonitor(every_n_steps=1, hist_max_elements=10**6)
    net = nn.Sequential(nn.Linear(FEATURES, 8), nn.ReLU(), nn.Linear(8, 2))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_fork",
        max_epochs=2,
        logger=False,
        callbacks=[monitor, Dump(monitor, counter, args.out)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(Classifier(net, lr=0.1, global_batch=GLOBAL_BATCH), datamodule=PerRank())


if __name__ == "__main__":
    main()
