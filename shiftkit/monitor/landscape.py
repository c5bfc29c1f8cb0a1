"""LandscapeMonitor: smoothness of the loss along the gradient (Santurkar et al. 2018, Fig. 4)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from typing_extensions import override

from shiftkit.monitor.periodic import BatchLossFn, PeriodicMeasurement
from shiftkit.tracker.probe import ProbeFn
from shiftkit.monitor.validation import MonitorConfigError, is_positive_number
from shiftkit.records.names import LANDSCAPE_STATS, landscape_key
from shiftkit.stats import DEFAULT_MULTIPLIERS, landscape_along_gradient


class LandscapeMonitor(PeriodicMeasurement):
    r"""Loss variation, gradient predictiveness and effective beta-smoothness along the gradient.

    Opt-in and expensive: every ``every_n_steps`` optimizer steps, in
    ``on_before_optimizer_step`` (the step's gradients computed, the update not yet
    applied), on the step's training batch, it recomputes the gradient ``g`` at the
    current parameters ``x`` and evaluates the loss and its gradient at ``x - eta g``
    for step sizes ``eta = m * lr``, ``m`` in ``multipliers`` (default 8 values,
    log-spaced from 0.5 to 4, as in Santurkar et al. Fig. 4). ``lr`` is the
    optimizer's first parameter group's current learning rate unless given; the
    parameters that move are the optimizer's. Definitions, RNG and buffer handling are
    in :mod:`shiftkit.stats.landscape`; parameters, ``.grad``, buffers and RNG streams
    are restored before the optimizer steps, so training is unchanged.

    Logged, as ``landscape/{stat}``: ``loss_range`` (max - min of ``L(x - eta g)``),
    ``loss_min``, ``loss_max``, ``grad_pred_max`` / ``grad_pred_min`` (max / min over
    ``eta`` of ``||grad L(x) - grad L(x - eta g)||``) and ``beta_smooth`` (max over ``eta``
    of that change divided by ``||eta g||``); read in one transfer, logged with one
    ``log_metrics`` call per logger at the step being taken.

    Cost per measurement: ``1 + K`` forward/backward passes for ``K`` step sizes, and
    three parameter-sized vectors. Under DDP the gradient and losses are averaged
    across ranks (``1 + K`` all_reduces of one parameter-sized vector): every rank moves
    along the global-batch gradient and logs the same numbers. Only automatic
    optimization with one optimizer is supported. Under gradient accumulation the
    step's last micro-batch is measured.

    Args:
        every_n_steps: measure every this many optimizer steps (``global_step % n == 0``).
        lr: the learning rate the multipliers scale; default: the optimizer's first
            parameter group's ``lr`` at the measured step (a step where it is 0 is skipped).
        multipliers: step sizes in units of ``lr``.
        probe_batch: None (default): the step's training batch; ``"first"``: the first
            training batch, kept; or a fixed batch.
        probe_fn: ``probe_fn(module, batch)`` runs the forward; default ``module(batch[0])``.
        loss_fn: ``loss_fn(outputs, batch)``; default cross-entropy against ``batch[1]``.
        seed: the RNG seed each pass starts from (same dropout masks at every step size).
        keep_history: keep :attr:`history` in memory.

    Attributes:
        history: a list of dict rows, one per measurement: ``step``, ``lr``, the six
            logged statistics, ``loss`` (``L(x)``) and ``grad_norm`` (``||g||``).

    Example::

        from lightning.pytorch import Trainer
        from shiftkit.monitor import LandscapeMonitor

        monitor = LandscapeMonitor(every_n_steps=100)
        Trainer(max_steps=2000, callbacks=[monitor]).fit(model, datamodule)
        import pandas as pd
        pd.DataFrame(monitor.history).plot(x="step", y="beta_smooth")
    """

    def __init__(
        self,
        every_n_steps: int = 100,
        lr: float | None = None,
        multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
        probe_batch: Any = None,
        probe_fn: ProbeFn | None = None,
        loss_fn: BatchLossFn | None = None,
        seed: int = 0,
        keep_history: bool = True,
    ):
        super().__init__(every_n_steps, probe_batch, probe_fn, loss_fn, seed, keep_history)
        if lr is not None and not is_positive_number(lr):
            raise MonitorConfigError(
                f"LandscapeMonitor: lr must be None or a positive number, got {lr!r}"
            )
        try:
            multipliers = tuple(float(m) for m in multipliers)
        except (TypeError, ValueError):
            raise MonitorConfigError(
                f"LandscapeMonitor: multipliers must be numbers, got {multipliers!r}"
            ) from None
        if not multipliers or not all(is_positive_number(m) for m in multipliers):
            raise MonitorConfigError(
                f"LandscapeMonitor: multipliers must be positive numbers, got {multipliers!r}"
            )
        self.lr, self.multipliers = lr, multipliers

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            every_n_steps=self.every_n_steps, lr=self.lr, multipliers=self.multipliers
        )

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self._batch is None or not self.due(trainer):
            return
        batch, self._batch = self._batch, None
        step = trainer.global_step
        lr = self.lr if self.lr is not None else float(optimizer.param_groups[0]["lr"])
        if not lr > 0:
            self.warn_once(
                "lr", f"the learning rate is {lr} at step {step}: no step sizes, not measured"
            )
            return
        params = list(
            {
                id(p): p for g in optimizer.param_groups for p in g["params"] if p.requires_grad
            }.values()
        )
        with self.measuring(trainer) as reduce:
            land = landscape_along_gradient(
                pl_module,
                self.loss_closure(batch),
                lr,
                multipliers=self.multipliers,
                params=params,
                seed=self.seed,
                **reduce,
            )
        values = land.summary()  # one device-to-host transfer
        if not all(math.isfinite(v) for v in values.values()):
            self.warn_once("nonfinite", f"non-finite loss or gradient at step {step}")
        row = {"step": step, "lr": lr, **{s: values[s] for s in LANDSCAPE_STATS}}
        row.update(loss=values["loss_at_x"], grad_norm=values["grad_norm"])
        metrics = {landscape_key(s): values[s] for s in LANDSCAPE_STATS}
        self.publish(trainer, step, metrics, [row])
