"""The probe batch: the same inputs re-run through the model at every measurement.

Comparing the layer inputs of one fixed batch at two steps isolates the shift
caused by the parameter updates from the shift caused by drawing a different
minibatch. The probe runs the model's *training-mode* forward (as the paper's
definition of internal covariate shift asks), under ``torch.no_grad()``, and
leaves no trace: buffers (BatchNorm running statistics, step counters) are
restored afterwards and the random number generators are forked and seeded,
so dropout/noise layers draw the same masks at every probe and the training
run's random stream is untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import Tensor, nn

#: ``probe_fn(module, batch)`` runs the forward pass of ``module`` on ``batch``.
ProbeFn = Callable[[nn.Module, Any], Any]


def default_probe_fn(module: nn.Module, batch: Any) -> Any:
    """Forward the inputs of a batch: ``module(batch)`` for a tensor,
    ``module(batch[0])`` for an ``(x, y, ...)`` tuple/list, ``module(batch["x"])``
    (or ``"input"``/``"inputs"``) for a dict.
    """
    if isinstance(batch, Tensor):
        return module(batch)
    if isinstance(batch, (tuple, list)) and batch:
        return module(batch[0])
    if isinstance(batch, Mapping):
        for key in ("x", "input", "inputs", "image", "images"):
            if key in batch:
                return module(batch[key])
    raise TypeError(
        f"ShiftMonitor(reference='probe'): cannot tell the inputs of a batch of type "
        f"{type(batch).__name__}; pass probe_fn=lambda module, batch: module(...)"
    )


def map_tensors(batch: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``batch`` with ``fn`` applied to every tensor in it (dicts, lists, tuples, namedtuples)."""
    if isinstance(batch, Tensor):
        return fn(batch)
    if isinstance(batch, Mapping):
        return type(batch)({k: map_tensors(v, fn) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(map_tensors(v, fn) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(map_tensors(v, fn) for v in batch)
    return batch


def detached_copy(batch: Any) -> Any:
    """A copy of a (nested) batch with every tensor detached and cloned."""
    return map_tensors(batch, lambda t: t.detach().clone())


def moved_copy(batch: Any, device) -> Any:
    """A detached copy of a (nested) batch with every tensor on ``device``."""
    return map_tensors(batch, lambda t: t.detach().clone().to(device))


#: Leaf types a ``weights_only=True`` checkpoint loads.
_PLAIN_LEAVES = (str, bytes, int, float, bool, complex, type(None))


def plain_batch(batch: Any) -> Any:
    """A copy of a (nested) batch made of CPU tensors, dicts, lists, tuples, strings and numbers only.

    Namedtuples become tuples and mappings become dicts, so a checkpoint holding
    it loads with ``torch.load(..., weights_only=True)``.

    Raises:
        TypeError: the batch holds another kind of object (named in the message).
    """
    if isinstance(batch, Tensor):
        return batch.detach().cpu().clone()
    if isinstance(batch, Mapping):
        return {k: plain_batch(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(plain_batch(v) for v in batch)
    if isinstance(batch, list):
        return [plain_batch(v) for v in batch]
    if isinstance(batch, _PLAIN_LEAVES):
        return batch
    raise TypeError(f"it holds a {type(batch).__module__}.{type(batch).__qualname__}, not only tensors, containers and numbers")


def run_probe(module: nn.Module, batch: Any, probe_fn: ProbeFn, seed: int) -> None:
    """Run ``probe_fn(module, batch)`` in training mode without side effects (see module doc)."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    was_training = module.training
    # Every initialized CUDA device: manual_seed below seeds them all.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            module.train()
            probe_fn(module, batch)
    finally:
        module.train(was_training)
        with torch.no_grad():
            for buf, copy in saved:
                buf.copy_(copy)
