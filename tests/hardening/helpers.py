"""Helpers of the hardening matrix: a quiet fit that records the monitor's warnings, and an
independent oracle of what a module's calls carried."""

from __future__ import annotations

import warnings
from typing import Callable

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from shiftkit import ShiftMonitor
from tests.monitor.helpers import trainer


def fit(
    model,
    data,
    monitor: ShiftMonitor | None = None,
    max_steps: int = 3,
    callbacks=(),
    **trainer_kwargs,
):
    """Fit ``model`` with ``monitor`` on a quiet CPU Trainer; returns the messages of every warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cbs = ([monitor] if monitor is not None else []) + list(callbacks)
        trainer(max_steps=max_steps, callbacks=cbs, **trainer_kwargs).fit(model, data)
    return [str(w.message) for w in caught]


def monitor_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if m.startswith("ShiftMonitor")]


def rows(monitor: ShiftMonitor, site: str) -> dict[int, dict]:
    """The monitor's history of one site, by step."""
    return {r["step"]: r for r in monitor.history if r["site"] == site}


class Capture(pl.Callback):
    """Records, per optimizer step, the tensor each call of one module carried.

    An oracle independent of the monitor: its own forward (pre-)hook on
    ``pl_module.get_submodule(name)``; ``pick(args, kwargs)`` (or ``pick(output)``
    with ``output=True``) returns the tensor to keep.
    """

    def __init__(
        self, name: str, pick: Callable[..., torch.Tensor] | None = None, output: bool = False
    ):
        self.name, self.output = name, output
        self.pick = pick or ((lambda out: out) if output else (lambda args, kwargs: args[0]))
        self.calls: dict[int, list[torch.Tensor]] = {}
        self.step = 0
        self._handle = None

    def setup(self, trainer, pl_module, stage):
        module = pl_module.get_submodule(self.name)
        if self.output:
            self._handle = module.register_forward_hook(
                lambda m, a, out: self._keep(self.pick(out))
            )
        else:
            self._handle = module.register_forward_pre_hook(
                lambda m, a, kw: self._keep(self.pick(a, kw)), with_kwargs=True
            )

    def _keep(self, x: torch.Tensor) -> None:
        self.calls.setdefault(self.step, []).append(x.detach().clone())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step = trainer.global_step

    def teardown(self, trainer, pl_module, stage):
        self._handle.remove()

    def values(self, step: int) -> np.ndarray:
        """Every element of every call at ``step``, as float64 (finite ones only)."""
        v = np.concatenate([t.double().numpy().ravel() for t in self.calls[step]])
        return v[np.isfinite(v)]


def assert_pooled_moments(row: dict, values: np.ndarray, rel: float = 1e-6) -> None:
    """The monitor's pooled ``mean``/``std`` of a site equal those of all its elements."""
    assert row["mean"] == pytest.approx(values.mean(), rel=rel, abs=1e-7)
    assert row["std"] == pytest.approx(values.std(), rel=rel)
