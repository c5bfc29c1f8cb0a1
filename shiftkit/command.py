"""The ``shiftkit`` command: routes a command line to the command that handles it.

``shiftkit fit|validate|test|predict ...`` goes to LightningCLI (:mod:`shiftkit.cli`):
``--config`` files, ``--print_config``, ``--trainer.devices=4 --trainer.strategy=ddp`` all work
the Lightning way. ``shiftkit sweep``, ``shiftkit demo``, ``shiftkit report`` and ``shiftkit workspace`` have their
own argparse handlers, routed here by name (:data:`SUBCOMMANDS`); to add a command, add its handler
there. This module sits above :mod:`shiftkit.cli` and :mod:`shiftkit.sweep`: the sweep calls the
command line's code, the command line never imports the sweep.

Example::

    shiftkit fit --config recipes/mnist_fig1.yaml --variant bn
    shiftkit sweep recipes/lr_multipliers.yaml --jobs 2 --out runs/lr_multipliers
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from shiftkit.extras import MissingExtraError, require

__all__ = ["SUBCOMMANDS", "main"]


def _sweep(argv: list[str]) -> int:
    require("cli", "shiftkit sweep")  # every cell is a `shiftkit fit` run
    from shiftkit.sweep.command import main as sweep_main

    return sweep_main(argv)


def _demo(argv: list[str]) -> int:
    from shiftkit.demo import main as demo_main

    return demo_main(argv)


def _report(argv: list[str]) -> int:
    require("report", "shiftkit report")
    from shiftkit.report.cli import main as report_main

    return report_main(argv)


def _workspace(argv: list[str]) -> int:
    require("wandb", "shiftkit workspace", ("wandb", "wandb_workspaces"))
    from shiftkit.integrations.wandb_workspace import main as workspace_main

    return workspace_main(argv)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "sweep": _sweep,
    "demo": _demo,
    "report": _report,
    "workspace": _workspace,
}
"""Subcommands with their own argparse handlers: name -> ``handler(argv) -> exit code``, where
``argv`` is the command line after the subcommand's name. Every other command line goes to
LightningCLI (``fit``, ``validate``, ``test``, ``predict``, ``--help``...)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shiftkit`` console script and of ``python -m shiftkit``.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status (LightningCLI's parse errors and ``--help`` exit through ``SystemExit``).

    Raises:
        SystemExit: a command whose extra is not installed, with the one line of
            :class:`~shiftkit.extras.MissingExtraError` (``pip install 'shiftkit[...]'``), before
            the command does any work.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return SUBCOMMANDS[argv[0]](argv[1:])
    except MissingExtraError as err:
        raise SystemExit(f"shiftkit: {err}") from None
    from shiftkit.cli import main as cli_main

    return cli_main(argv)
