"""Runs read from a W&B project (``--wandb-project``), shaped like run directories.

Each W&B run becomes a :class:`~shiftkit.records.Run`: its config gives ``recipe``, ``variant``,
``seed`` and the config itself; its full history (``scan_history``) the metrics table (step =
Lightning's ``trainer/global_step``, else W&B's ``_step``); the per-site ``shift/{site}/{stat}``
columns of that table the shift history; its summary the final metrics and divergence. W&B keeps no
``shift_histograms.npz``, so the colorful-dimension figure is not drawn from W&B runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from shiftkit.records import (
    DIVERGED,
    GLOBAL_STEP,
    TEST_ACC,
    VAL_ACC,
    Run,
    merge_rows_by_step,
    shift_long_format,
)

WANDB_STEP = "_step"


def history_from_metrics(metrics: pd.DataFrame) -> pd.DataFrame | None:
    """The ``shift_history`` table (``step, site`` + a column per stat) from a wide metrics table."""
    long = shift_long_format(metrics, "step")
    if not len(long):
        return None
    wide = long.pivot_table(index=["step", "site"], columns="stat", values="value", aggfunc="last", sort=False)
    wide.columns.name = None
    return wide.reset_index()


def run_from_wandb(wrun: Any) -> Run:
    """Convert a ``wandb.apis.public.Run`` (or anything with ``config``, ``summary``, ``path`` and
    ``scan_history()``) to a :class:`Run`."""
    config = {k: v for k, v in dict(wrun.config).items() if not str(k).startswith("_")}
    summary = dict(wrun.summary)
    rows = pd.DataFrame(list(wrun.scan_history()))
    metrics = None
    if len(rows):
        step = GLOBAL_STEP if GLOBAL_STEP in rows.columns else WANDB_STEP
        rows = rows.drop(columns=[c for c in (WANDB_STEP,) if c != step and c in rows.columns])
        metrics = merge_rows_by_step(rows.rename(columns={step: "step"}), "step")
        metrics = metrics[[c for c in metrics.columns if not str(c).startswith("_")]]
    seed = config.get("seed", config.get("seed_everything"))
    result = {
        "recipe": config.get("recipe"), "variant": config.get("variant"), "seed": seed, "config": config,
        "metrics": {k: summary.get(k) for k in (VAL_ACC, TEST_ACC, "best_val_acc") if summary.get(k) is not None},
        "diverged": bool(summary.get(DIVERGED, 0) or 0), "diverged_step": summary.get("diverged_step"),
        "steps": summary.get(GLOBAL_STEP), "target_accuracy": config.get("target_accuracy"),
    }  # fmt: skip
    path = "/".join(wrun.path) if isinstance(wrun.path, (list, tuple)) else str(wrun.path)
    hist = history_from_metrics(metrics) if metrics is not None else None
    return Run(Path(f"wandb:{path}"), result, metrics, hist, None)


def read_wandb_runs(project_path: str, *, api: Any = None, timeout: float = 30.0, filters: dict | None = None) -> list[Run]:
    """Every run of ``ENTITY/PROJECT`` (optionally W&B API ``filters``) as a :class:`Run`.

    Checks credentials and reachability first (:func:`~shiftkit.report.wandb_report.check_online`)
    unless an ``api`` object is given (tests pass a fake one).
    """
    if api is None:
        import wandb

        from shiftkit.report.wandb_report import check_online

        check_online(timeout=min(5.0, timeout))
        api = wandb.Api(timeout=int(timeout))
    runs = api.runs(project_path, filters=filters or {})
    # Skip the runs that hold a report's figures (job_type "report").
    return [run_from_wandb(r) for r in runs if getattr(r, "job_type", None) != "report"]
