"""Whether a Trainer runs across processes that the monitors must reduce over."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer


def is_distributed(trainer: Trainer) -> bool:
    """The Trainer has several processes and their default ``torch.distributed`` group is up.

    Then every rank must enter the monitors' collectives (``all_reduce``) at the same
    measurement; otherwise a measurement reduces nothing.
    """
    dist = torch.distributed
    return trainer.world_size > 1 and dist.is_available() and dist.is_initialized()
