"""Run records: the one place that names metrics and reads a run back.

- :mod:`~shiftkit.records.names`: the logged keys (``shift/{site}/{stat}``,
  ``train/loss``...) and :func:`shift_key` / :func:`parse_shift_key`;
- :mod:`~shiftkit.records.csv_run`: a Lightning ``CSVLogger`` run as one row per step;
- :mod:`~shiftkit.records.wandb_offline`: a local W&B run (``.wandb`` file) read
  without network or W&B API;
- :mod:`~shiftkit.records.frames`: row merging and the long (tidy) shift table;
- :mod:`~shiftkit.records.result_record`: atomic, secret-free JSON result records;
- :mod:`~shiftkit.records.run_dir`: the files of one run directory, written and read back.

Imports pandas and the standard library only: no Lightning, no torch, no
``shiftkit.monitor``; wandb's protobuf module is imported when a ``.wandb``
file is read.
"""

from shiftkit.records.csv_run import METRICS_CSV, read_csv_metrics
from shiftkit.records.frames import merge_rows_by_step, shift_long_format
from shiftkit.records.names import (
    BASE_STATS,
    DEFAULT_QUANTILES,
    DIVERGED,
    DIVERGED_STEP,
    DIVERGENCE_STATS,
    GLOBAL_STEP,
    HISTOGRAM_PREFIX,
    OUTPUT_SITE_SUFFIX,
    SHIFT_MAX_KL_GAUSS,
    SHIFT_MEAN_KL_GAUSS,
    SHIFT_PREFIX,
    STATS,
    STEP,
    TEST_ACC,
    TEST_LOSS,
    TRAIN_ACC,
    TRAIN_LOSS,
    VAL_ACC,
    VAL_LOSS,
    histogram_key,
    is_stat,
    parse_shift_key,
    percentile_name,
    percentile_names,
    shift_key,
    site_stats,
)
from shiftkit.records.result_record import (
    SCHEMA_VERSION,
    config_hash,
    is_secret_key,
    read_result_records,
    strip_secrets,
    write_result_record,
)
from shiftkit.records.run_dir import (
    HISTOGRAMS_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    RESULT_FILE,
    Run,
    find_runs,
    read_run,
    read_runs,
    write_run_result,
    write_shift_histograms,
    write_shift_history,
)
from shiftkit.records.wandb_offline import (
    BLOCK_SIZE,
    WANDB_FILE_HEADER,
    TruncatedRunWarning,
    find_wandb_run_file,
    iter_wandb_records,
    read_wandb_offline,
    read_wandb_offline_config,
    read_wandb_offline_summary,
    wait_for_wandb_run,
)

__all__ = [
    "HISTOGRAMS_FILE",
    "HISTORY_FILE",
    "METRICS_FILE",
    "RESULT_FILE",
    "Run",
    "find_runs",
    "read_run",
    "read_runs",
    "write_run_result",
    "write_shift_histograms",
    "write_shift_history",
    "BASE_STATS",
    "BLOCK_SIZE",
    "DEFAULT_QUANTILES",
    "DIVERGENCE_STATS",
    "DIVERGED",
    "DIVERGED_STEP",
    "GLOBAL_STEP",
    "HISTOGRAM_PREFIX",
    "METRICS_CSV",
    "OUTPUT_SITE_SUFFIX",
    "SCHEMA_VERSION",
    "SHIFT_MAX_KL_GAUSS",
    "SHIFT_MEAN_KL_GAUSS",
    "SHIFT_PREFIX",
    "STATS",
    "STEP",
    "TEST_ACC",
    "TEST_LOSS",
    "TRAIN_ACC",
    "TRAIN_LOSS",
    "TruncatedRunWarning",
    "VAL_ACC",
    "VAL_LOSS",
    "WANDB_FILE_HEADER",
    "config_hash",
    "find_wandb_run_file",
    "histogram_key",
    "is_stat",
    "is_secret_key",
    "iter_wandb_records",
    "merge_rows_by_step",
    "parse_shift_key",
    "percentile_name",
    "percentile_names",
    "read_csv_metrics",
    "read_result_records",
    "read_wandb_offline",
    "read_wandb_offline_config",
    "read_wandb_offline_summary",
    "shift_key",
    "shift_long_format",
    "site_stats",
    "strip_secrets",
    "wait_for_wandb_run",
    "write_result_record",
]
