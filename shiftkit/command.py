"""The ``shiftkit`` command: routes a command line to the command that handles it.

``shiftkit fit|validate|test|predict ...`` goes to LightningCLI (:mod:`shiftkit.cli`):
``--config`` files, ``--print_config``, ``--trainer.devices=4 --trainer.strategy=ddp`` all work
the Lightning way. ``shiftkit sweep``, ``shiftkit demo`` and ``shiftkit report`` have their own
argparse handlers, routed here by name (:data:`SUBCOMMANDS`); to add a command, add its handler
there. This module sits above :mod:`shiftkit.cli` and :mod:`shiftkit.sweep`: the sweep calls the
command line's code, the command line never imports the sweep.

Example::

    shiftkit fit --config recipes/mnist_fig1.yaml --variant bn
    shiftkit sweep recipes/lr_multipliers.yaml --jobs 2 --out runs/lr_multipliers
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

__all__ = ["SUBCOMMANDS", "main"]


def _sweep(argv: list[str]) -> int:
    from shiftkit.sweep.command import main as sweep_main

    return sweep_main(argv)


def _demo(argv: list[str]) -> int:
    from shiftkit.demo import main as demo_main

    return demo_main(argv)


def _report(argv: list[str]) -> int:
    from shiftkit.report.cli import main as report_main

    return report_main(argv)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "sweep": _sweep,
    "demo": _demo,
    "report": _report,
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
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    from shiftkit.cli import main as cli_main

    return cli_main(argv)
