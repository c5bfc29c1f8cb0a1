"""One measurement's numbers: read back in one transfer, logged in one call per logger."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from shiftkit.records.names import (
    HEATMAP_PREFIX,
    HISTOGRAM_PREFIX,
    SHIFT_MAX_KL_GAUSS,
    SHIFT_MEAN_KL_GAUSS,
    SHIFT_PREFIX,
    SHIFT_STEP,
    histogram_key,
    shift_key,
)
from shiftkit.stats import Snapshot

#: Statistics whose name starts with this are flags for the monitor, not logged values.
FLAG_PREFIX = "_"
#: Flag: the site's float32 sums overflowed (see :func:`shiftkit.stats.overflowed`).
OVERFLOW_FLAG = "_overflow"


@dataclass
class SiteRecord:
    """The host-side numbers of one site at one measurement.

    ``values`` are the statistics (in :attr:`ShiftMonitor.history`); ``flags``
    the entries named with :data:`FLAG_PREFIX` (read back in the same transfer).
    """

    site: str
    values: dict[str, float]
    hist: list[float] = field(default_factory=list)
    flags: dict[str, float] = field(default_factory=dict)

    @property
    def has_data(self) -> bool:
        """The site saw at least one element (finite or not) in this measurement."""
        return not math.isnan(self.values.get("nonfinite", math.nan))

    def row(self, step: int, epoch: int) -> dict[str, Any]:
        return {"step": step, "epoch": epoch, "site": self.site, **self.values}


def records_from_host(stats: dict[str, Tensor], snap: Snapshot, sites: list[str], with_hist: bool) -> list[SiteRecord]:
    """Every statistic of every site (and the histograms if asked) in a single device-to-host copy."""
    names = list(stats)
    num_sites = len(sites)
    payload = torch.stack([stats[n] for n in names]).flatten()
    if with_hist:
        payload = torch.cat([payload, snap.hist.flatten()])
    host = payload.tolist()
    bins = snap.hist.shape[1]
    hist_start = len(names) * num_sites
    records = []
    for i, site in enumerate(sites):
        values = {n: host[j * num_sites + i] for j, n in enumerate(names)}
        flags = {n: values.pop(n) for n in names if n.startswith(FLAG_PREFIX)}
        hist = host[hist_start + i * bins : hist_start + (i + 1) * bins] if with_hist else []
        records.append(SiteRecord(site, values, hist, flags))
    return records


def measurement_metrics(records: Iterable[SiteRecord], allowed: frozenset[str]) -> dict[str, float]:
    """The flat ``{key: value}`` dict of one measurement: per-site stats plus network summaries.

    NaN values (a statistic that does not apply, or no reference yet) are left out.
    """
    metrics: dict[str, float] = {}
    kls = []
    for r in records:
        if not r.has_data:
            continue
        for stat, value in r.values.items():
            if stat in allowed and not math.isnan(value):
                metrics[shift_key(r.site, stat)] = value
        kl = r.values.get("kl_gauss", math.nan)
        if math.isfinite(kl):
            kls.append(kl)
    if kls:
        metrics[SHIFT_MEAN_KL_GAUSS] = sum(kls) / len(kls)
        metrics[SHIFT_MAX_KL_GAUSS] = max(kls)
    return metrics


def wandb_histograms(records: Iterable[SiteRecord], snap: Snapshot) -> dict[str, Any]:
    """``wandb.Histogram`` objects of the fixed-edge histograms (outer bins drawn one bin wide)."""
    import wandb

    out = {}
    for i, r in enumerate(records):
        edges = snap.layout.edges(i, snap.hist.shape[1] - 2)
        if r.hist and edges is not None and sum(r.hist) > 0:
            out[histogram_key(r.site)] = wandb.Histogram(np_histogram=(r.hist, edges.tensor().tolist()))
    return out


def log_measurement(
    loggers,
    records: list[SiteRecord],
    step: int,
    allowed: frozenset[str],
    snap: Snapshot | None,
    on_error: Callable[[Any, Exception], None] | None = None,
    media: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """One ``log_metrics(metrics, step=step)`` call per logger; W&B loggers (:func:`wants_wandb_media`)
    also get the histograms when ``snap`` is given, and what ``media()`` returns (made once, only
    if a W&B logger is there: the heat maps).

    ``loggers`` are Lightning loggers or the tracker's own sinks (:class:`FunctionSink`,
    :class:`WandbRunSink`): anything with ``log_metrics(metrics, step=...)``. A logger that
    raises (a W&B directory that cannot be written, a full disk) is handed to
    ``on_error(logger, error)`` and the other loggers still get the metrics; without
    ``on_error`` the error propagates.
    """
    metrics = measurement_metrics(records, allowed)
    if not loggers or not metrics:
        return
    extra = None
    for logger in loggers:
        try:
            if wants_wandb_media(logger) and (snap is not None or media is not None):
                if extra is None:
                    extra = wandb_histograms(records, snap) if snap is not None else {}
                    extra.update(media() if media is not None else {})
                logger.log_metrics({**metrics, **extra}, step=step)
            else:
                logger.log_metrics(metrics, step=step)
        except Exception as err:
            if on_error is None:
                raise
            on_error(logger, err)


def wants_wandb_media(logger: Any) -> bool:
    """A W&B destination: Lightning's ``WandbLogger`` or a :class:`WandbRunSink`."""
    if isinstance(logger, WandbRunSink):
        return True
    # Only a Lightning already imported can have made a WandbLogger: no import here.
    module = sys.modules.get("lightning.pytorch.loggers.wandb")
    return module is not None and isinstance(logger, module.WandbLogger)


def define_shift_metrics(run: Any, step_metric: str) -> None:
    """Declare the monitor's keys to a W&B run, with ``step_metric`` as their x axis.

    So W&B plots ``shift/*`` (and the histograms and heat maps) against the optimizer step
    rather than its own call counter, and the workspace view (see
    :mod:`shiftkit.integrations.wandb_workspace`) can use the same x axis everywhere.
    """
    run.define_metric(step_metric)
    for prefix in (SHIFT_PREFIX, HISTOGRAM_PREFIX, HEATMAP_PREFIX):
        run.define_metric(f"{prefix}*", step_metric=step_metric)


class FunctionSink:
    """A ``log_fn(metrics, step)`` the user passes, as a logger."""

    def __init__(self, fn: Callable[[dict[str, float], int], Any]):
        self.fn = fn

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        self.fn(metrics, step)


class WandbRunSink:
    """The current W&B run (``wandb.run``): ``wandb.log`` with :data:`SHIFT_STEP` as step metric.

    The keys are declared once (:func:`define_shift_metrics`); ``wandb.log`` is called with the
    step as a value, not as W&B's ``step=``, so the user's own ``wandb.log`` calls are unaffected.
    """

    def __init__(self):
        self._declared: Any = None  # the run the keys were declared to

    def log_metrics(self, metrics: dict[str, Any], step: int) -> None:
        import wandb

        run = wandb.run
        if run is None:
            raise RuntimeError("no W&B run: call wandb.init() before training")
        if self._declared is not run:
            define_shift_metrics(run, SHIFT_STEP)
            self._declared = run
        run.log({**metrics, SHIFT_STEP: step})
