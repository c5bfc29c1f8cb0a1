"""``shiftkit sweep``: run a recipe's grid locally (resumably), list it, or export it to W&B."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from shiftkit.cli.argv import ArgvError
from shiftkit.sweep.devices import device_args, device_slots, use_ddp, visible_devices
from shiftkit.sweep.runner import (
    EXECUTORS,
    STATUS_FILE,
    cell_command,
    finished_result,
    resolve_cells,
    run_cells,
)
from shiftkit.sweep.spec import SweepError, load_sweep, parse_shard, plan_cells, shard_cells
from shiftkit.sweep.wandb_export import wandb_sweep_config, write_wandb_sweep

__all__ = ["build_parser", "main"]

EPILOG = """\
Arguments after `--` go to every cell's `shiftkit fit`, last (they win), e.g.
  shiftkit sweep recipes/mnist_fig1.yaml --scale paper -- --data.data_dir=/data/mnist
A cell's directory is OUT/<config_hash>; cells with a valid result.json there are skipped, so
rerunning an interrupted sweep runs only the missing cells. Failed cells are reported, recorded
in OUT/<id>/failed.json, and retried on the next run.
On a GPU machine, --devices-per-cell K runs (visible GPUs // K) cells at once, each on its own K
GPUs (CUDA_VISIBLE_DEVICES), with --trainer.devices=K (and DDP for K > 1 unless set), e.g.
  shiftkit sweep recipes/noisy_bn.yaml --scale paper --devices-per-cell 2 -- --data.data_dir=...
Across machines, --shard i/n runs every n-th cell from the i-th (a SLURM array: one shard per
task, with the same arguments); `shiftkit report` over the shards' outputs reports the grid.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftkit sweep",
        description="Run the grid of a recipe (its `sweep:` section): every cell is one "
        "`shiftkit fit` run into its own run directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", type=Path, help="recipe file with a `sweep:` section")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: runs/<recipe>)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=None,
                        help="cells run at once (default 1; with --devices-per-cell: one per "
                        "device slot, and --jobs caps it)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads per cell (default 1: the small recipes' nets are "
                        "too small to gain from more, and threads beyond the free cores cost "
                        "many times their gain; use --jobs to fill the cores)")  # fmt: skip
    parser.add_argument("--scale", default="small",
                        help="override set from the recipe's sweep.scales (default: small)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to run (replaces the seed_everything grid axis)")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true",
                        help="list the cells, their ids and status, and the commands; run nothing")  # fmt: skip
    parser.add_argument("--export-wandb", type=Path, default=None, metavar="FILE",
                        help="write the grid as a W&B sweep file (method: grid) and exit")  # fmt: skip
    parser.add_argument("--exec", dest="executor", choices=EXECUTORS, default=None,
                        help="how cells run: fork (default on Linux: a fork of this process, "
                        "starts fast) or subprocess (a fresh interpreter)")  # fmt: skip
    parser.add_argument("--devices-per-cell", type=int, default=None, metavar="K",
                        help="GPUs per cell: run (visible GPUs // K) cells at once, each seeing "
                        "only its own K GPUs, with --trainer.devices=K (K > 1: DDP unless the "
                        "config names a strategy); default: cells inherit every GPU")  # fmt: skip
    parser.add_argument("--cells-per-device", type=int, default=1, metavar="M",
                        help="with --devices-per-cell: up to M cells share each group of K GPUs "
                        "(small nets; default 1)")  # fmt: skip
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="run only the cells whose index (in the grid's order) is I mod N, "
                        "e.g. one shard per SLURM array task: --shard $TASK/$COUNT")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _default_executor() -> str:
    return "fork" if sys.platform.startswith("linux") else "subprocess"


def main(argv: list[str]) -> int:
    """``shiftkit sweep`` with ``argv`` (after ``sweep``); returns the exit status: 0 all
    cells finished, 1 some failed, 2 bad arguments or sweep file, 130 interrupted."""
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    opts = parser.parse_args(argv)
    per_cell = opts.devices_per_cell
    try:
        shard = parse_shard(opts.shard) if opts.shard is not None else None
        if per_cell is None and opts.cells_per_device != 1:
            raise SweepError("--cells-per-device needs --devices-per-cell")
        spec = load_sweep(opts.recipe)
        if opts.export_wandb is not None:
            if shard or per_cell is not None:
                raise SweepError("--shard and --devices-per-cell run cells here; a W&B sweep "
                                 "hands them to agents: leave them out of --export-wandb")  # fmt: skip
            config = wandb_sweep_config(spec, opts.scale, opts.seeds, extra)
            path = write_wandb_sweep(opts.export_wandb, config)
            print(f"W&B sweep ({_count(config)} runs) written to {path}; "
                  f"then: wandb sweep {path} && wandb agent <sweep id>")  # fmt: skip
            return 0
        pinned = device_args(per_cell, extra) if per_cell is not None else []
        cells = resolve_cells(plan_cells(spec, opts.scale, opts.seeds, pinned + extra))
        if per_cell is not None:
            cells = use_ddp(cells, per_cell)
        total = len(cells)
        if shard is not None:
            cells = shard_cells(cells, *shard)
        # The GPUs are looked for only to run: a dry run (e.g. on a login node) needs none.
        slots = None
        if per_cell is not None and not opts.dry_run:
            slots = device_slots(visible_devices(), per_cell, opts.cells_per_device)
    except (SweepError, ArgvError, ValueError, FileNotFoundError) as err:
        print(f"shiftkit sweep: error: {err}", file=sys.stderr)
        return 2
    out = opts.out or Path("runs") / spec.recipe
    of_grid = "" if shard is None else f" (shard {shard[0]}/{shard[1]} of {total})"
    if opts.dry_run:
        for cell in cells:
            done = finished_result(out / cell.cell_id, cell.cell_id) is not None
            print(f"{cell.cell_id}  {'done' if done else 'todo'}  {cell.label()}")
            print("    " + shlex.join(["shiftkit", *cell_command(cell, out / cell.cell_id)]))
        print(f"{len(cells)} cells{of_grid}, output {out}")
        return 0
    report = run_cells(
        cells,
        out,
        jobs=opts.jobs,
        threads=opts.threads,
        executor=opts.executor or _default_executor(),
        progress=not opts.no_progress,
        status_extra={
            "recipe": spec.recipe,
            "sweep_file": str(spec.path),
            "scale": opts.scale,
            "extra_args": extra,
            "shard": opts.shard,
            "devices_per_cell": per_cell,
        },
        device_slots=slots,
        # Shards may share OUT (a cluster's shared disk): each keeps its own status file.
        status_name=STATUS_FILE if shard is None else f"sweep.shard{shard[0]}of{shard[1]}.json",
    )
    counts = {s: len(report.with_status(s)) for s in ("ok", "diverged", "failed", "done")}
    print(f"sweep {spec.recipe}{of_grid}: {counts['ok']} ok, {counts['diverged']} diverged, "
          f"{counts['failed']} failed, {counts['done']} finished before; results in {out}")  # fmt: skip
    if report.interrupted:
        return 130
    return 1 if counts["failed"] or report.with_status("pending") else 0


def _count(config: dict) -> int:
    total = 1
    for spec in config["parameters"].values():
        total *= len(spec["values"])
    return total
