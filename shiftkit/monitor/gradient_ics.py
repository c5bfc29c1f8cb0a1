"""GradientICSMonitor: the gradient-based internal covariate shift of Santurkar et al. (2018).

Also home of :class:`PeriodicMeasurement`, what the two optional, expensive measurements
(this one and :class:`~shiftkit.monitor.landscape.LandscapeMonitor`) share: the every-N
gate, the batch they measure on, the loss closure, DDP, logging and checkpointing.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from shiftkit.tracker.probe import ProbeFn, default_probe_fn, detached_copy, moved_copy
from shiftkit.tracker.selection import Pattern, as_patterns, select_modules
from shiftkit.monitor.shift_monitor import ShiftMonitor
from shiftkit.records.names import GRAD_ICS_STATS, grad_ics_key
from shiftkit.stats import (
    MEASURED_TYPES,
    gradient_ics,
    parameter_snapshot,
    torch_distributed_all_reduce,
)

#: ``loss_fn(outputs, batch) -> scalar``: the loss of the forward's outputs on a batch.
BatchLossFn = Callable[[Any, Any], Tensor]

_TARGET_KEYS = ("y", "target", "targets", "label", "labels")


def default_loss_fn(outputs: Any, batch: Any) -> Tensor:
    """Cross-entropy of ``outputs`` against the batch's targets.

    The targets are ``batch[1]`` for an ``(x, y, ...)`` tuple/list, or the first of
    ``batch["y"]``, ``["target"]``, ``["targets"]``, ``["label"]``, ``["labels"]`` for a dict.

    Example:
        >>> logits, y = torch.zeros(2, 3), torch.tensor([0, 2])
        >>> round(default_loss_fn(logits, (None, y)).item(), 4)  # log(3)
        1.0986
    """
    if isinstance(batch, (tuple, list)) and len(batch) > 1:
        return F.cross_entropy(outputs, batch[1])
    if isinstance(batch, Mapping):
        for key in _TARGET_KEYS:
            if key in batch:
                return F.cross_entropy(outputs, batch[key])
    raise TypeError(
        f"cannot tell the targets of a batch of type {type(batch).__name__}; "
        "pass loss_fn=lambda outputs, batch: ..."
    )


@contextlib.contextmanager
def paused_shift_monitors(trainer: Trainer) -> Iterator[None]:
    """Keep every :class:`~shiftkit.monitor.ShiftMonitor`'s hooks quiet inside the block.

    Their hooks are active from a measured step's batch start to its batch end, and
    the extra forward passes of an expensive measurement would otherwise be folded into
    that step's activation statistics.

    Example::

        with paused_shift_monitors(trainer):
            extra_forward(pl_module)  # not seen by any ShiftMonitor
    """
    with contextlib.ExitStack() as stack:
        for cb in trainer.callbacks:
            if isinstance(cb, ShiftMonitor):
                stack.enter_context(cb.paused())
        yield


def check_positive_int(owner: str, name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is an integer >= 1.

    Example:
        >>> check_positive_int("Monitor", "every_n_steps", 0)
        Traceback (most recent call last):
        ...
        ValueError: Monitor: every_n_steps must be an integer >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


class PeriodicMeasurement(Callback):
    """Base of the expensive measurements run every ``every_n_steps`` optimizer steps.

    Subclasses measure; this class decides when and on which batch, builds the loss
    closure, checks the Trainer's configuration (automatic optimization, one optimizer),
    logs one ``log_metrics`` call per logger and measurement, keeps :attr:`history`
    and saves it in checkpoints.

    Args:
        every_n_steps: measure at the optimizer steps where ``global_step % every_n_steps == 0``.
        probe_batch: the batch to measure on: None (default) the current training
            batch (under gradient accumulation, the step's last micro-batch);
            ``"first"`` the first training batch, kept; or a batch, kept.
        probe_fn: ``probe_fn(module, batch)`` runs the forward pass; default
            :func:`~shiftkit.tracker.probe.default_probe_fn` (``module(batch[0])``).
        loss_fn: ``loss_fn(outputs, batch)``; default :func:`default_loss_fn`
            (cross-entropy against ``batch[1]``).
        seed: every forward/backward pass of a measurement starts from this RNG seed.
        keep_history: keep :attr:`history` in memory.

    Example:
        >>> # subclassed by GradientICSMonitor and LandscapeMonitor; not used directly
    """

    def __init__(
        self,
        every_n_steps: int,
        probe_batch: Any = None,
        probe_fn: ProbeFn | None = None,
        loss_fn: BatchLossFn | None = None,
        seed: int = 0,
        keep_history: bool = True,
    ):
        super().__init__()
        owner = type(self).__name__
        check_positive_int(owner, "every_n_steps", every_n_steps)
        if probe_fn is not None and not callable(probe_fn):
            raise ValueError(f"{owner}: probe_fn must be callable as probe_fn(module, batch)")
        if loss_fn is not None and not callable(loss_fn):
            raise ValueError(f"{owner}: loss_fn must be callable as loss_fn(outputs, batch)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"{owner}: seed must be an integer, got {seed!r}")
        if isinstance(probe_batch, str) and probe_batch != "first":
            raise ValueError(
                f"{owner}: probe_batch must be None, 'first' or a batch, got {probe_batch!r}"
            )
        self.every_n_steps, self.probe_batch, self.seed = every_n_steps, probe_batch, seed
        self._keep_first = isinstance(probe_batch, str)  # "first"
        self.probe_fn = probe_fn or default_probe_fn
        self.loss_fn = loss_fn or default_loss_fn
        self.keep_history = keep_history

        self.history: list[dict[str, Any]] = []
        self.measurements = 0
        self.last_measured_step: int | None = None
        self._probe: Any = None
        self._batch: Any = None
        self._warned: set[str] = set()

    # ---------------------------------------------------------------- life cycle
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and not pl_module.automatic_optimization:
            raise MisconfigurationException(
                f"{type(self).__name__} supports automatic optimization only "
                "(the measurement hooks into the optimizer step Lightning takes)"
            )

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise MisconfigurationException(
                f"{type(self).__name__} supports exactly one optimizer, "
                f"the LightningModule configured {len(trainer.optimizers)}"
            )

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.probe_batch is not None and not self._keep_first:
            self._probe = moved_copy(self.probe_batch, pl_module.device)
        elif self._probe is not None:  # "first", restored from a checkpoint
            self._probe = moved_copy(self._probe, pl_module.device)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._keep_first and self._probe is None:
            self._probe = detached_copy(batch)
        # Under gradient accumulation the step's last micro-batch is the one kept.
        self._batch = batch if self.due(trainer) else None

    def due(self, trainer: Trainer) -> bool:
        """Whether the optimizer step about to be taken is measured."""
        step = trainer.global_step
        return step % self.every_n_steps == 0 and step != self.last_measured_step

    # ------------------------------------------------------------ per measurement
    def loss_closure(self, batch: Any) -> Callable[[nn.Module], Tensor]:
        """``closure(module) -> loss`` on the probe batch, or on ``batch`` if there is none."""
        batch = batch if self._probe is None else self._probe
        return lambda module: self.loss_fn(self.probe_fn(module, batch), batch)

    @contextlib.contextmanager
    def measuring(self, trainer: Trainer) -> Iterator[dict[str, Any]]:
        """The block a measurement runs in: gradients on, ShiftMonitor hooks paused.

        Yields the keyword arguments that make the pure-torch measurement average
        across DDP ranks (``all_reduce``, ``world_size``), empty on one process.
        """
        dist = torch.distributed
        distributed = trainer.world_size > 1 and dist.is_available() and dist.is_initialized()
        reduce = {"all_reduce": torch_distributed_all_reduce, "world_size": trainer.world_size}
        with paused_shift_monitors(trainer), torch.enable_grad():
            yield reduce if distributed else {}

    def publish(
        self, trainer: Trainer, step: int, metrics: dict[str, float], rows: list[dict]
    ) -> None:
        """Log ``metrics`` (NaN left out), one call per logger; keep ``rows`` in :attr:`history`."""
        metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
        if metrics:
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
        self.measurements += 1
        self.last_measured_step = step
        if self.keep_history:
            self.history.extend(rows)

    def warn_once(self, key: str, message: str) -> None:
        """A rank-zero warning, once per ``key`` per callback."""
        if key not in self._warned:
            self._warned.add(key)
            rank_zero_warn(f"{type(self).__name__}: {message}")

    # -------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        probe = None
        if self._keep_first and self._probe is not None:
            probe = moved_copy(self._probe, "cpu")
        return {
            "version": 1,
            "measurements": self.measurements,
            "last_measured_step": self.last_measured_step,
            "history": list(self.history),
            "probe": probe,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        self.measurements = state_dict.get("measurements", 0)
        self.last_measured_step = state_dict.get("last_measured_step")
        self.history = list(state_dict.get("history", []))
        if state_dict.get("probe") is not None:
            self._probe = state_dict["probe"]


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
    def state_key(self) -> str:
        return self._generate_state_key(
            layers=repr(self.layers), exclude=repr(self.exclude), every_n_steps=self.every_n_steps
        )

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
            raise ValueError(
                f"GradientICSMonitor: layers={self.layers!r} matched "
                f"{[n for n, _ in selected][:10]}, none of which owns a trainable parameter"
            )

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if self.due(trainer):
            self._before = parameter_snapshot(pl_module)  # theta_t: gradients in, step not taken
            self._before_step = trainer.global_step

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
