"""GPUs for a sweep's cells: ``shiftkit sweep --devices-per-cell K [--cells-per-device M]``.

With G visible GPUs, the sweep runs ``(G // K) * M`` cells at once: the GPUs are cut into
``G // K`` groups of K (in the order they are visible), each cell runs on one group (its process
sees only those GPUs, through ``CUDA_VISIBLE_DEVICES``) and at most M cells share a group. A cell
that ends, finished or failed, frees its group for the next cell. Every cell gets
``--trainer.devices=K``, and with K > 1 a DDP strategy (``--trainer.strategy=ddp``) unless its
config names a strategy other than ``auto``.

The visible GPUs are the entries of ``CUDA_VISIBLE_DEVICES`` when it is set (so a job scheduler's
allocation is respected, and a test can fake a GPU box), else ``0 .. n-1`` for the n devices torch
counts (through NVML where it can, which does not initialize CUDA: cells can still be forked).

Example::

    from shiftkit.sweep.devices import device_slots

    device_slots(["0", "1", "2", "3"], per_cell=2)                       # [('0', '1'), ('2', '3')]
    device_slots(["0"], per_cell=1, cells_per_device=2)                  # [('0',), ('0',)]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from shiftkit.sweep.spec import Cell, SweepError

__all__ = ["DEVICES_ENV", "device_args", "device_slots", "use_ddp", "visible_devices"]

DEVICES_ENV = "CUDA_VISIBLE_DEVICES"
#: Strategies that mean "the user chose none" (Lightning's default).
_NO_STRATEGY = (None, "auto")


def visible_devices(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPUs this process may hand to cells: ``CUDA_VISIBLE_DEVICES``'s entries, else
    ``"0" .. "n-1"`` for torch's device count (``[]`` without CUDA)."""
    env = os.environ if environ is None else environ
    value = env.get(DEVICES_ENV)
    if value is None:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    devices = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.lstrip("-").isdigit() and int(entry) < 0:
            break  # CUDA ignores an invalid entry and all after it (-1 is the usual "none")
        devices.append(entry)
    return devices


def device_slots(
    devices: Sequence[str], per_cell: int, cells_per_device: int = 1
) -> list[tuple[str, ...]]:
    """The device sets cells run on at once: ``len(devices) // per_cell`` disjoint groups of
    ``per_cell`` devices, each listed ``cells_per_device`` times (the groups first, so that fewer
    cells than slots spread over all groups).

    Raises:
        SweepError: a count below 1, or fewer devices than ``per_cell``.
    """
    if per_cell < 1 or cells_per_device < 1:
        raise SweepError(
            f"--devices-per-cell and --cells-per-device must be >= 1, got {per_cell} and "
            f"{cells_per_device}"
        )
    if len(devices) < per_cell:
        seen = f"{DEVICES_ENV}={','.join(devices)}" if devices else "none"
        raise SweepError(
            f"--devices-per-cell {per_cell}: only {len(devices)} GPU(s) visible ({seen}); "
            "set CUDA_VISIBLE_DEVICES or use --jobs on the CPU"
        )
    groups = [tuple(devices[i : i + per_cell]) for i in range(0, len(devices), per_cell)]
    groups = [g for g in groups if len(g) == per_cell]
    return [group for _ in range(cells_per_device) for group in groups]


def device_args(per_cell: int, extra_args: Sequence[str]) -> list[str]:
    """The ``shiftkit fit`` arguments that give a cell ``per_cell`` devices, to go before the
    user's ``extra_args``.

    Raises:
        SweepError: ``extra_args`` set ``trainer.devices`` themselves.
    """
    for arg in extra_args:
        if arg == "--trainer.devices" or arg.startswith("--trainer.devices="):
            raise SweepError(
                f"--devices-per-cell {per_cell} sets every cell's --trainer.devices; "
                f"leave {arg.split('=')[0]} out of the arguments after --"
            )
    return [f"--trainer.devices={per_cell}"]


def use_ddp(cells: list[Cell], per_cell: int, resolver=None) -> list[Cell]:
    """Check resolved cells can use their ``per_cell`` GPUs and, for ``per_cell > 1``, give DDP
    (``--trainer.strategy=ddp``, then resolved again) to those whose strategy is ``auto``.

    Raises:
        SweepError: a cell runs on the CPU (``trainer.accelerator: cpu``) or on another number
            of devices (a variant's ``trainer.devices`` is overridden; other settings are not).
    """
    from shiftkit.sweep.runner import resolve_cells

    pinned = []
    for cell in cells:
        trainer = cell.config.get("trainer") or {}
        if trainer.get("accelerator") == "cpu":
            raise SweepError(
                f"cell '{cell.label()}' runs on the CPU (trainer.accelerator: cpu) but "
                "--devices-per-cell hands out GPUs; add -- --trainer.accelerator=gpu"
            )
        if str(trainer.get("devices")) != str(per_cell):  # the command line gives "2", YAML 2
            raise SweepError(
                f"cell '{cell.label()}' has trainer.devices={trainer.get('devices')!r}, not "
                f"--devices-per-cell {per_cell}"
            )
        if per_cell > 1 and trainer.get("strategy") in _NO_STRATEGY:
            cell.fit_args = [*cell.fit_args, "--trainer.strategy=ddp"]
            pinned.append(cell)
    if pinned:
        resolve_cells(pinned, resolver)  # new ids: the strategy is part of a cell's config
    seen: set[str] = set()  # an "auto" cell may now equal one that named ddp: run it once
    return [c for c in cells if not (c.cell_id in seen or seen.add(c.cell_id))]
