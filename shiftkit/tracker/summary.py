"""The most-shifted layers of a run, as a table."""

from __future__ import annotations

from typing import Any


def summarize_history(history: list[dict[str, Any]], top: int | None = 10, by: str = "kl_gauss"):
    """One row per site from :attr:`ShiftMonitor.history` rows, sorted by the mean of ``by``.

    Columns: ``measurements``, ``{by}_mean``, ``{by}_last``, ``above_floor``
    (mean of ``kl_gauss - kl_gauss_floor``), ``mean_drift_peak`` (the largest ``mean_drift``
    over measurements; not the logged ``mean_drift_max``, which is the largest over units),
    and the last ``mean``, ``std``, ``sat_frac``, ``dead_frac``.
    """
    import pandas as pd

    frame = pd.DataFrame(history)
    if frame.empty or by not in frame:
        return pd.DataFrame(columns=["site", "measurements", f"{by}_mean", f"{by}_last"])
    frame = frame.sort_values("step")
    groups = frame.groupby("site", sort=False)
    table = pd.DataFrame(
        {
            "measurements": groups.size(),
            f"{by}_mean": groups[by].mean(),
            f"{by}_last": groups[by].last(),
        }
    )
    if "kl_gauss_floor" in frame and "kl_gauss" in frame:
        table["above_floor"] = (frame["kl_gauss"] - frame["kl_gauss_floor"]).groupby(frame["site"]).mean()
    for col, how in (("mean_drift", "max"), ("mean", "last"), ("std", "last"), ("sat_frac", "last"), ("dead_frac", "last")):
        if col in frame and frame[col].notna().any():
            table[f"{col}_peak" if how == "max" else col] = getattr(groups[col], how)()
    table = table.sort_values(f"{by}_mean", ascending=False, na_position="last")
    table = table.reset_index().rename(columns={"index": "site"})
    return table.head(top) if top is not None else table
