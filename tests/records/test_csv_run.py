"""read_csv_metrics / shift_long_format on a real CSVLogger run."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shiftkit.records import (
    SHIFT_MEAN_KL_GAUSS,
    STEP,
    TRAIN_LOSS,
    merge_rows_by_step,
    read_csv_metrics,
    shift_key,
    shift_long_format,
)


def test_csv_logger_run_reads_back_one_row_per_step(tmp_path, fit_two_layer):
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="run")
    module, logged = fit_two_layer(logger)
    max_steps = len(logged)

    df = read_csv_metrics(logger.log_dir)
    pd.testing.assert_frame_equal(df, read_csv_metrics(f"{logger.log_dir}/metrics.csv"))
    raw = pd.read_csv(f"{logger.log_dir}/metrics.csv")
    assert len(raw) > len(df), "the callback and the module log on separate rows"

    # The callback logs after the optimizer step (global_step 1..6); Lightning logs the
    # module's self.log at the count of batches stepped before it (0..5).
    assert df[STEP].dtype == "int64"
    assert df[STEP].tolist() == list(range(max_steps + 1))
    by_step = df.set_index(STEP)
    assert sorted(logged) == list(range(1, max_steps + 1))
    for step, metrics in logged.items():
        for key, value in metrics.items():
            assert by_step.at[step, key] == value, (step, key)  # exact: repr round-trips
    assert math.isnan(by_step.at[0, shift_key("fc1", "kl_gauss")])

    losses = by_step[TRAIN_LOSS]
    assert losses.loc[: max_steps - 1].tolist() == module.losses
    assert math.isnan(losses.loc[max_steps])

    long = shift_long_format(df)
    assert len(long) == max_steps * 3  # 3 per-site keys a step; the network mean is not per-site
    row = long[(long.step == 4) & (long.site == "enc/block.1")]
    assert row.stat.tolist() == ["p50"] and row.value.tolist() == [1e-7 * 16]
    assert set(long.site) == {"fc1", "net.0@out", "enc/block.1"}


def test_merge_keeps_last_non_null_per_column():
    rows = pd.DataFrame(
        {
            "step": [2.0, 1.0, 2.0, 2.0, None],
            "a": [1.0, 5.0, None, 3.0, 9.0],
            "b": [None, None, 7.0, None, 9.0],
        }
    )
    merged = merge_rows_by_step(rows)
    assert merged.columns.tolist() == ["step", "a", "b"]
    assert merged["step"].tolist() == [1, 2] and merged["step"].dtype == "int64"
    assert merged["a"].tolist() == [5.0, 3.0]
    assert merged["b"].iloc[1] == 7.0 and math.isnan(merged["b"].iloc[0])


def test_long_format_exact_rows_and_empty():
    wide = pd.DataFrame(
        {
            "_step": [0, 1],
            shift_key("net.0", "mean"): [0.5, None],
            shift_key("net.0@out", "dead_frac"): [0.25, 0.75],
            SHIFT_MEAN_KL_GAUSS: [1.0, 2.0],
            "train/loss": [3.0, 4.0],
        }
    )
    long = shift_long_format(wide, step_col="_step")
    assert long.to_dict("records") == [
        {"step": 0, "site": "net.0", "stat": "mean", "value": 0.5},
        {"step": 0, "site": "net.0@out", "stat": "dead_frac", "value": 0.25},
        {"step": 1, "site": "net.0@out", "stat": "dead_frac", "value": 0.75},
    ]
    empty = shift_long_format(wide[["_step", "train/loss"]], step_col="_step")
    assert empty.columns.tolist() == ["step", "site", "stat", "value"] and empty.empty


def test_missing_metrics_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        read_csv_metrics(tmp_path)
