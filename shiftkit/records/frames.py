"""Wide metric tables: one row per step, and the long (tidy) form seaborn wants."""

from __future__ import annotations

import pandas as pd

from shiftkit.records.names import STEP, parse_shift_key

LONG_COLUMNS = ("step", "site", "stat", "value")
"""Columns of :func:`shift_long_format`'s result."""
_LONG_DTYPES = ("int64", "str", "str", "float64")


def merge_rows_by_step(df: pd.DataFrame, step_col: str = STEP) -> pd.DataFrame:
    """Collapse rows that share a step into one, keeping each column's last non-null value.

    Loggers write one row per ``log_metrics`` call, so a step logged by the
    LightningModule and by a callback becomes several partly-filled rows.
    Rows without a step are dropped. The result is sorted by step, with
    ``step_col`` first and as an ``int64`` column.

    Args:
        df: a wide table with a ``step_col`` column.
        step_col: the column that names the step.
    """
    if step_col not in df.columns:
        raise KeyError(f"no {step_col!r} column; columns are {list(df.columns)}")
    # copy(): a CSV of hundreds of shift columns arrives fragmented; one
    # consolidation up front keeps groupby from warning about it.
    df = df[df[step_col].notna()].copy()
    # groupby.last skips nulls per column: exactly "last non-null value per column".
    merged = df.groupby(step_col, sort=True).last().reset_index()
    merged[step_col] = merged[step_col].astype("int64")
    return merged


def shift_long_format(df: pd.DataFrame, step_col: str = STEP) -> pd.DataFrame:
    """Return the per-site shift statistics of a wide table in long form.

    One row per (step, site, stat) with a non-null value; columns are
    ``step, site, stat, value`` (``step`` is taken from ``step_col``, e.g.
    ``"_step"`` or ``"trainer/global_step"`` for a W&B table). Columns that
    are not ``shift/{site}/{stat}`` keys are ignored.
    """
    parsed = {col: parse_shift_key(col) for col in df.columns if isinstance(col, str)}
    shift_cols = [col for col, site_stat in parsed.items() if site_stat is not None]
    if not shift_cols:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(LONG_COLUMNS, _LONG_DTYPES)})
    long = df[[step_col, *shift_cols]].melt(id_vars=step_col, var_name="key", value_name="value")
    long = long[long["value"].notna()]
    long["site"] = [parsed[key][0] for key in long["key"]]
    long["stat"] = [parsed[key][1] for key in long["key"]]
    long = long.rename(columns={step_col: "step"})[list(LONG_COLUMNS)]
    long = long.astype({"step": "int64", "value": "float64"})
    return long.sort_values(["step", "site", "stat"], kind="stable").reset_index(drop=True)
