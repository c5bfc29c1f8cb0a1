"""Warnings said once, by one process: the tracker's replacement for Lightning's ``rank_zero_warn``.

The tracker imports no Lightning, yet under DDP only one rank should say what every rank sees.
"""

from __future__ import annotations

import os
import warnings

import torch

#: Environment variables launchers set to a process's global rank (torchrun, SLURM, jsrun).
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def global_rank() -> int:
    """This process's rank: from ``torch.distributed`` when it is up, else from the launcher's
    environment, else 0."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    for name in _RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None and value.isdigit():
            return int(value)
    return 0


def rank_zero_warn(message: str, stacklevel: int = 3) -> None:
    """``warnings.warn(message)`` (a ``UserWarning``) on global rank 0 only."""
    if global_rank() == 0:
        warnings.warn(message, UserWarning, stacklevel=stacklevel)
