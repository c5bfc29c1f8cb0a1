"""Run a sweep's cells locally: N at a time, each in its own process, resumably.

Every cell runs ``shiftkit fit ... --run_dir OUT/<cell_id>``. A cell is *finished* when
``OUT/<cell_id>/result.json`` is a valid result record of that id (the run writes it last); a
rerun of the sweep skips finished cells and runs the others, so an interrupted or partly failed
sweep resumes. A failed cell (non-zero exit, or no result) leaves ``OUT/<cell_id>/failed.json``
(exit code, the last lines of its log) and no ``result.json``; it is retried on the next run.
``OUT/sweep.json`` lists every cell with its grid values and status.

Cells run in child processes:

* ``fork`` (default on Linux): a fork of this process, which has imported Lightning already, so
  a cell starts in milliseconds instead of seconds;
* ``subprocess``: ``python -m shiftkit.cli fit ...``, a fresh interpreter.

Each child gets ``threads`` intra-op threads (``OMP_NUM_THREADS`` and
``torch.set_num_threads``); a DDP cell on CPU divides them among its ranks. Given device slots
(:mod:`~shiftkit.sweep.devices`), a cell runs only when a slot is free and sees only that slot's
GPUs (``CUDA_VISIBLE_DEVICES``, set in the child before anything initializes CUDA). Output goes
to ``OUT/<cell_id>/cell.log``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftkit.records import RESULT_FILE
from shiftkit.records.atomic import atomic_write_bytes
from shiftkit.sweep.devices import DEVICES_ENV
from shiftkit.sweep.spec import Cell

__all__ = [
    "CELL_LOG",
    "EXECUTORS",
    "FAILED_FILE",
    "STATUS_FILE",
    "CellOutcome",
    "SweepReport",
    "cell_command",
    "cell_env",
    "finished_result",
    "resolve_cells",
    "run_cells",
]

CELL_LOG = "cell.log"
FAILED_FILE = "failed.json"
STATUS_FILE = "sweep.json"
EXECUTORS = ("fork", "subprocess")
#: The module whose ``main(argv)`` runs a cell (``python -m`` it in a fresh interpreter); a test
#: points it at a stand-in that records what the cell was given.
CELL_MODULE = "shiftkit.cli"


@dataclass
class CellOutcome:
    """What became of one cell: ``status`` is ``done`` (finished before, skipped), ``ok``,
    ``diverged``, ``failed`` or ``interrupted``; ``devices``: the GPUs it ran on (device slots)."""

    cell: Cell
    status: str
    seconds: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    devices: tuple[str, ...] | None = None


@dataclass
class SweepReport:
    """Outcome of :func:`run_cells`: every cell's outcome, and whether it was interrupted."""

    outcomes: list[CellOutcome] = field(default_factory=list)
    interrupted: bool = False

    def with_status(self, *statuses: str) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.status in statuses]

    @property
    def executed(self) -> list[CellOutcome]:
        """Cells run by this call (finished, diverged, failed or interrupted; not skipped)."""
        return [o for o in self.outcomes if o.status not in ("done", "pending")]

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.with_status("failed", "pending")


def resolve_cells(cells: list[Cell], resolver=None) -> list[Cell]:
    """Set each cell's ``config`` and ``cell_id`` (the config hash ``shiftkit fit`` records).

    Cells that resolve to the same config are run once: later duplicates are dropped.

    Raises:
        ValueError: a cell's arguments do not parse (the message names the cell).
    """
    if resolver is None:
        from shiftkit.cli.fit import ConfigResolver

        resolver = ConfigResolver()
    seen, unique = set(), []
    for cell in cells:
        try:
            cell.config, cell.cell_id = resolver.resolve(cell.fit_args)
        except ValueError as err:
            raise ValueError(f"cell '{cell.label()}': {err}") from err
        if cell.cell_id not in seen:
            seen.add(cell.cell_id)
            unique.append(cell)
    return unique


def finished_result(run_dir: Path, cell_id: str | None = None) -> dict[str, Any] | None:
    """The result record of a finished run in ``run_dir`` (of id ``cell_id`` if given), else None."""
    try:
        record = json.loads((Path(run_dir) / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or "schema_version" not in record:
        return None
    if cell_id is not None and record.get("config_hash") != cell_id:
        return None
    return record


def cell_command(cell: Cell, run_dir: Path) -> list[str]:
    """The ``shiftkit`` arguments that run ``cell`` into ``run_dir`` (no progress bar)."""
    return ["fit", *cell.fit_args, f"--run_dir={run_dir}", "--trainer.enable_progress_bar=false"]


def cell_env(threads: int, devices: tuple[str, ...] | None = None) -> dict[str, str]:
    """The environment variables a cell's process gets on top of the sweep's: its threads and,
    with a device slot, its GPUs."""
    env = {"OMP_NUM_THREADS": str(threads)}
    if devices is not None:
        env[DEVICES_ENV] = ",".join(devices)
    return env


# ---------------------------------------------------------------------------- child processes
def _cell_main(args: list[str], log_path: str, env: dict[str, str]) -> None:
    """Body of a forked cell: its environment, output to the log, own threads, then ``shiftkit``
    as if run anew."""
    import logging

    # First: CUDA reads CUDA_VISIBLE_DEVICES once, when something first initializes it.
    os.environ.update(env)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    old = {id(sys.stdout), id(sys.stderr), id(sys.__stdout__), id(sys.__stderr__)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # The parent's sys.stdout/stderr may not write to fds 1/2 (pytest's capture does not), and
    # logging handlers keep the stream they were made with: point them all at the log.
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and id(handler.stream) in old:
                handler.setStream(sys.stderr)
    import torch

    torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    # Lightning's ddp launcher re-runs sys.argv in its children: make it this cell's command.
    sys.argv = [sys.argv[0], *args]
    sys.exit(importlib.import_module(CELL_MODULE).main(args))


class _Job:
    """A running cell: a forked ``multiprocessing.Process`` or a ``subprocess.Popen``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str], executor: str) -> None:
        self.executor = executor
        if executor == "fork":
            import multiprocessing

            self.proc = multiprocessing.get_context("fork").Process(
                target=_cell_main, args=(args, str(log_path), env), daemon=False
            )
            self.proc.start()
        else:
            import shiftkit

            root = str(Path(shiftkit.__file__).resolve().parents[1])
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, **env, "PYTHONPATH": root + (os.pathsep + path if path else "")}
            with open(log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", CELL_MODULE, *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                )

    def exitcode(self) -> int | None:
        if self.executor == "fork":
            return self.proc.exitcode
        return self.proc.poll()

    def stop(self, timeout: float = 10.0) -> None:
        if self.exitcode() is not None:
            return
        self.proc.terminate()
        deadline = time.monotonic() + timeout
        while self.exitcode() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.exitcode() is None:
            self.proc.kill()
        if self.executor == "fork":
            self.proc.join()
        else:
            self.proc.wait()


# ---------------------------------------------------------------------------- bookkeeping
def _log_tail(path: Path, lines: int = 20) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _error_line(tail: list[str]) -> str:
    for line in reversed(tail):
        stripped = line.strip()
        if "Error" in stripped or "error:" in stripped or "Exception" in stripped:
            return stripped
    return tail[-1].strip() if tail else "no output"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


def _summary(result: dict[str, Any]) -> str:
    metrics = result.get("metrics") or {}
    parts = [
        f"{key}={metrics[key]:.4f}"
        for key in ("val/acc", "test/acc")
        if isinstance(metrics.get(key), (int, float))
    ]
    if result.get("target_accuracy") is not None:
        parts.append(f"steps_to_target={result.get('steps_to_target')}")
    if result.get("diverged"):
        parts.append(f"diverged at step {result.get('diverged_step')}")
    parts.append(f"steps={result.get('steps')}")
    return " ".join(parts)


def run_cells(
    cells: list[Cell],
    out: str | os.PathLike,
    jobs: int | None = None,
    threads: int = 1,
    executor: str = "fork",
    progress: bool = True,
    on_cell_done: Callable[[CellOutcome], None] | None = None,
    status_extra: dict[str, Any] | None = None,
    write: Callable[[str], None] | None = None,
    device_slots: Sequence[Sequence[str]] | None = None,
    status_name: str = STATUS_FILE,
) -> SweepReport:
    """Run the cells not finished yet into ``out/<cell_id>``, ``jobs`` at a time.

    Args:
        cells: resolved cells (see :func:`resolve_cells`).
        out: the sweep's output directory.
        jobs: cells run at once (default: one per device slot, or 1 without slots).
        threads: intra-op threads per cell.
        executor: ``fork`` or ``subprocess`` (see the module docstring).
        progress: show a progress bar over the cells (tqdm).
        on_cell_done: called with each executed cell's outcome, as it completes; a
            ``KeyboardInterrupt`` raised there stops the sweep like Ctrl-C.
        status_extra: more fields for ``out/sweep.json``.
        write: where the one-line-per-cell report goes (default: above the progress bar).
        device_slots: the GPU sets cells run on (:func:`~shiftkit.sweep.devices.device_slots`):
            a cell starts when one is free, sees only its GPUs, and frees it when it ends; at
            most ``min(jobs, len(device_slots))`` cells run at once. None: cells inherit this
            process's GPUs.
        status_name: the status file's name in ``out`` (shards of one grid write their own).

    Returns:
        The :class:`SweepReport`; a Ctrl-C stops the running cells (they stay unfinished) and
        returns with ``interrupted=True`` rather than raising.
    """
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    slots = [tuple(s) for s in device_slots] if device_slots is not None else None
    if slots is not None and not slots:
        raise ValueError("device_slots is empty: no cell could run")
    if jobs is None:
        jobs = len(slots) if slots is not None else 1
    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be >= 1, got jobs={jobs}, threads={threads}")
    if slots is not None:
        jobs = min(jobs, len(slots))
        import torch

        if executor == "fork" and torch.cuda.is_initialized():
            raise ValueError(
                "CUDA is already initialized in this process, so a forked cell cannot choose "
                "its GPUs: use executor='subprocess' (--exec subprocess)"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    total = len(cells)
    outcomes: dict[int, CellOutcome] = {}
    todo: deque[int] = deque()
    for i, cell in enumerate(cells):
        result = finished_result(out / cell.cell_id, cell.cell_id)
        if result is not None:
            outcomes[i] = CellOutcome(cell, "done", result=result)
        else:
            todo.append(i)
    report = SweepReport()

    def status_file() -> None:
        rows = []
        for i, cell in enumerate(cells):
            outcome = outcomes.get(i)
            rows.append({
                "cell_id": cell.cell_id,
                "variant": cell.variant,
                "params": cell.params,
                "status": outcome.status if outcome else "pending",
                "command": ["shiftkit", *cell_command(cell, out / cell.cell_id)],
            })  # fmt: skip
        _write_json(out / status_name, {**(status_extra or {}), "cells": rows})

    bar = tqdm(total=total, initial=total - len(todo), unit="cell", disable=not progress,
               dynamic_ncols=True)  # fmt: skip
    say = write or bar.write
    gpus = "" if slots is None else f", GPUs {' | '.join(','.join(s) for s in slots[:jobs])}"
    say(f"{len(todo)} of {total} cells to run ({total - len(todo)} finished before), "
        f"{min(jobs, max(1, len(todo)))} at a time, {threads} thread(s) each{gpus} -> {out}")  # fmt: skip
    status_file()
    running: dict[int, tuple[_Job, float, int | None]] = {}  # cell -> job, start, slot
    free = list(range(jobs)) if slots is not None else []  # slot indices, lowest first
    width = len(str(total))

    def finish(i: int, code: int, started: float, devices) -> CellOutcome:
        cell, run_dir = cells[i], out / cells[i].cell_id
        seconds = time.monotonic() - started
        result = finished_result(run_dir, cell.cell_id)
        if code == 0 and result is not None:
            outcome = CellOutcome(cell, "diverged" if result.get("diverged") else "ok",
                                  seconds, result, devices=devices)  # fmt: skip
            line = _summary(result)
        else:
            tail = _log_tail(run_dir / CELL_LOG)
            why = f"exit {code}" if code != 0 else "exit 0 but no result.json"
            outcome = CellOutcome(cell, "failed", seconds, error=f"{why}: {_error_line(tail)}",
                                  devices=devices)  # fmt: skip
            _write_json(run_dir / FAILED_FILE, {
                "cell_id": cell.cell_id, "variant": cell.variant, "params": cell.params,
                "exit_code": code, "error": outcome.error, "log": str(run_dir / CELL_LOG),
                "log_tail": tail, "command": ["shiftkit", *cell_command(cell, run_dir)],
                "seconds": seconds, "devices": devices,
            })  # fmt: skip
            line = f"{outcome.error} (log: {run_dir / CELL_LOG})"
        done = sum(1 for o in outcomes.values() if o.status != "pending") + 1
        on = "" if devices is None else f"GPU {','.join(devices)}, "
        say(f"[{done:>{width}}/{total}] {outcome.status:<8} {cell.cell_id}  {cell.label()}  "
            f"{line}  ({on}{seconds:.1f} s)")  # fmt: skip
        return outcome

    try:
        while todo or running:
            while todo and len(running) < jobs:
                i = todo.popleft()
                run_dir = out / cells[i].cell_id
                if run_dir.exists():  # an earlier, unfinished attempt: start clean
                    shutil.rmtree(run_dir)
                run_dir.mkdir(parents=True)
                args = cell_command(cells[i], run_dir)
                slot = free.pop(0) if slots is not None else None
                env = cell_env(threads, slots[slot] if slot is not None else None)
                job = _Job(args, run_dir / CELL_LOG, env, executor)
                running[i] = (job, time.monotonic(), slot)
            time.sleep(0.05)
            for i, (job, started, slot) in list(running.items()):
                code = job.exitcode()
                if code is None:
                    continue
                del running[i]
                if slot is not None:  # finished or failed, the slot's GPUs are free again
                    free.append(slot)
                    free.sort()
                outcomes[i] = finish(i, code, started, slots[slot] if slot is not None else None)
                bar.update(1)
                status_file()
                if on_cell_done is not None:
                    on_cell_done(outcomes[i])
    except KeyboardInterrupt:
        report.interrupted = True
        for i, (job, started, _) in running.items():
            job.stop()
            outcomes[i] = CellOutcome(cells[i], "interrupted", time.monotonic() - started)
        say(f"interrupted: {len(running)} running cell(s) stopped; "
            "run the same command again to resume")  # fmt: skip
        status_file()
    finally:
        bar.close()
    report.outcomes = [outcomes.get(i, CellOutcome(c, "pending")) for i, c in enumerate(cells)]
    return report
