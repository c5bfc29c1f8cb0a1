"""The W&B logger of ``shiftkit fit --wandb``: online only for a logged-in user, decided offline.

Nothing here touches the network: "logged in" means an API key in ``WANDB_API_KEY`` or a
``.netrc`` entry for the W&B host (what ``wandb login`` writes). Everyone else gets an offline
run (``wandb sync`` uploads it later), so a run never waits for a network that is not there.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

from shiftkit.extras import require

__all__ = [
    "RunConfigWandbLogger",
    "WandbMode",
    "make_wandb_logger",
    "resolve_wandb_mode",
    "wandb_logged_in",
]

WandbMode = Literal["auto", "online", "offline"]

DEFAULT_BASE_URL = "https://api.wandb.ai"


def _netrc_paths() -> list[Path]:
    if os.environ.get("NETRC"):
        return [Path(os.environ["NETRC"])]
    home = Path.home()
    return [home / ".netrc", home / "_netrc"]


def wandb_logged_in() -> bool:
    """Whether W&B credentials are present, without network: ``WANDB_API_KEY`` is set, or a
    netrc file (``$NETRC``, ``~/.netrc``, ``~/_netrc``) has a password for the host of
    ``WANDB_BASE_URL`` (default ``api.wandb.ai``)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", DEFAULT_BASE_URL)).hostname
    for path in _netrc_paths():
        try:
            entry = netrc.netrc(str(path)).authenticators(host)
        except (OSError, netrc.NetrcParseError):
            continue
        if entry and entry[2]:
            return True
    return False


def resolve_wandb_mode(requested: WandbMode = "auto") -> str:
    """``online``, ``offline`` or ``disabled``.

    ``auto``: the ``WANDB_MODE`` environment variable if set (``dryrun`` means offline), else
    online when :func:`wandb_logged_in`, else offline. ``online``/``offline``: as asked.
    """
    if requested != "auto":
        return requested
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("offline", "dryrun"):
        return "offline"
    if env in ("online", "run"):
        return "online"
    if env == "disabled":
        return "disabled"
    return "online" if wandb_logged_in() else "offline"


class RunConfigWandbLogger(WandbLogger):
    """A WandbLogger whose run config is the one given at construction (see
    :func:`make_wandb_logger`); Lightning's hyper-parameter logging is ignored."""

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass  # the run config was given to wandb.init


def make_wandb_logger(
    run_dir: str | os.PathLike,
    project: str,
    mode: str,
    name: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    config: dict[str, Any] | None = None,
    tags: list[str] | None = None,
):
    """A :class:`~lightning.pytorch.loggers.WandbLogger` writing under ``run_dir/wandb``, whose
    run config is ``config`` and nothing else: Lightning's own hyper-parameter logging is left
    out, because it flattens the model's and the DataModule's arguments into one level, where
    the DataModule's ``variant`` (raw/binarized) and ``seed`` would overwrite the run's.

    Args:
        run_dir: the run directory (the W&B files go to its ``wandb/`` folder).
        project: W&B project.
        mode: ``online`` or ``offline`` (see :func:`resolve_wandb_mode`).
        name, group, job_type, tags: W&B run name, group (the recipe), job type (the variant).
        config: the run config, stored in the W&B run's config.
    """
    require("wandb", "a W&B logger (--wandb)")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    return RunConfigWandbLogger(
        project=project,
        save_dir=str(run_dir),
        offline=mode != "online",
        name=name,
        group=group,
        job_type=job_type,
        tags=tags,
        config=config,
    )
