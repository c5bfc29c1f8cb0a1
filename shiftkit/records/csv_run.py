"""Read back a run written by Lightning's ``CSVLogger``."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from shiftkit.records.frames import merge_rows_by_step
from shiftkit.records.names import STEP

METRICS_CSV = "metrics.csv"
"""The file name ``CSVLogger`` writes in its version directory."""

# Lightning writes repr(float); before pandas 3.1 only the "round_trip" converter reads
# it back bit-exactly (3.1 made it the only converter and deprecated the argument).
_PANDAS_VERSION = tuple(int(part) for part in pd.__version__.split(".")[:2])
_EXACT_FLOATS = {} if _PANDAS_VERSION >= (3, 1) else {"float_precision": "round_trip"}


def read_csv_metrics(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``CSVLogger`` run into one row per step.

    Lightning writes one CSV row per ``log_metrics`` call, so a step appears
    on several rows with different columns filled; they are merged, keeping
    each column's last non-null value (see :func:`merge_rows_by_step`).

    Args:
        path: the logger's version directory (``.../lightning_logs/version_0``)
            or the ``metrics.csv`` file itself.

    Returns:
        A DataFrame sorted by ``step`` (an ``int64`` column, first).

    Raises:
        FileNotFoundError: if there is no ``metrics.csv`` at ``path``.
    """
    path = Path(path)
    csv_path = path / METRICS_CSV if path.is_dir() else path
    if not csv_path.is_file():
        raise FileNotFoundError(f"no CSVLogger metrics file at {csv_path}")
    return merge_rows_by_step(pd.read_csv(csv_path, **_EXACT_FLOATS), STEP)
