"""Two CPU ranks, uneven batches: rank 1's first batch is empty, the last batches are partial.

Run from the repository root (a subprocess: Lightning's DDP launchers re-run or fork the
process): ``python -m tests.hardening.ddp_uneven --out DIR``. Each rank writes
``rank{r}.json`` with its history and how often it entered each collective.
"""

import argparse

import torch

torch.set_num_threads(1)  # two ranks on two shared cores

import lightning.pytorch as pl  # noqa: E402
from torch import nn  # noqa: E402

from tests.hardening.zoo import Classifier, batches_loader  # noqa: E402
from tests.monitor.ddp_run import fit_and_dump  # noqa: E402

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


class Branching(nn.Module):
    """fc -> ReLU -> Tanh -> head, where the Tanh runs only on a non-empty batch: at the first
    (discovery) measurement one rank calls it and the other does not."""

    def __init__(self):
        super().__init__()
        self.fc, self.act, self.squash, self.head = (
            nn.Linear(FEATURES, 8),
            nn.ReLU(),
            nn.Tanh(),
            nn.Linear(8, 2),
        )

    def forward(self, x):
        h = self.act(self.fc(x))
        if len(x):
            h = self.squash(h)
        return self.head(h)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    args = p.parse_args()
    make = lambda: Classifier(Branching(), lr=0.1, global_batch=GLOBAL_BATCH)  # noqa: E731
    fit_and_dump(
        args.out, make, PerRank(), devices=2, strategy="ddp_fork", max_epochs=2, logger=False
    )


if __name__ == "__main__":
    main()
