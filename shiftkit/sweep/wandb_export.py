"""The same grid as a W&B sweep file, for ``wandb sweep`` / ``wandb agent`` on many machines.

W&B's grid method runs every combination of ``parameters``; each agent run executes ``command``
with ``${args}`` replaced by ``--key=value`` for the run's values, i.e.
``python -m shiftkit.cli fit --config <recipe> [scale overrides] --wandb=true --variant=bn
--model.lr_multiplier=5 --seed_everything=1 [extra args]``. Named variants become one parameter,
``variant``, which ``shiftkit fit --variant NAME`` expands from the recipe (a W&B grid cannot
bundle several keys into one value). Every run logs to W&B; its summary holds the run record
(``result/...``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from shiftkit.cli.argv import overrides_to_args
from shiftkit.sweep.spec import SEED_KEY, SweepSpec

__all__ = ["wandb_sweep_config", "write_wandb_sweep"]


def _portable_path(path: Path) -> str:
    """The recipe path relative to the working directory when inside it (agents run from their
    own checkout), else absolute."""
    try:
        return Path(os.path.relpath(path)).as_posix() if path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def _value(value: Any) -> Any:
    # W&B formats a value with Python's str(): None would arrive as the string "None".
    return "null" if value is None else value


def wandb_sweep_config(
    spec: SweepSpec,
    scale: str = "small",
    seeds: list[int] | None = None,
    extra_args: list[str] = (),
) -> dict[str, Any]:
    """The W&B sweep config (a dict) of a sweep: ``method: grid``, ``parameters``, ``command``.

    Args:
        spec: the sweep.
        scale: its overrides are fixed arguments of the command, before ``${args}``.
        seeds: replace the ``seed_everything`` axis.
        extra_args: fixed ``shiftkit fit`` arguments after ``${args}``.
    """
    grid = dict(spec.grid)
    if seeds is not None:
        grid[SEED_KEY] = [int(s) for s in seeds]
    parameters: dict[str, Any] = {}
    if spec.variants:
        parameters["variant"] = {"values": list(spec.variants)}
    for key, values in grid.items():
        parameters[key] = {"values": [_value(v) for v in values]}
    command = [
        "${env}", "${interpreter}", "-m", "shiftkit.cli", "fit",
        "--config", _portable_path(spec.path),
        *overrides_to_args(spec.scales[scale]),
        "--wandb=true",
        "${args}",
        *extra_args,
    ]  # fmt: skip
    return {
        "name": f"{spec.recipe}-{scale}",
        "description": f"shiftkit recipe {spec.recipe} ({scale} scale), exported by shiftkit sweep",
        "program": "shiftkit/cli/__main__.py",
        "method": "grid",
        "metric": {"name": "result/best_val_acc", "goal": "maximize"},
        "parameters": parameters,
        "command": command,
    }


def write_wandb_sweep(path: str | os.PathLike, config: dict[str, Any]) -> Path:
    """Write a W&B sweep config as YAML (for ``wandb sweep <path>``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# W&B sweep exported by `shiftkit sweep --export-wandb`.\n"
        "# Run from the repository root:  wandb sweep <this file>;  then on each machine:\n"
        "#   wandb agent <entity>/<project>/<sweep id>\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
