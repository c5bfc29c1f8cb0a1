"""``shiftkit sweep``: run a recipe's grid locally (resumably), list it, or export it to W&B."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shiftkit.cli.argv import ArgvError
from shiftkit.sweep.runner import EXECUTORS, cell_command, finished_result, resolve_cells, run_cells
from shiftkit.sweep.spec import SweepError, load_sweep, plan_cells
from shiftkit.sweep.wandb_export import wandb_sweep_config, write_wandb_sweep

__all__ = ["build_parser", "main"]

EPILOG = """\
Arguments after `--` go to every cell's `shiftkit fit`, last (they win), e.g.
  shiftkit sweep recipes/mnist_fig1.yaml --scale paper -- --data.data_dir=/data/mnist
A cell's directory is OUT/<config_hash>; cells with a valid result.json there are skipped, so
rerunning an interrupted sweep runs only the missing cells. Failed cells are reported, recorded
in OUT/<id>/failed.json, and retried on the next run.
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
    parser.add_argument("--jobs", type=int, default=1, help="cells run at once (default 1)")
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
    try:
        spec = load_sweep(opts.recipe)
        if opts.export_wandb is not None:
            config = wandb_sweep_config(spec, opts.scale, opts.seeds, extra)
            path = write_wandb_sweep(opts.export_wandb, config)
            print(f"W&B sweep ({_count(config)} runs) written to {path}; "
                  f"then: wandb sweep {path} && wandb agent <sweep id>")  # fmt: skip
            return 0
        cells = resolve_cells(plan_cells(spec, opts.scale, opts.seeds, extra))
    except (SweepError, ArgvError, ValueError, FileNotFoundError) as err:
        print(f"shiftkit sweep: error: {err}", file=sys.stderr)
        return 2
    out = opts.out or Path("runs") / spec.recipe
    if opts.dry_run:
        for cell in cells:
            done = finished_result(out / cell.cell_id, cell.cell_id) is not None
            print(f"{cell.cell_id}  {'done' if done else 'todo'}  {cell.label()}")
            print("    shiftkit " + " ".join(cell_command(cell, out / cell.cell_id)))
        print(f"{len(cells)} cells, output {out}")
        return 0
    report = run_cells(
        cells,
        out,
        jobs=opts.jobs,
        threads=opts.threads,
        executor=opts.executor or _default_executor(),
        progress=not opts.no_progress,
        status_extra={"recipe": spec.recipe, "sweep_file": str(spec.path), "scale": opts.scale,
                      "extra_args": extra},  # fmt: skip
    )
    counts = {s: len(report.with_status(s)) for s in ("ok", "diverged", "failed", "done")}
    print(f"sweep {spec.recipe}: {counts['ok']} ok, {counts['diverged']} diverged, "
          f"{counts['failed']} failed, {counts['done']} finished before; results in {out}")  # fmt: skip
    if report.interrupted:
        return 130
    return 1 if counts["failed"] or report.with_status("pending") else 0


def _count(config: dict) -> int:
    total = 1
    for spec in config["parameters"].values():
        total *= len(spec["values"])
    return total
