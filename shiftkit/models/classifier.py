"""``ShiftClassifier``: the LightningModule of every recipe (classification, the zoo's knobs)."""

from __future__ import annotations

import functools
import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from shiftkit.models.norms import convert_sync_batchnorm
from shiftkit.records.names import (
    DIVERGED,
    DIVERGED_STEP,
    TEST_ACC,
    TEST_LOSS,
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
)

#: The logged keys of an evaluation stage: (loss, accuracy).
_EVAL_KEYS = {"val": (VAL_LOSS, VAL_ACC), "test": (TEST_LOSS, TEST_ACC)}
from shiftkit.models.zoo import build_model

__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "ShiftClassifier", "lr_factor", "scaled_lr"]

OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")


def lr_factor(
    step: int,
    schedule: str = "constant",
    warmup_steps: int = 0,
    step_size: int = 1000,
    gamma: float = 0.1,
    total_steps: int | None = None,
) -> float:
    """Multiplier of the base learning rate after ``step`` optimizer steps.

    Warm-up: ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (linear, Goyal et al. 2017),
    times the schedule: ``constant`` 1; ``step`` ``gamma ** (step // step_size)``; ``exponential``
    ``gamma ** (step / step_size)`` (the same decay, continuous); ``cosine``
    ``(1 + cos(pi * p)) / 2`` with ``p`` the fraction of the post-warm-up steps done (needs
    ``total_steps``).

    Example:
        >>> [lr_factor(s, "step", warmup_steps=2, step_size=3, gamma=0.5) for s in range(7)]
        [0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]
    """
    warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
    if schedule == "constant":
        return warm
    if schedule == "step":
        return warm * gamma ** (step // step_size)
    if schedule == "exponential":
        return warm * gamma ** (step / step_size)
    if schedule == "cosine":
        if not total_steps:
            raise ValueError("the cosine schedule needs total_steps")
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, max(0, step - warmup_steps) / span)
        return warm * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")


def scaled_lr(
    lr: float,
    per_device_batch: int,
    world_size: int = 1,
    accumulate: int = 1,
    base_batch_size: int = 256,
) -> float:
    """Linear scaling rule (Goyal et al. 2017): ``lr * global_batch / base_batch_size`` with
    ``global_batch = per_device_batch * world_size * accumulate``.

    Example:
        >>> scaled_lr(0.1, per_device_batch=64, world_size=8, accumulate=1, base_batch_size=256)
        0.2
    """
    return lr * per_device_batch * world_size * accumulate / base_batch_size


class ShiftClassifier(L.LightningModule):
    """Classifier over the model zoo, with the knobs the claims vary and a run-level summary.

    Logs, through torchmetrics, ``train/loss`` and ``train/acc`` per step and per epoch (Lightning
    writes them to loggers as ``train/loss_step`` / ``train/loss_epoch``, etc.), and ``val/loss``,
    ``val/acc``, ``test/loss``, ``test/acc`` per epoch; ``diverged`` (0/1) and, if so,
    ``diverged_step`` at each training-epoch end.

    Divergence: when the training loss is not finite (on any rank), the step makes no update
    (the loss returned is a zero connected to every parameter, so that DDP's backward still
    runs on all ranks -- Lightning forbids returning None under DDP -- and the gradients are
    dropped before the optimizer step), ``trainer.should_stop`` is set, and
    ``diverged``/``diverged_step`` record it; nothing is raised. Checking costs one host sync
    per step, the price of never applying a NaN update. (The forward of that step has already
    moved batch-norm running statistics, which may then be non-finite: the weights are the last
    finite ones, the eval-mode model of a diverged run is not to be trusted.)

    Args:
        arch: a key of :data:`~shiftkit.models.ARCHITECTURES`.
        input_shape: ``(C, H, W)`` of one example (or ``(F,)`` for MLPs).
        num_classes: number of classes.
        depth: family depth (MLP hidden layers; VGG 11/13/16/19; ResNet 6n+2); None = default.
        width: MLP units per layer, or conv-net channel multiplier; None = default.
        norm: ``none``, ``batch``, ``syncbatch``, ``layer``, ``group``, ``noisy_batch`` (BN then
            Santurkar et al. noise) or ``noisy_none`` (the noise alone: noisy plain net).
        activation: ``sigmoid``, ``tanh``, ``relu``; None = the architecture's default.
        dropout: dropout probability.
        ghost_batch_size: batch-norm group size (per-device BN of DDP on one device).
        init: ``default``, ``normal``, ``xavier``, ``kaiming``.
        init_scale: multiplier on all Linear/Conv weights after init.
        init_std: standard deviation of ``init="normal"``.
        optimizer: ``sgd`` (with ``momentum``) or ``adam`` (default betas; ``momentum`` unused).
        lr: base learning rate.
        lr_multiplier: factor on ``lr`` (BN-x5, BN-x30 of Ioffe & Szegedy).
        momentum: SGD momentum.
        weight_decay: L2 penalty on all parameters (the optimizer's ``weight_decay``).
        lr_schedule: ``constant``, ``step``, ``exponential`` or ``cosine`` (see :func:`lr_factor`).
        lr_step_size: steps per decay by ``lr_gamma`` (``step``, ``exponential``).
        lr_gamma: decay factor.
        lr_total_steps: cosine length; None = ``trainer.max_steps`` or the estimated steps.
        warmup_steps: linear warm-up steps.
        scale_lr_with_batch: multiply the lr by ``global_batch / base_batch_size``, the global
            batch being per-device batch x world size x gradient accumulation.
        base_batch_size: the batch size ``lr`` is meant for.
        batch_size: per-device batch size, needed only by ``scale_lr_with_batch``; None = read the
            datamodule's ``batch_size`` attribute.
        target_accuracy: ``steps_to_target`` is the first global step at which ``val/acc`` reached
            it (resolution: the validation interval).

    Attributes:
        diverged, diverged_step, steps_to_target, best_val_acc: the run's outcome so far (kept in
        checkpoints).

    Example:
        >>> model = ShiftClassifier(arch="paper_mlp", norm="batch", lr=0.5, target_accuracy=0.9)
        >>> # trainer.fit(model, datamodule=...); model.result_summary()["steps_to_target"]
    """

    def __init__(
        self,
        arch: str = "mlp",
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_classes: int = 10,
        depth: int | None = None,
        width: float | None = None,
        norm: str = "none",
        activation: str | None = None,
        dropout: float = 0.0,
        ghost_batch_size: int | None = None,
        init: str = "default",
        init_scale: float = 1.0,
        init_std: float = 0.01,
        optimizer: str = "sgd",
        lr: float = 0.1,
        lr_multiplier: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_schedule: str = "constant",
        lr_step_size: int = 1000,
        lr_gamma: float = 0.1,
        lr_total_steps: int | None = None,
        warmup_steps: int = 0,
        scale_lr_with_batch: bool = False,
        base_batch_size: int = 256,
        batch_size: int | None = None,
        target_accuracy: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        size = {k: v for k, v in (("depth", depth), ("width", width)) if v is not None}
        self.model = build_model(
            arch,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            norm=norm,
            activation=activation,
            dropout=dropout,
            ghost_batch_size=ghost_batch_size,
            init=init,
            init_scale=init_scale,
            init_std=init_std,
            **size,
        )
        for stage in ("train", "val", "test"):
            # nan_strategy="disable": a NaN loss shows as NaN, not silently dropped from the mean.
            setattr(self, f"{stage}_loss", MeanMetric(nan_strategy="disable"))
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes, average="micro"))
        self.diverged = False
        self.diverged_step: int | None = None
        self.steps_to_target: int | None = None
        self.best_val_acc: float | None = None
        self._base_lr: float | None = None
        self._skip_update = False
        # Last value of each metric, kept per stage: trainer.callback_metrics is reset by each
        # new fit/validate/test, so a test run would otherwise erase the fit's numbers.
        self._last_metrics: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def setup(self, stage: str) -> None:
        # The process group exists by now and DDP has not wrapped the model yet; on one process
        # this keeps plain BatchNorm.
        if self.hparams.norm == "syncbatch":
            device = self.trainer.strategy.root_device
            self.model = convert_sync_batchnorm(self.model, device=device)

    # ------------------------------------------------------------------ optimization

    def global_batch_size(self) -> int:
        """Per-device batch x world size x gradient accumulation (needs an attached trainer)."""
        per_device = self.hparams.batch_size or getattr(self.trainer.datamodule, "batch_size", None)
        if per_device is None:
            raise ValueError(
                "scale_lr_with_batch needs the per-device batch size: pass batch_size= to "
                "ShiftClassifier (with LightningCLI, link data.batch_size to model.batch_size) or "
                "use a datamodule that has a batch_size attribute"
            )
        return per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def base_lr(self) -> float:
        """The learning rate the schedule multiplies: ``lr x lr_multiplier``, linearly scaled with
        the global batch when ``scale_lr_with_batch``."""
        hp = self.hparams
        lr = hp.lr * hp.lr_multiplier
        if hp.scale_lr_with_batch:
            lr = scaled_lr(lr, self.global_batch_size(), base_batch_size=hp.base_batch_size)
        return lr

    def configure_optimizers(self):
        hp = self.hparams
        self._base_lr = self.base_lr()
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(
                self.parameters(),
                lr=self._base_lr,
                momentum=hp.momentum,
                weight_decay=hp.weight_decay,
            )
        else:
            opt = torch.optim.Adam(
                self.parameters(), lr=self._base_lr, weight_decay=hp.weight_decay
            )
        total = hp.lr_total_steps
        if hp.lr_schedule == "cosine" and total is None:
            total = self.trainer.max_steps if self.trainer.max_steps > 0 else None
            total = total or int(self.trainer.estimated_stepping_batches)
        factor = functools.partial(
            lr_factor,
            schedule=hp.lr_schedule,
            warmup_steps=hp.warmup_steps,
            step_size=hp.lr_step_size,
            gamma=hp.lr_gamma,
            total_steps=total,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ steps

    def training_step(self, batch, batch_idx: int):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        # All ranks decide together, or DDP's gradient all_reduce would hang.
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            self._record_divergence()
            # Lightning forbids returning None under DDP, and DDP needs every rank's backward:
            # return a zero touching every parameter (exact zero gradients, whatever the logits);
            # on_before_optimizer_step then drops the gradients so that no update happens.
            return sum((p * 0).sum() for p in self.parameters())
        self.train_loss(loss, len(y))
        self.train_acc(logits, y)
        self.log(TRAIN_LOSS, self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log(TRAIN_ACC, self.train_acc, on_step=True, on_epoch=True)
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._skip_update:
            # Gradients of None make SGD and Adam skip every parameter: no momentum, no decay.
            optimizer.zero_grad(set_to_none=True)
            self._skip_update = False

    def _record_divergence(self) -> None:
        if not self.diverged:  # keep the first step (min_steps can keep a stopped run going)
            self.diverged, self.diverged_step = True, self.global_step
        self._skip_update = True
        self.trainer.should_stop = True
        rank_zero_info(
            f"ShiftClassifier: training loss not finite at global step {self.global_step}; "
            "step skipped and run stopped (diverged)."
        )

    def on_train_epoch_end(self) -> None:
        # Identical on every rank (decided together); sync_dist only keeps Lightning from warning.
        self.log(DIVERGED, float(self.diverged), sync_dist=True)
        if self.diverged:
            self.log(DIVERGED_STEP, float(self.diverged_step), sync_dist=True)

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        logits = self(x)
        loss_metric, acc_metric = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_acc")
        loss_metric.update(F.cross_entropy(logits, y), len(y))
        acc_metric.update(logits, y)
        loss_key, acc_key = _EVAL_KEYS[stage]
        self.log(loss_key, loss_metric, on_step=False, on_epoch=True, prog_bar=True)
        self.log(acc_key, acc_metric, on_step=False, on_epoch=True, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        # After divergence the weights are what broke the run: not evidence of reaching a target.
        if self.trainer.sanity_checking or self.diverged:
            return
        # compute() caches its (rank-synced) value, so Lightning's own compute reuses it.
        acc = float(self.val_acc.compute())
        if self.best_val_acc is None or acc > self.best_val_acc:
            self.best_val_acc = acc
        target = self.hparams.target_accuracy
        if target is not None and self.steps_to_target is None and acc >= target:
            self.steps_to_target = self.global_step

    # ------------------------------------------------------------------ run record

    def _remember(self, prefix: str) -> None:
        for name, value in self.trainer.callback_metrics.items():
            if name.startswith(prefix):
                self._last_metrics[name] = float(value)

    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._remember("val/")

    def on_test_end(self) -> None:
        self._remember("test/")

    def on_fit_end(self) -> None:
        self._remember("train/")

    _OUTCOME = ("diverged", "diverged_step", "steps_to_target", "best_val_acc")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["shiftkit_outcome"] = {k: getattr(self, k) for k in self._OUTCOME}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        for k, v in checkpoint.get("shiftkit_outcome", {}).items():
            setattr(self, k, v)

    def result_summary(self) -> dict:
        """The run's outcome as a plain dict (floats, ints, bools, None), for a result record.

        Keys: ``train/loss``, ``train/acc`` (last epoch means of the last fit), ``val/loss``,
        ``val/acc`` (last validation), ``test/loss``, ``test/acc`` (last test; None where that
        stage has not run), ``best_val_acc``,
        ``target_accuracy``, ``steps_to_target``, ``diverged``, ``diverged_step``,
        ``global_step``, ``base_lr`` (lr after multiplier and batch scaling, before the schedule).
        """

        def last(*names: str) -> float | None:
            return next((self._last_metrics[n] for n in names if n in self._last_metrics), None)

        return {
            TRAIN_LOSS: last(f"{TRAIN_LOSS}_epoch", TRAIN_LOSS),
            TRAIN_ACC: last(f"{TRAIN_ACC}_epoch", TRAIN_ACC),
            VAL_LOSS: last(VAL_LOSS),
            VAL_ACC: last(VAL_ACC),
            TEST_LOSS: last(TEST_LOSS),
            TEST_ACC: last(TEST_ACC),
            "best_val_acc": self.best_val_acc,
            "target_accuracy": self.hparams.target_accuracy,
            "steps_to_target": self.steps_to_target,
            "diverged": self.diverged,
            "diverged_step": self.diverged_step,
            "global_step": self.global_step,
            "base_lr": self._base_lr,
        }
