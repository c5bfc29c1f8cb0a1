"""One measurement's numbers: read back in one transfer, logged in one call per logger."""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from shiftkit.tracker.warnings import rank_zero_warn

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


def records_from_host(
    names: list[str], table: np.ndarray, snap: Snapshot, sites: list[str], with_hist: bool
) -> list[SiteRecord]:
    """One :class:`SiteRecord` per site from the measurement's host table (``names`` and their
    ``(len(names), S)`` rows, see :func:`shiftkit.stats.compare.statistics_table`) and, if
    asked, the snapshot's histograms (host tensors: no device transfer here)."""
    flag_names = [n for n in names if n.startswith(FLAG_PREFIX)]
    hists = snap.hist.tolist() if with_hist else [[] for _ in sites]  # one list each, not shared
    records = []
    for site, column, hist in zip(sites, table.T.tolist(), hists):
        values = dict(zip(names, column))
        flags = {n: values.pop(n) for n in flag_names}
        records.append(SiteRecord(site, values, hist, flags))
    return records


@functools.lru_cache(maxsize=1 << 16)
def _cached_key(site: str, stat: str) -> str:
    # Built once per (site, statistic): validating and joining ~1000 keys cost ~1 ms a measurement.
    return shift_key(site, stat)


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
                metrics[_cached_key(r.site, stat)] = value
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
    loggers: Iterable[Any],
    metrics: Mapping[str, float],
    step: int,
    failed: set[int],
    owner: str,
    wandb_extra: Callable[[], dict[str, Any]] | None = None,
) -> None:
    """Log one measurement of a monitor: one ``log_metrics`` call per logger, NaN values left out.

    The one logging path of the tracker and the monitors (``ShiftTracker``, ``ShiftMonitor``,
    ``GradientICSMonitor``, ``LandscapeMonitor``). W&B loggers (:func:`wants_wandb_media`) also
    get ``wandb_extra()`` (histogram objects, heat-map images), built once when the first of them
    is reached. A logger that raises (a W&B directory that cannot
    be written, a full disk) gets one warning naming ``owner``; its id joins ``failed`` and it
    is skipped from then on. The other loggers still get the metrics and the error never
    reaches the training loop.

    Args:
        loggers: the Trainer's loggers, or the tracker's destinations (:class:`FunctionSink`,
            :class:`WandbRunSink`): anything with ``log_metrics(metrics, step=...)``.
        metrics: ``{key: value}`` of this measurement.
        step: the step it is logged at.
        failed: ids of the loggers that raised before (updated in place).
        owner: the callback's name, for the warning.
        wandb_extra: more values for W&B loggers only.
    """
    metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
    if not metrics:
        return
    extra = None
    for logger in loggers:
        if id(logger) in failed:
            continue
        try:
            if wandb_extra is not None and wants_wandb_media(logger):
                extra = extra if extra is not None else wandb_extra()
                logger.log_metrics({**metrics, **extra}, step=step)
            else:
                logger.log_metrics(metrics, step=step)
        except Exception as err:  # noqa: BLE001 -- a logger must never be why a run stops
            failed.add(id(logger))
            rank_zero_warn(
                f"{owner}: logging to {type(logger).__name__} failed ({type(err).__name__}: {err}); "
                "the monitor stops logging to it. Its history and the other loggers are unaffected"
            )


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

    The keys are declared once per run (:func:`define_shift_metrics`); ``wandb.log`` gets the step
    as a value, not as W&B's ``step=``, so the user's own ``wandb.log`` calls are unaffected.
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
