"""PeriodicMeasurement: what the two optional, expensive measurements share.

:class:`~shiftkit.monitor.gradient_ics.GradientICSMonitor` and
:class:`~shiftkit.monitor.landscape.LandscapeMonitor` measure every N optimizer steps on a batch
through a loss closure; this module decides when and on which batch, builds the closure, checks
the Trainer's configuration, reduces across DDP ranks, logs (through
:func:`~shiftkit.tracker.logging.log_measurement`, as ShiftMonitor does) and checkpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from typing_extensions import override

from shiftkit.monitor.distributed import is_distributed
from shiftkit.tracker.logging import log_measurement
from shiftkit.tracker.probe import ProbeFn, default_probe_fn, detached_copy, moved_copy
from shiftkit.monitor.shift_monitor import ShiftMonitor
from shiftkit.monitor.validation import MonitorConfigError, check_callable, check_int
from shiftkit.stats import torch_distributed_all_reduce

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
        check_int(owner, "every_n_steps", every_n_steps, 1)
        check_callable(owner, "probe_fn", probe_fn, "probe_fn(module, batch)")
        check_callable(owner, "loss_fn", loss_fn, "loss_fn(outputs, batch)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise MonitorConfigError(f"{owner}: seed must be an integer, got {seed!r}")
        if isinstance(probe_batch, str) and probe_batch != "first":
            raise MonitorConfigError(
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
        self._failed_loggers: set[int] = set()  # ids of loggers whose log_metrics raised

    # ---------------------------------------------------------------- life cycle
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._failed_loggers = set()
        if stage == "fit" and not pl_module.automatic_optimization:
            raise MonitorConfigError(
                f"{type(self).__name__} supports automatic optimization only "
                "(the measurement hooks into the optimizer step Lightning takes)"
            )

    @override
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise MonitorConfigError(
                f"{type(self).__name__} supports exactly one optimizer, "
                f"the LightningModule configured {len(trainer.optimizers)}"
            )

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.probe_batch is not None and not self._keep_first:
            self._probe = moved_copy(self.probe_batch, pl_module.device)
        elif self._probe is not None:  # "first", restored from a checkpoint
            self._probe = moved_copy(self._probe, pl_module.device)

    @override
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
        reduce = {"all_reduce": torch_distributed_all_reduce, "world_size": trainer.world_size}
        with paused_shift_monitors(trainer), torch.enable_grad():
            yield reduce if is_distributed(trainer) else {}

    def publish(
        self, trainer: Trainer, step: int, metrics: dict[str, float], rows: list[dict]
    ) -> None:
        """Log ``metrics`` (NaN left out, see :func:`~shiftkit.tracker.logging.log_measurement`:
        a failing logger is warned about once, never raised); keep ``rows`` in :attr:`history`."""
        log_measurement(trainer.loggers, metrics, step, self._failed_loggers, type(self).__name__)
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
    @override
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

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        self.measurements = state_dict.get("measurements", 0)
        self.last_measured_step = state_dict.get("last_measured_step")
        self.history = list(state_dict.get("history", []))
        if state_dict.get("probe") is not None:
            self._probe = state_dict["probe"]
