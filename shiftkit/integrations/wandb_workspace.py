"""A W&B workspace view that stays readable at 100 layers, and the layer x step heat map it shows.

Left to itself, W&B makes one panel per logged key: for ResNet-20 that is one section ``shift``
of about 1,000 panels (62 sites x 17 statistics). :func:`build_workspace` makes a saved view
(``wandb_workspaces``) with instead:

* a pinned section **shift: network** on top: the network summaries ``shift/mean_kl_gauss`` and
  ``shift/max_kl_gauss`` over steps, and the layer x step heat-map images
  (``shift_heatmap/{stat}``, see :func:`heatmap_figure`);
* one section per statistic, **shift: {stat}**, holding one line plot that overlays every
  layer's ``shift/{site}/{stat}`` (a metric regex, so it needs no list of layers and keeps
  working when the model changes).

The keys are the monitor's (:mod:`shiftkit.records.names`); only the x axis differs per loop:
``trainer/global_step`` through Lightning's WandbLogger, ``train/global_step`` through the
Hugging Face Trainer, ``shift/step`` when :class:`~shiftkit.ShiftTracker` logs to W&B itself.

Offline first, as the W&B Report: building the view needs no network (:func:`workspace_spec`,
:func:`write_workspace_spec`); only :func:`save_workspace` talks to W&B. ``shiftkit workspace``
is the command line (:func:`main`).

Example::

    from shiftkit.integrations.wandb_workspace import build_workspace, save_workspace
    view = build_workspace("my-team", "my-project", step_metric="trainer/global_step")
    print(save_workspace(view))           # the view's URL
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shiftkit.extras import require
from shiftkit.records.names import (
    GLOBAL_STEP,
    SHIFT_MAX_KL_GAUSS,
    SHIFT_MEAN_KL_GAUSS,
    STATS,
    heatmap_key,
    shift_key_regex,
)

#: Statistics drawn on a log y axis (divergences span decades between layers).
LOG_STATS = frozenset({"kl_gauss", "kl_gauss_floor", "kl_hist", "js_hist"})
#: The statistics whose heat maps the default view shows.
HEATMAP_STATS = ("kl_gauss",)
NETWORK_SECTION = "shift: network"


def _apis():
    require("wandb", "the W&B workspace view", ("wandb", "wandb_workspaces"))
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    return ws, wr


def build_workspace(
    entity: str,
    project: str,
    *,
    name: str = "shiftkit: covariate shift",
    stats: Sequence[str] = STATS,
    step_metric: str = GLOBAL_STEP,
    heatmap_stats: Sequence[str] = HEATMAP_STATS,
    key_prefix: str = "",
):
    """The saved-view object (``wandb_workspaces.workspaces.Workspace``); no network.

    Args:
        entity, project: where the view is saved (and whose runs it shows).
        name: the view's name in the W&B app.
        stats: one section per statistic, in this order (names from
            :data:`~shiftkit.records.names.STATS`).
        step_metric: the x axis of every panel (see the module docstring).
        heatmap_stats: statistics whose heat-map images the network section shows.
        key_prefix: put before every key: ``"train/"`` for a Hugging Face Trainer run, whose
            W&B integration logs ``train/shift/...``.

    Raises:
        ValueError: an unknown statistic (the message lists the known ones).
    """
    for stat in (*stats, *heatmap_stats):
        if stat not in STATS:
            raise ValueError(
                f"build_workspace: unknown stat {stat!r}; expected one of {', '.join(STATS)}"
            )
    ws, wr = _apis()

    def line(title: str, **kwargs) -> Any:
        return wr.LinePlot(title=title, x=step_metric, title_x="step", **kwargs)

    network = [
        line("mean over layers of kl_gauss", y=[key_prefix + SHIFT_MEAN_KL_GAUSS], log_y=True),
        line("max over layers of kl_gauss", y=[key_prefix + SHIFT_MAX_KL_GAUSS], log_y=True),
    ]
    if heatmap_stats:
        keys = [key_prefix + heatmap_key(s) for s in heatmap_stats]
        network.append(
            wr.MediaBrowser(title="layer x step heat maps", media_keys=keys, num_columns=1)
        )
    sections = [ws.Section(name=NETWORK_SECTION, panels=network, is_open=True, pinned=True)]
    for stat in stats:
        regex = "^" + re.escape(key_prefix) + shift_key_regex(stat).removeprefix("^")
        plot = line(f"{stat}, all layers", metric_regex=regex, log_y=stat in LOG_STATS or None)
        sections.append(
            ws.Section(
                name=f"shift: {stat}",
                panels=[plot],
                is_open=stat == "kl_gauss",
                layout_settings=ws.SectionLayoutSettings(columns=1, rows=1),
            )
        )
    # The view shows these sections only: W&B's one panel per key is what it replaces.
    return ws.Workspace(
        entity=entity,
        project=project,
        name=name,
        sections=sections,
        settings=ws.WorkspaceSettings(x_axis=step_metric),
    )


def workspace_spec(workspace) -> dict:
    """The view as W&B stores it (a JSON-able dict); no network."""
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


def write_workspace_spec(workspace, path: str | os.PathLike) -> Path:
    """Write :func:`workspace_spec` as JSON to ``path`` (atomically); returns the path."""
    from shiftkit.records.atomic import atomic_write_bytes

    text = json.dumps(workspace_spec(workspace), indent=2) + "\n"
    return atomic_write_bytes(Path(path), text.encode("utf-8"))


def save_workspace(workspace) -> str:
    """Save the view to W&B (network, credentials) and return its URL."""
    workspace.save()
    return workspace.url


# ------------------------------------------------------------------------ heat map


def heatmap_matrix(
    history: Iterable[dict], stat: str
) -> tuple[list[str], list[int], list[list[float]]]:
    """``(sites, steps, values)`` of one statistic: ``values[i][j]`` is site ``i`` at step ``j``.

    Sites in the order they first appear in ``history`` (the monitor's network order), steps
    ascending; NaN where a site has no value at a step.
    """
    table: dict[str, dict[int, float]] = {}
    steps: set[int] = set()
    for row in history:
        value = row.get(stat, math.nan)
        table.setdefault(row["site"], {})[row["step"]] = value
        steps.add(row["step"])
    ordered = sorted(steps)
    return list(table), ordered, [[table[s].get(t, math.nan) for t in ordered] for s in table]


def heatmap_figure(history: Iterable[dict], stat: str = "kl_gauss", max_labels: int = 40):
    """A matplotlib figure: layers (rows, network order) x measured steps (columns), colored by
    ``stat`` (log10 for the divergences of :data:`LOG_STATS`); for ``wandb.Image(figure)``.

    Raises:
        MissingExtraError: matplotlib is not installed (``pip install 'shiftkit[wandb]'``).
    """
    require("wandb", "the layer x step heat map", ("matplotlib",))
    import numpy as np
    from matplotlib.figure import Figure  # not pyplot: no backend, no global figure state

    sites, steps, values = heatmap_matrix(history, stat)
    data = np.array(values, dtype=float).reshape(len(sites), len(steps))
    label = stat
    if stat in LOG_STATS:
        with np.errstate(divide="ignore", invalid="ignore"):
            data = np.log10(np.where(data > 0, data, np.nan))
        label = f"log10 {stat}"
    fig = Figure(figsize=(8, 1.5 + 0.12 * min(len(sites), 120)), dpi=100)
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(data), aspect="auto", interpolation="nearest", cmap="viridis"
    )
    fig.colorbar(image, ax=ax, label=label)
    every = max(1, math.ceil(len(sites) / max_labels))
    ax.set_yticks(
        range(0, len(sites), every), [sites[i] for i in range(0, len(sites), every)], fontsize=6
    )
    ticks = list(range(0, len(steps), max(1, math.ceil(len(steps) / 10))))
    ax.set_xticks(ticks, [str(steps[j]) for j in ticks])
    ax.set_xlabel("step")
    ax.set_title(f"{stat} per layer (rows: network order)")
    fig.tight_layout()
    return fig


def figure_pixels(fig):
    """The figure rendered (Agg) as an ``H x W x 3`` uint8 array, for ``wandb.Image``."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


# ------------------------------------------------------------------------ command


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shiftkit workspace",
        description="Save a W&B workspace view of shiftkit's metrics: one section per statistic, "
        "every layer in one plot, the network summaries and heat maps on top.",
    )
    p.add_argument("path", metavar="ENTITY/PROJECT", help="where the view is saved")
    p.add_argument("--name", default="shiftkit: covariate shift", help="the view's name")
    p.add_argument(
        "--stats", nargs="+", default=list(STATS), metavar="STAT", help="sections (default: all)"
    )
    p.add_argument("--step-metric", default=GLOBAL_STEP,
                   help=f"x axis (default {GLOBAL_STEP}; Hugging Face: train/global_step; "
                   "ShiftTracker(wandb=True): shift/step)")  # fmt: skip
    p.add_argument(
        "--key-prefix", default="", help="before every key: train/ for a Hugging Face Trainer run"
    )
    p.add_argument(
        "--spec-out",
        metavar="FILE",
        help="write the view's spec to FILE instead of saving it (no network)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """``shiftkit workspace ENTITY/PROJECT [--spec-out FILE]``; offline (``WANDB_MODE=offline``)
    it always writes the spec (to ``--spec-out``, default ``workspace_spec.json``)."""
    args = build_parser().parse_args(argv)
    parts = args.path.split("/")
    if len(parts) != 2 or not all(parts):
        raise SystemExit(f"shiftkit workspace: expected ENTITY/PROJECT, got {args.path!r}")
    try:
        view = build_workspace(
            parts[0],
            parts[1],
            name=args.name,
            stats=args.stats,
            step_metric=args.step_metric,
            key_prefix=args.key_prefix,
        )
    except ValueError as err:
        raise SystemExit(f"shiftkit workspace: {err}") from None
    offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun")
    if args.spec_out or offline:
        out = write_workspace_spec(view, args.spec_out or "workspace_spec.json")
        print(
            f"wrote the workspace spec to {out}" + (" (WANDB_MODE is offline)" if offline else "")
        )
        return 0
    print(save_workspace(view))
    return 0
