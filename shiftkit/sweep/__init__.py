"""Grids of runs: ``shiftkit sweep recipes/<grid>.yaml``.

* :mod:`~shiftkit.sweep.spec`: the sweep file format (a recipe's ``sweep:`` section) and its cells;
* :mod:`~shiftkit.sweep.runner`: run cells locally, N at a time, skipping finished ones;
* :mod:`~shiftkit.sweep.devices`: GPUs for the cells (``--devices-per-cell``);
* :mod:`~shiftkit.sweep.wandb_export`: the same grid as a W&B sweep file;
* :mod:`~shiftkit.sweep.command`: the ``shiftkit sweep`` command line.

Example::

    from shiftkit.sweep import load_sweep, plan_cells, resolve_cells, run_cells

    cells = resolve_cells(plan_cells(load_sweep("recipes/lr_multipliers.yaml"), seeds=[0]))
    report = run_cells(cells, "runs/lr_multipliers", jobs=2)
"""

from shiftkit.sweep.runner import (
    CellOutcome,
    SweepReport,
    cell_command,
    finished_result,
    resolve_cells,
    run_cells,
)
from shiftkit.sweep.spec import (
    Cell,
    SweepError,
    SweepSpec,
    load_sweep,
    parse_shard,
    plan_cells,
    shard_cells,
)
from shiftkit.sweep.wandb_export import wandb_sweep_config, write_wandb_sweep

__all__ = [
    "Cell",
    "CellOutcome",
    "SweepError",
    "SweepReport",
    "SweepSpec",
    "cell_command",
    "finished_result",
    "load_sweep",
    "parse_shard",
    "plan_cells",
    "resolve_cells",
    "run_cells",
    "shard_cells",
    "wandb_sweep_config",
    "write_wandb_sweep",
]
