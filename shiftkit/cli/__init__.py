"""``shiftkit fit|validate|test|predict``: the LightningCLI commands.

:class:`~shiftkit.cli.fit.ShiftkitCLI` with the shorthands of :mod:`shiftkit.cli.argv`; the
recipe files it reads (:mod:`shiftkit.cli.recipe`) and the config a run records and is named by
(:mod:`shiftkit.cli.run_config`). The other commands (``sweep``, ``demo``, ``report``) are
routed by :mod:`shiftkit.command`, which sits above this package: the sweep may call this
package's code, never the other way.

Example::

    shiftkit fit --config recipes/mnist_fig1.yaml --variant bn
    python -m shiftkit.cli fit --config recipes/mnist_fig1.yaml   # the same, LightningCLI only
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shiftkit.extras import MissingExtraError, require

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run LightningCLI on ``argv`` (default ``sys.argv[1:]``), the shorthands expanded.

    Returns:
        0 (LightningCLI's parse errors and ``--help`` exit through ``SystemExit``).

    Raises:
        SystemExit: without the ``cli`` extra, the one line of
            :class:`~shiftkit.extras.MissingExtraError` (``pip install 'shiftkit[cli]'``).
    """
    try:
        require("cli", "shiftkit fit|validate|test|predict")
    except MissingExtraError as err:
        raise SystemExit(f"shiftkit: {err}") from None
    from shiftkit.cli.fit import run_cli

    run_cli(list(sys.argv[1:] if argv is None else argv))
    return 0
