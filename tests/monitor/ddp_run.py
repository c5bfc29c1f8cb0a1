"""Fit OffsetNet with ShiftMonitor under a given strategy; each rank dumps its history.

Run from the repository root: ``python -m tests.monitor.ddp_run --strategy ddp --devices 2 --batch 8 --out DIR``.
A subprocess, because Lightning's ``ddp`` launcher re-runs the command line in
its child (inside pytest that would re-run the whole session).
"""

import argparse
import json
import os
from pathlib import Path

import torch

torch.set_num_threads(1)  # two ranks on two cores: oversubscription slows DDP ~100x

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402

import shiftkit.tracker.tracker as shift_monitor_module  # noqa: E402
from shiftkit import ShiftMonitor  # noqa: E402
from tests.monitor.helpers import OffsetNet, loader, standardized  # noqa: E402


class SameOrder(pl.LightningDataModule):
    """Rank r gets rows r, r+k, r+2k, ...: with k ranks of batch b, step t covers exactly
    the rows of the single-process batch t of size k*b. (Lightning's own
    DistributedSampler always shuffles the training set.)"""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def train_dataloader(self):
        from torch.utils.data import DataLoader, DistributedSampler

        data = loader(standardized(96, 6), self.batch).dataset
        world, rank = self.trainer.world_size, self.trainer.global_rank
        sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=False)
        return DataLoader(data, batch_size=self.batch, sampler=sampler)


class CountingAllReduce:
    """Wraps the monitor's collective to count calls per op."""

    def __init__(self, inner):
        self.inner, self.calls = inner, {"sum": 0, "max": 0}

    def __call__(self, tensor, op):
        self.calls[op] += 1
        self.inner(tensor, op)


class DumpHistory(pl.Callback):
    def __init__(self, monitor, counter, out):
        self.monitor, self.counter, self.out = monitor, counter, Path(out)

    def setup(self, trainer, pl_module, stage):
        # In the rank's own process (ddp_spawn re-imports modules in its children).
        shift_monitor_module.torch_distributed_all_reduce = self.counter

    def on_train_end(self, trainer, pl_module):
        record = {"history": self.monitor.history, "collectives": self.counter.calls, "world": trainer.world_size}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def fit_and_dump(out, make_model, datamodule, **trainer_kwargs) -> None:
    """Fit ``make_model()`` (built after seeding) with a ShiftMonitor measuring every step;
    each rank dumps its history and collective counts into ``out``."""
    os.makedirs(out, exist_ok=True)
    counter = CountingAllReduce(shift_monitor_module.torch_distributed_all_reduce)
    pl.seed_everything(0, verbose=False)
    monitor = ShiftMonitor(every_n_steps=1, hist_max_elements=10**6)
    trainer = pl.Trainer(
        accelerator="cpu",
        callbacks=[monitor, DumpHistory(monitor, counter, out)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        **trainer_kwargs,
    )
    trainer.fit(make_model(), datamodule=datamodule)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--strategy", default="auto")
    p.add_argument("--devices", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    fit_and_dump(
        args.out,
        lambda: OffsetNet(lr=0.3, delta=0.4, shift_step=3),
        SameOrder(args.batch),
        devices=args.devices,
        strategy=args.strategy,
        max_steps=args.steps,
        logger=CSVLogger(args.out, name="csv", version=0),
    )


if __name__ == "__main__":
    main()
