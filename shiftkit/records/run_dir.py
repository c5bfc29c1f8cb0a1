"""What one training run leaves on disk, and how to read it back.

A *run directory* (written by ``shiftkit fit`` and by each sweep cell, read by
``shiftkit report``) holds:

* ``result.json`` — the result record (:func:`write_result_record`): at least
  ``recipe``, ``variant``, ``seed``, ``config`` (the resolved config),
  ``config_hash``, ``metrics`` (final/best values, e.g. ``val/acc``,
  ``best_val_acc``, ``test/acc``), ``diverged``, ``diverged_step``,
  ``steps_to_target``, ``target_accuracy``, ``steps`` (optimizer steps
  trained), ``monitor`` (network-level shift summaries) and ``wall_time_s``;
* ``metrics.csv`` — every metric the run logged, one row per step (the
  Lightning ``CSVLogger`` file);
* ``shift_history.csv`` — :attr:`ShiftMonitor.history`: one row per
  measurement and monitored site (``step``, ``epoch``, ``site`` and every statistic);
* ``shift_histograms.npz`` — optional, the fixed-edge histograms of every site
  at every measurement: arrays ``steps`` (T,), ``counts`` (T, S, bins + 2),
  ``lo``/``hi`` (S,) and ``sites`` (S,) names.

A directory of runs is any tree of run directories; :func:`find_runs` finds
them by their ``result.json``.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from shiftkit.records.atomic import atomic_write_bytes
from shiftkit.records.csv_run import read_csv_metrics
from shiftkit.records.result_record import SCHEMA_KEY, SCHEMA_VERSION, write_result_record

RESULT_FILE = "result.json"
METRICS_FILE = "metrics.csv"
HISTORY_FILE = "shift_history.csv"
HISTOGRAMS_FILE = "shift_histograms.npz"


@dataclass
class Run:
    """One run read back from its directory (absent files give None)."""

    path: Path
    result: dict[str, Any]
    metrics: pd.DataFrame | None
    history: pd.DataFrame | None
    histograms: dict[str, np.ndarray] | None

    @property
    def recipe(self) -> str | None:
        return self.result.get("recipe")

    @property
    def variant(self) -> str | None:
        return self.result.get("variant")

    @property
    def seed(self) -> int | None:
        return self.result.get("seed")


def write_shift_history(run_dir: str | os.PathLike, history: Sequence[dict[str, Any]]) -> Path:
    """Write monitor history rows to ``run_dir/shift_history.csv`` atomically."""
    buf = io.StringIO()
    pd.DataFrame(list(history)).to_csv(buf, index=False)
    return atomic_write_bytes(Path(run_dir) / HISTORY_FILE, buf.getvalue().encode("utf-8"))


def write_shift_histograms(
    run_dir: str | os.PathLike,
    steps: Sequence[int],
    counts: np.ndarray,
    sites: Sequence[str],
    lo: Sequence[float],
    hi: Sequence[float],
) -> Path:
    """Write the per-measurement histograms to ``run_dir/shift_histograms.npz`` atomically."""
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        steps=np.asarray(steps, dtype=np.int64),
        counts=np.asarray(counts, dtype=np.float32),
        sites=np.asarray(list(sites), dtype=str),
        lo=np.asarray(lo, dtype=np.float64),
        hi=np.asarray(hi, dtype=np.float64),
    )
    return atomic_write_bytes(Path(run_dir) / HISTOGRAMS_FILE, buf.getvalue())


def write_run_result(run_dir: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Write ``run_dir/result.json`` (atomic, secrets stripped; see :func:`write_result_record`)."""
    return write_result_record(Path(run_dir) / RESULT_FILE, result)


def read_run(run_dir: str | os.PathLike) -> Run:
    """Read a run directory back.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``result.json`` (naming it).
        ValueError: the result file is not a valid result record (naming it).
    """
    run_dir = Path(run_dir)
    result_path = run_dir / RESULT_FILE
    if not result_path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no {RESULT_FILE})")
    try:
        result = json.loads(result_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{result_path}: corrupt result record: {err}") from err
    if not isinstance(result, dict) or result.get(SCHEMA_KEY, SCHEMA_VERSION + 1) > SCHEMA_VERSION:
        raise ValueError(f"{result_path}: not a result record this shiftkit reads")
    metrics = read_csv_metrics(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else None
    history = pd.read_csv(run_dir / HISTORY_FILE) if (run_dir / HISTORY_FILE).is_file() else None
    histograms = None
    if (run_dir / HISTOGRAMS_FILE).is_file():
        with np.load(run_dir / HISTOGRAMS_FILE, allow_pickle=False) as npz:
            histograms = {k: npz[k] for k in npz.files}
    return Run(run_dir, result, metrics, history, histograms)


def find_runs(root: str | os.PathLike) -> list[Path]:
    """Every run directory below ``root`` (including ``root`` itself), sorted by path."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob(RESULT_FILE) if not p.parent.name.startswith("."))


def read_runs(root: str | os.PathLike) -> list[Run]:
    """:func:`read_run` of every run directory below ``root``."""
    return [read_run(p) for p in find_runs(root)]
