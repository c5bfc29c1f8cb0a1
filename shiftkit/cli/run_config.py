"""The config a run records, and its hash: what ``shiftkit fit`` writes into ``result.json`` and
what ``shiftkit sweep`` names a cell by.

The hash is :func:`~shiftkit.records.config_hash` of :func:`run_config`: the resolved config
without the keys that only say where and how a run is recorded (:data:`NOT_HASHED`), class paths
canonical, so two command lines that compute the same run have the same id.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from shiftkit.records import config_hash

__all__ = ["NOT_HASHED", "default_run_dir", "run_config", "run_config_hash"]

NOT_HASHED = (
    "config",
    "run_dir",
    "sweep",
    "wandb",
    "wandb_project",
    "wandb_mode",
    "trainer.logger",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.default_root_dir",
    "monitor.heatmap_every",
)
"""Config keys that say where and how a run is recorded or shown, not what it computes: left out
of the recorded config and of its hash (a run with ``--wandb`` or without a progress bar is the
same run, and has the same sweep cell id)."""


def _canonical_class_paths(value: Any) -> Any:
    """Rewrite every ``class_path`` to ``module.QualName`` of the class it imports, so that
    ``shiftkit.data.DigitsDataModule`` and ``shiftkit.data.digits.DigitsDataModule`` hash alike."""
    if isinstance(value, list):
        return [_canonical_class_paths(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _canonical_class_paths(v) for k, v in value.items()}
    path = out.get("class_path")
    if isinstance(path, str) and "." in path:
        module, _, name = path.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
            out["class_path"] = f"{cls.__module__}.{cls.__qualname__}"
        except (ImportError, AttributeError):
            pass
    return out


def _drop(config: dict[str, Any], dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def run_config(
    config: dict[str, Any], config_files: list[str | os.PathLike] = ()
) -> dict[str, Any]:
    """The config a run records and hashes: the resolved config of one subcommand without the
    :data:`NOT_HASHED` keys, ``recipe`` and ``variant`` filled in (default: the stem of the first
    config file, and the model's ``norm``), class paths canonical.

    Args:
        config: ``cli.config[subcommand].as_dict()``.
        config_files: the ``--config`` files, in order.
    """
    out = _canonical_class_paths(config)
    for key in NOT_HASHED:
        _drop(out, key)
    if not out.get("recipe"):
        out["recipe"] = Path(config_files[0]).stem if config_files else "adhoc"
    if not out.get("variant"):
        out["variant"] = str((out.get("model") or {}).get("norm") or "default")
    return out


def default_run_dir(recipe: str, cfg_hash: str) -> Path:
    """``runs/<recipe>/<config_hash>`` (relative to the working directory)."""
    return Path("runs") / recipe / cfg_hash


def run_config_hash(
    config: dict[str, Any], config_files: list[str | os.PathLike] = ()
) -> tuple[dict[str, Any], str]:
    """``(run_config(config, config_files), its config_hash)``."""
    record = run_config(config, config_files)
    return record, config_hash(record)
