"""GradientICSMonitor: the gradient-based internal covariate shift of Santurkar et al. (2018)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch import LightningModule, Trainer
from torch import Tensor
from typing_extensions import override

from shiftkit.monitor.periodic import BatchLossFn, PeriodicMeasurement
from shiftkit.tracker.probe import ProbeFn
from shiftkit.tracker.selection import Pattern, as_patterns, select_modules
from shiftkit.monitor.validation import MonitorConfigError
from shiftkit.records.names import GRAD_ICS_STATS, grad_ics_key
from shiftkit.stats import MEASURED_TYPES, gradient_ics, parameter_snapshot

#: How the callback's messages name it (layer selection is shared with ShiftMonitor).
OWNER = "GradientICSMonitor"


class GradientICSMonitor(PeriodicMeasurement):
    r"""Gradient-based internal covariate shift (Santurkar et al. 2018, Definition 2.1).

    Opt-in and expensive: every ``every_n_steps`` optimizer steps, for each selected
    layer ``i``, it compares ``G``, the gradient of the loss w.r.t. the layer's
    parameters with every layer at ``theta_t``, with ``G'``, the same gradient on the
    same batch after the layers below ``i`` took their step-``t`` update. ``theta_t`` is
    copied in ``on_before_optimizer_step`` (gradients computed, step not taken); the
    measurement runs in ``on_train_batch_end``, after the step. Definitions (what
    "below" means, batch-norm affine parameters included; RNG and buffers) are in
    :mod:`shiftkit.stats.gradient_ics`; the training run is left exactly as it was
    (parameters, ``.grad``, buffers, RNG streams).

    Logged per layer, as ``grad_ics/{layer}/{stat}``: ``l2`` (``||G - G'||_2``),
    ``cos`` (``cos(G, G')``), ``grad_norm`` (``||G||_2``), ``rel`` (``l2 / grad_norm``).
    All values of a measurement are read to the host in one transfer and logged with
    one ``log_metrics`` call per logger, at the step ``t`` whose update is measured.

    Cost per measurement: ``1 + L`` forward/backward passes for ``L`` layers (one less
    when the first layer is measured: nothing is below it, ``G' = G``), two parameter
    copies and two copies of the measured gradients.

    Under DDP every rank computes ``G`` and ``G'`` on its own batch and the packed
    ``[G, G']`` of all layers is averaged across ranks with one ``all_reduce`` before
    the norms: the numbers are those of the global batch (DDP's averaged gradient),
    identical on every rank. Only automatic optimization with one optimizer is
    supported. Under gradient accumulation the step is measured once, on its last
    micro-batch, once the optimizer has stepped.

    Args:
        layers: which layers to measure: glob patterns on module names (``"model.net.*"``)
            or type names (``"Conv*"``), or module classes; modules that own no
            trainable parameter of their own are skipped. Default: every ``Linear``
            and ``Conv*``/``ConvTranspose*``.
        exclude: patterns of modules to leave out, same forms as ``layers``.
        every_n_steps: measure every this many optimizer steps (``global_step % n == 0``).
        probe_batch: None (default): the step's training batch, as the definition
            asks; ``"first"``: the first training batch, kept; or a fixed batch.
        probe_fn: ``probe_fn(module, batch)`` runs the forward; default ``module(batch[0])``.
        loss_fn: ``loss_fn(outputs, batch)``; default cross-entropy against ``batch[1]``.
        seed: the RNG seed each pass starts from (same dropout masks for ``G`` and ``G'``).
        keep_history: keep :attr:`history` in memory.

    Attributes:
        history: a list of dict rows, one per (measurement, layer): ``step``, ``layer``,
            ``l2``, ``cos``, ``grad_norm``, ``rel``.

    Example::

        from lightning.pytorch import Trainer
        from shiftkit.monitor import GradientICSMonitor

        monitor = GradientICSMonitor(every_n_steps=100, layers=["model.net.*"])
        Trainer(max_steps=2000, callbacks=[monitor]).fit(model, datamodule)
        import pandas as pd
        pd.DataFrame(monitor.history).groupby("layer").l2.mean()
    """

    def __init__(
        self,
        layers: Pattern | Sequence[Pattern] | None = None,
        exclude: Pattern | Sequence[Pattern] | None = None,
        every_n_steps: int = 50,
        probe_batch: Any = None,
        probe_fn: ProbeFn | None = None,
        loss_fn: BatchLossFn | None = None,
        seed: int = 0,
        keep_history: bool = True,
    ):
        super().__init__(every_n_steps, probe_batch, probe_fn, loss_fn, seed, keep_history)
        as_patterns(layers, "layers", OWNER)
        as_patterns(exclude, "exclude", OWNER)
        self.layers, self.exclude = layers, exclude
        self.layer_names: list[str] = []
        self._before: dict[str, Tensor] | None = None
        self._before_step = -1

    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(
            layers=repr(self.layers), exclude=repr(self.exclude), every_n_steps=self.every_n_steps
        )

    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        patterns = list(MEASURED_TYPES) if self.layers is None else self.layers
        selected = select_modules(pl_module, patterns, self.exclude, warn_unmatched=self.layers is not None, owner=OWNER)
        self.layer_names = [
            name
            for name, module in selected
            if any(p.requires_grad for p in module.parameters(recurse=False))
        ]
        if not self.layer_names:
            raise MonitorConfigError(
                f"GradientICSMonitor: layers={self.layers!r} matched "
                f"{[n for n, _ in selected][:10]}, none of which owns a trainable parameter"
            )

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.due(trainer):
            self._before = parameter_snapshot(pl_module)  # theta_t: gradients in, step not taken
            self._before_step = trainer.global_step

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._before is None:
            return
        before, step, self._before = self._before, self._before_step, None
        with self.measuring(trainer) as reduce:
            result = gradient_ics(
                pl_module,
                self.loss_closure(batch),
                before,
                layers=self.layer_names,
                seed=self.seed,
                **reduce,
            )
        host = torch.stack([getattr(result, stat) for stat in GRAD_ICS_STATS]).tolist()
        rows = [
            {"step": step, "layer": layer, **{s: host[j][i] for j, s in enumerate(GRAD_ICS_STATS)}}
            for i, layer in enumerate(result.layers)
        ]
        for row in rows:
            if not math.isfinite(row["l2"]) or not math.isfinite(row["grad_norm"]):
                self.warn_once(
                    row["layer"], f"layer {row['layer']!r}: non-finite gradients at step {step}"
                )
        metrics = {grad_ics_key(r["layer"], s): r[s] for r in rows for s in GRAD_ICS_STATS}
        self.publish(trainer, step, metrics, rows)
