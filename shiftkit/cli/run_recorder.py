"""RunRecorder: leave a complete run directory behind (the contract of :mod:`shiftkit.records.run_dir`)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from typing_extensions import override

from shiftkit.records import (
    HISTOGRAMS_FILE,
    HISTORY_FILE,
    RESULT_FILE,
    config_hash,
    write_run_result,
)

__all__ = ["RunRecorder", "forks_workers", "monitor_summary"]

# Keys of ShiftClassifier.result_summary() that are not metrics but fields of their own.
_OUTCOME_KEYS = ("diverged", "diverged_step", "steps_to_target", "target_accuracy", "global_step")


def forks_workers(trainer: Trainer) -> bool:
    """Whether ``trainer.fit`` runs in worker processes that exit when it returns (``ddp_fork``,
    ``ddp_spawn``, ``ddp_notebook``): then nothing of the fit (monitor history, outcome) survives in
    the calling process, and a later ``trainer.test`` runs in fresh workers."""
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher

    return isinstance(getattr(trainer.strategy, "launcher", None), _MultiProcessingLauncher)


def _finite(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), numpy/torch scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def monitor_summary(monitor) -> dict[str, Any]:
    """Network-level summary of a :class:`~shiftkit.ShiftMonitor`'s history, for ``result.json``.

    Keys: ``measurements``, ``every_n_steps``, ``sites`` (names), and over all measurements:
    ``mean_kl_gauss`` / ``max_kl_gauss`` (mean over measurements of the mean / max over sites of
    ``kl_gauss``, i.e. the logged ``shift/mean_kl_gauss`` / ``shift/max_kl_gauss`` averaged over
    time), ``mean_kl_gauss_above_floor`` (mean of ``kl_gauss - kl_gauss_floor``),
    ``mean_drift`` (mean), ``mean_drift_max_peak`` (the largest logged ``mean_drift_max``); at the last measurement, averaged over
    the sites where they apply: ``sat_frac_last``, ``dead_frac_last``; and ``per_site``: one dict
    per site from :meth:`~shiftkit.ShiftMonitor.summary`. NaN (not applicable) is written null.
    """
    frame = monitor.history_frame()
    out: dict[str, Any] = {
        "measurements": int(monitor.measurements),
        "every_n_steps": monitor.every_n_steps,
        "sites": list(monitor.site_names),
    }
    if frame.empty:
        return out
    if "kl_gauss" in frame:
        by_step = frame.groupby("step")["kl_gauss"]
        out["mean_kl_gauss"] = by_step.mean().mean()
        out["max_kl_gauss"] = by_step.max().mean()
        if "kl_gauss_floor" in frame:
            out["mean_kl_gauss_above_floor"] = (frame["kl_gauss"] - frame["kl_gauss_floor"]).mean()
    if "mean_drift" in frame:
        out["mean_drift"] = frame["mean_drift"].mean()
    if "mean_drift_max" in frame:
        out["mean_drift_max_peak"] = frame["mean_drift_max"].max()
    last = frame[frame["step"] == frame["step"].max()]
    for col in ("sat_frac", "dead_frac"):
        if col in last:
            out[f"{col}_last"] = last[col].mean()
    out["per_site"] = monitor.summary(top=None).to_dict(orient="records")
    return _finite(out)


class RunRecorder(Callback):
    """Write a run directory at the end of a run, on global rank 0, per
    :mod:`shiftkit.records.run_dir`: ``result.json`` last, so that a directory with a
    ``result.json`` is a finished run.

    At the end of ``fit`` (``teardown``, reached only when the fit did not raise) the monitor's
    ``shift_history.csv`` and ``shift_histograms.npz`` are written and the outcome is kept; the
    record is written then, or after the ``test`` that follows the fit when ``test_after_fit``
    (and the fit did not run in worker processes, see :func:`forks_workers`). Stale run files of
    an earlier attempt in the same directory are removed when the fit starts. ``metrics.csv`` is
    the :class:`~lightning.pytorch.loggers.CSVLogger` file of the run directory (the logger's
    ``log_dir`` must be ``run_dir``); it is flushed before ``result.json`` is written. With a
    :class:`~lightning.pytorch.loggers.WandbLogger`, the outcome goes into the W&B run summary and
    the W&B run is finished.

    ``result.json`` fields: ``recipe``, ``variant``, ``seed``, ``config``, ``config_hash``,
    ``metrics`` (from ``pl_module.result_summary()`` when the module has it, else the trainer's
    last ``train/``, ``val/``, ``test/`` metrics), ``diverged``, ``diverged_step``,
    ``steps_to_target``, ``target_accuracy``, ``steps`` (optimizer steps), ``epochs``,
    ``world_size``, ``monitor`` (:func:`monitor_summary`, None without a ShiftMonitor),
    ``wall_time_s`` (from the start of the fit to the record), ``versions``.

    Args:
        run_dir: the run directory.
        recipe, variant, seed: the run's identity, copied into ``result.json``.
        config: the resolved config (JSON-able).
        config_hash: its :func:`~shiftkit.records.config_hash`; computed from ``config`` if None.
        test_after_fit: a ``trainer.test`` follows the fit (the record waits for it).

    Example::

        recorder = RunRecorder("runs/demo", recipe="demo", variant="bn", seed=0, config=cfg)
        Trainer(callbacks=[ShiftMonitor(keep_histograms=True), recorder],
                logger=CSVLogger("runs/demo", name="", version="")).fit(model, datamodule)
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        recipe: str | None = None,
        variant: str | None = None,
        seed: int | None = None,
        config: dict[str, Any] | None = None,
        config_hash: str | None = None,
        test_after_fit: bool = False,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.recipe, self.variant, self.seed = recipe, variant, seed
        self.config = config if config is not None else {}
        self.config_hash = config_hash
        self.test_after_fit = test_after_fit
        self.record: dict[str, Any] | None = None
        self._start: float | None = None
        self._waits_for_test = False

    # ------------------------------------------------------------------ life cycle
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self._start = time.perf_counter()
        self.record = None
        self._waits_for_test = self.test_after_fit and not forks_workers(trainer)
        if trainer.is_global_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # result.json first: from here on the directory is not a finished run.
            for name in (RESULT_FILE, HISTORY_FILE, HISTOGRAMS_FILE):
                (self.run_dir / name).unlink(missing_ok=True)

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # Lightning calls teardown hooks only after a stage that did not raise.
        if not trainer.is_global_zero:
            return
        if stage == "fit":
            self.record = self._fit_record(trainer, pl_module)
            if not self._waits_for_test:
                self._write(trainer)
        elif stage == "test" and self._waits_for_test and self.record is not None:
            self.record["metrics"].update(_metrics(trainer, "test/"))
            self._waits_for_test = False
            self._write(trainer)

    @override
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        # A crashed run is not finished (no result.json), but what the monitor measured
        # until then is written, so it is not lost.
        from shiftkit.monitor import ShiftMonitor

        if not trainer.is_global_zero:
            return
        for cb in trainer.callbacks:
            if isinstance(cb, ShiftMonitor) and cb.history:
                try:
                    cb.write_records(self.run_dir)
                except Exception as err:  # never mask the original exception
                    rank_zero_warn(f"shiftkit: could not write the monitor's records after a crash: {err}")

    # ------------------------------------------------------------------ record
    def _fit_record(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        from shiftkit.monitor import ShiftMonitor

        if hasattr(pl_module, "result_summary"):
            summary = dict(pl_module.result_summary())
        else:
            summary = {}
            for prefix in ("train/", "val/", "test/"):
                summary.update(_metrics(trainer, prefix))
        outcome = {k: summary.pop(k, None) for k in _OUTCOME_KEYS}
        monitor = next((cb for cb in trainer.callbacks if isinstance(cb, ShiftMonitor)), None)
        if monitor is not None:
            monitor.write_records(self.run_dir)
        import lightning
        import torch

        from shiftkit import __version__

        return {
            "recipe": self.recipe,
            "variant": self.variant,
            "seed": self.seed,
            "config": self.config,
            "config_hash": self.config_hash or config_hash(self.config),
            "metrics": {k: v for k, v in summary.items() if v is not None},
            "diverged": bool(outcome["diverged"]),
            "diverged_step": outcome["diverged_step"],
            "steps_to_target": outcome["steps_to_target"],
            "target_accuracy": outcome["target_accuracy"],
            "steps": int(trainer.global_step),
            "epochs": int(trainer.current_epoch),
            "world_size": int(trainer.world_size),
            "monitor": monitor_summary(monitor) if monitor is not None else None,
            "versions": {
                "shiftkit": __version__,
                "torch": torch.__version__,
                "lightning": lightning.__version__,
            },
        }

    def _write(self, trainer: Trainer) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, CSVLogger):
                logger.save()  # metrics.csv complete before result.json says "finished"
        self.record["wall_time_s"] = time.perf_counter() - (self._start or time.perf_counter())
        self.record = _finite(self.record)
        path = write_run_result(self.run_dir, self.record)
        rank_zero_info(f"shiftkit: run record written to {path}")
        self._finish_wandb(trainer)

    def _finish_wandb(self, trainer: Trainer) -> None:
        if not any(isinstance(lg, WandbLogger) for lg in trainer.loggers):
            return
        import wandb

        if wandb.run is not None:
            flat = {f"result/{k}": v for k, v in self.record["metrics"].items()}
            for key in ("diverged", "diverged_step", "steps_to_target", "steps", "wall_time_s"):
                flat[f"result/{key}"] = self.record[key]
            flat["result/config_hash"] = self.record["config_hash"]
            wandb.run.summary.update(flat)
        wandb.finish()


def _metrics(trainer: Trainer, prefix: str) -> dict[str, float]:
    return {
        k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)
    }
