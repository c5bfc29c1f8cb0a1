"""Tiny `shiftkit fit` runs in this process (Lightning is imported once: a fresh `shiftkit`
process costs ~5-8 s of imports on this machine), and the tiny recipe they run."""

from __future__ import annotations

from pathlib import Path

import yaml

#: A run small enough for a test: sklearn's digits, 12 steps, validation at steps 4, 8, 12.
TINY = {
    "recipe": "tiny",
    "seed_everything": 0,
    "trainer": {
        "accelerator": "cpu",
        "devices": 1,
        "max_steps": 12,
        "val_check_interval": 4,
        "check_val_every_n_epoch": None,
        "log_every_n_steps": 2,
        "limit_val_batches": 2,
        "limit_test_batches": 2,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "enable_progress_bar": False,
    },
    "data": {"class_path": "shiftkit.data.DigitsDataModule", "init_args": {"batch_size": 32}},
    "model": {"arch": "mlp", "depth": 2, "width": 32, "optimizer": "adam", "lr": 0.01,
              "target_accuracy": 0.5},  # fmt: skip
    "monitor": {"every_n_steps": 4, "bins": 16},
}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def fit(*args: str):
    """Run `shiftkit fit *args` in this process; returns the ShiftkitCLI."""
    from shiftkit.cli.fit import run_cli

    return run_cli(["fit", *args])
