"""The networks the overhead benchmark trains, on synthetic in-memory batches.

Each workload is a :class:`~shiftkit.models.ShiftClassifier` (the LightningModule of every
shiftkit recipe: SGD with momentum, cross-entropy, torchmetrics loss/accuracy logged per step)
over a model-zoo network, fed from a small pool of pre-made random batches. Data loading is
therefore nearly free and identical for every configuration: what differs between
configurations is only the monitor.

``WORKLOADS`` are the three of the overhead targets; :func:`sweep_workload` builds the MLPs of
the scaling figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch.utils.data import DataLoader, Dataset

#: Distinct batches per workload; the loader cycles through them.
POOL_BATCHES = 8


@dataclass(frozen=True)
class Workload:
    """One network, its input shape and batch size, and how long its timing blocks are.

    Args:
        name: short key used on the command line (``mlp``, ``cnn``, ``deep``).
        title: what the table calls it.
        arch, model_kwargs: passed to ``ShiftClassifier(arch=..., **model_kwargs)``.
        input_shape: one example's shape.
        batch_size: per-process batch.
        steps: timed steps per block of an every-step configuration (full run).
        quick_steps: the same in ``--quick``.
        rounds, quick_rounds: interleaved rounds (full, quick).
        warmup: steps discarded at the start of every block.
        lr: learning rate (small enough that 5,000 steps stay finite).
    """

    name: str
    title: str
    arch: str
    input_shape: tuple[int, ...]
    batch_size: int
    steps: int
    quick_steps: int
    rounds: int
    quick_rounds: int
    warmup: int = 5
    lr: float = 0.05
    model_kwargs: dict = field(default_factory=dict)

    def module(self):
        """A fresh ShiftClassifier (seed it before calling for a fixed init)."""
        from shiftkit.models import ShiftClassifier

        return ShiftClassifier(
            arch=self.arch,
            input_shape=self.input_shape,
            num_classes=10,
            lr=self.lr,
            **self.model_kwargs,
        )

    def loader(self, steps: int, seed: int = 0) -> DataLoader:
        """A loader of ``steps`` batches (one epoch), cycling through a fixed pool."""
        return DataLoader(
            BatchPool(self.input_shape, self.batch_size, steps, seed), batch_size=None
        )

    def describe(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "arch": self.arch,
            "model_kwargs": dict(self.model_kwargs),
            "input_shape": list(self.input_shape),
            "batch_size": self.batch_size,
        }


class BatchPool(Dataset):
    """``length`` batches ``(x, y)``, item ``i`` being pool batch ``i % POOL_BATCHES``.

    The pool is drawn once from ``seed``: every block, every configuration sees the same batches
    in the same order. Served with ``DataLoader(batch_size=None)``, so a step costs one index.
    """

    def __init__(self, input_shape: tuple[int, ...], batch_size: int, length: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        n = min(POOL_BATCHES, max(1, length))
        self.x = torch.randn(n, batch_size, *input_shape, generator=g)
        self.y = torch.randint(0, 10, (n, batch_size), generator=g)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        j = i % self.x.shape[0]
        return self.x[j], self.y[j]


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            name="mlp",
            title="3x100 sigmoid MLP (Ioffe & Szegedy), batch 60, 28x28",
            arch="paper_mlp",
            input_shape=(1, 28, 28),
            batch_size=60,
            steps=100,
            quick_steps=40,
            rounds=7,
            quick_rounds=3,
            lr=0.5,
        ),
        Workload(
            name="cnn",
            title="ResNet-20 (BN, ReLU), batch 128, 3x32x32",
            arch="resnet",
            input_shape=(3, 32, 32),
            batch_size=128,
            steps=10,
            quick_steps=4,
            rounds=2,
            quick_rounds=1,
            warmup=2,
            model_kwargs={"depth": 20, "norm": "batch"},
        ),
        Workload(
            name="deep",
            title="MLP depth 24 x 256 (Linear+BN+ReLU), batch 128, 28x28",
            arch="mlp",
            input_shape=(1, 28, 28),
            batch_size=128,
            steps=60,
            quick_steps=20,
            rounds=5,
            quick_rounds=2,
            model_kwargs={"depth": 24, "width": 256, "norm": "batch", "activation": "relu"},
        ),
    )
}


def toy(w: Workload) -> Workload:
    """A tiny version of a workload, for the smoke test (same architecture family, tiny sizes)."""
    small = {"mlp": {}, "cnn": {"depth": 8, "width": 0.25}, "deep": {"depth": 4, "width": 32}}[
        w.name
    ]
    shape = (3, 8, 8) if w.name == "cnn" else (1, 8, 8)
    return replace(
        w,
        input_shape=shape,
        batch_size=8,
        steps=3,
        quick_steps=3,
        rounds=1,
        quick_rounds=1,
        warmup=1,
        model_kwargs={**w.model_kwargs, **small},
    )


def sweep_workload(depth: int, width: int, batch_size: int) -> Workload:
    """An ``mlp`` (Linear + ReLU per block, no norm) for the scaling figure: ``2 * depth + 1`` sites."""
    return Workload(
        name=f"mlp_d{depth}_w{width}_b{batch_size}",
        title=f"MLP depth {depth} x {width}, batch {batch_size}",
        arch="mlp",
        input_shape=(1, 28, 28),
        batch_size=batch_size,
        steps=30,
        quick_steps=12,
        rounds=3,
        quick_rounds=2,
        warmup=3,
        model_kwargs={"depth": depth, "width": width, "norm": "none", "activation": "relu"},
    )


def activation_elements(w: Workload) -> int:
    """Elements of one hidden-layer activation of a sweep MLP (batch x width)."""
    return (
        w.batch_size * int(w.model_kwargs.get("width", 100))
        if w.arch == "mlp"
        else w.batch_size * math.prod(w.input_shape)
    )
