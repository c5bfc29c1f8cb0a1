"""ShiftTracker: the framework-free core of shiftkit's shift measurement.

It does everything :class:`~shiftkit.ShiftMonitor` does -- which layers, hooks, when, against what
reference, the DDP reduction, the comparison, history and checkpoint state -- in any training
loop, and imports no Lightning. The Lightning, Fabric and Hugging Face adapters are thin layers
over it (:mod:`shiftkit.monitor.shift_monitor`, :mod:`shiftkit.integrations`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from shiftkit.records.names import DEFAULT_QUANTILES, OUTPUT_SITE_SUFFIX, site_stats
from shiftkit.stats import (
    EDGE_LIMIT,
    SATURATION_THRESHOLDS,
    ShiftAccumulator,
    SiteSpec,
    Snapshot,
    statistics_table,
    torch_distributed_all_reduce,
)
from shiftkit.stats.histogram import edges_or_none, rebin_rows
from shiftkit.tracker.hooks import SiteHooks, compiled_somewhere
from shiftkit.tracker.logging import (
    OVERFLOW_FLAG,
    FunctionSink,
    SiteRecord,
    WandbRunSink,
    log_measurement,
    measurement_metrics,
    records_from_host,
    wandb_histograms,
)
from shiftkit.tracker.probe import (
    ProbeFn,
    default_probe_fn,
    detached_copy,
    moved_copy,
    plain_batch,
    run_probe,
)
from shiftkit.tracker.selection import (
    Pattern,
    as_patterns,
    build_sites,
    select_modules,
    unit_layouts,
)
from shiftkit.tracker.summary import summarize_history
from shiftkit.tracker.validation import (
    check_bool,
    check_callable,
    check_choice,
    check_fraction,
    check_int,
    check_quantiles,
    config_error,
    is_positive_number,
)
from shiftkit.tracker.warnings import rank_zero_warn

TRACKS = ("inputs", "outputs", "both")
REFERENCES = ("previous", "initial", "probe")
PROBE_BASELINES = ("previous", "initial")
#: Measure every this many optimizer steps unless told otherwise (Lightning's log_every_n_steps).
DEFAULT_EVERY = 50


class ShiftTracker:
    r"""Measure internal covariate shift in any training loop: how each layer's input moves.

    ::

        from shiftkit import ShiftTracker

        tracker = ShiftTracker(model, every_n_steps=50)
        for x, y in loader:
            with tracker.step():          # one optimizer step: all its forwards are folded
                loss = loss_fn(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
        print(tracker.summary(top=10)); tracker.history
        tracker.close()                   # hooks removed

    Steps count from 0 (or ``tracker.step(global_step)`` gives the step); a step is measured
    when ``step % every_n_steps == 0``: every forward of the selected layers inside its
    ``with`` block (all micro-batches of gradient accumulation, every call of a shared module)
    folds into one snapshot, which is then reduced across ``torch.distributed`` ranks (one
    ``all_reduce``; every rank must run the same steps, as in DDP), compared with the reference
    and logged. Outside a measured ``with`` block nothing is measured (evaluation forwards,
    a probe of your own): an eager model carries no hook of the tracker there, a compiled one
    a hook that checks one flag.

    Logged per measurement as one ``{key: value}`` dict: ``shift/{site}/{stat}`` for every
    site and statistic, plus ``shift/mean_kl_gauss`` and ``shift/max_kl_gauss`` (names and
    definitions: :class:`~shiftkit.ShiftMonitor`, :mod:`shiftkit.records.names`), to
    ``log_fn(metrics, step)`` and, with ``wandb=True``, to the current W&B run.

    Args:
        model: the network to watch; or None, and :meth:`attach` it later (adapters do).
        log_fn: called as ``log_fn(metrics, step)`` once per measurement, e.g.
            ``fabric.log_dict``, ``lambda m, s: writer.add_scalars(...)``.
        wandb: also ``wandb.log`` into the current run (``wandb.init()`` first), with the
            keys declared against the step metric ``shift/step`` (``define_metric``).
        heatmap_every: with a W&B destination, log the layer x step heat map of each of
            ``heatmap_stats`` (``shift_heatmap/{stat}``) every this many measurements; None: never.
        heatmap_stats: the statistics drawn as heat maps.
        owner: the name messages start with (the adapters pass theirs).
        every_n_steps: measure every this many optimizer steps (default 50).

    Every other argument is :class:`~shiftkit.ShiftMonitor`'s, with the same meaning.

    Attributes:
        history: one dict row per (measurement, site), as ``ShiftMonitor.history``.
        epoch: written into each history row; set it if your loop has epochs.
        loggers: further destinations with ``log_metrics(metrics, step=...)`` (Lightning
            loggers; the adapters set it).

    Raises:
        ConfigError: at construction, for an argument outside its allowed values (the message
            names it and them); at :meth:`attach`, when nothing in the model matches ``layers``;
            when a state written for other monitored layers is loaded. (Through ``ShiftMonitor``
            and the other Lightning callbacks: its subclass ``MonitorConfigError``.)
        MissingExtraError: ``wandb=True`` without ``pip install 'shiftkit[wandb]'``.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        layers: Pattern | Sequence[Pattern] | None = None,
        exclude: Pattern | Sequence[Pattern] | None = None,
        track: Literal["inputs", "outputs", "both"] = "inputs",
        every_n_steps: int = DEFAULT_EVERY,
        reference: Literal["previous", "initial", "probe"] = "previous",
        probe_batch: Any = None,
        probe_fn: ProbeFn | None = None,
        probe_baseline: Literal["previous", "initial"] = "previous",
        stats: Sequence[str] | None = None,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        bins: int = 64,
        hist_max_elements: int = 16384,
        saturation_thresholds: dict[str, float] | None = None,
        noise_floor: bool = True,
        widen_at: float | None = 0.01,
        var_floor: float = 1e-2,
        log_histograms: bool = False,
        histogram_every: int = 10,
        keep_history: bool = True,
        keep_histograms: bool = False,
        max_units: int = 65536,
        probe_seed: int = 0,
        fused: bool = False,
        *,
        log_fn: Callable[[dict[str, float], int], Any] | None = None,
        wandb: bool = False,
        heatmap_every: int | None = None,
        heatmap_stats: Sequence[str] = ("kl_gauss",),
        owner: str = "ShiftTracker",
    ):
        self.owner = owner
        as_patterns(layers, "layers", owner)
        as_patterns(exclude, "exclude", owner)
        check_choice(owner, "track", track, TRACKS)
        check_choice(owner, "reference", reference, REFERENCES)
        check_choice(owner, "probe_baseline", probe_baseline, PROBE_BASELINES)
        check_int(owner, "every_n_steps", every_n_steps, 1)
        check_int(owner, "bins", bins, 2)
        check_int(owner, "hist_max_elements", hist_max_elements, 1)
        check_int(owner, "histogram_every", histogram_every, 1)
        check_int(owner, "max_units", max_units, 1)
        check_int(owner, "probe_seed", probe_seed, 0)
        for name, flag in (
            ("noise_floor", noise_floor), ("log_histograms", log_histograms),
            ("keep_history", keep_history), ("keep_histograms", keep_histograms), ("fused", fused),
        ):  # fmt: skip
            check_bool(owner, name, flag)
        quantiles = check_quantiles(owner, quantiles)
        known = site_stats(quantiles)
        if stats is not None:
            stats = (stats,) if isinstance(stats, str) else stats
            if not isinstance(stats, (list, tuple, set, frozenset)) or not stats:
                raise config_error(
                    owner,
                    f"{owner}: stats must be a non-empty list of names from: {', '.join(known)}; "
                    f"got {stats!r}",
                )
            unknown = [s for s in stats if s not in known]
            if unknown:
                raise config_error(
                    owner, f"{owner}: unknown stats {unknown}; allowed: {', '.join(known)}"
                )
        thresholds = (
            dict(SATURATION_THRESHOLDS) if saturation_thresholds is None else saturation_thresholds
        )
        if not isinstance(thresholds, Mapping):
            raise config_error(
                owner,
                f"{owner}: saturation_thresholds must be a dict {{activation type name: |x| threshold}}, "
                f"e.g. {dict(SATURATION_THRESHOLDS)}; got {thresholds!r}",
            )
        bad = {
            k: v
            for k, v in thresholds.items()
            if not (isinstance(k, str) and is_positive_number(v))
        }
        if bad:
            raise config_error(
                owner,
                f"{owner}: saturation_thresholds must be positive finite numbers keyed by activation "
                f"type name (str), got {bad}",
            )
        thresholds = dict(thresholds)
        check_fraction(owner, "widen_at", widen_at, allow_none=True)
        check_fraction(owner, "var_floor", var_floor, closed_low=True)
        check_callable(owner, "probe_fn", probe_fn, "probe_fn(module, batch)")
        if reference != "probe" and (probe_batch is not None or probe_fn is not None):
            given = "probe_batch" if probe_batch is not None else "probe_fn"
            raise config_error(
                owner,
                f"{owner}: {given} is used only with reference='probe', got reference={reference!r}",
            )
        check_int(owner, "heatmap_every", heatmap_every, 1, allow_none=True)
        if not isinstance(wandb, bool):
            raise config_error(owner, f"{owner}: wandb must be True or False, got {wandb!r}")
        check_callable(owner, "log_fn", log_fn, "log_fn(metrics, step)")
        heatmap_stats = (heatmap_stats,) if isinstance(heatmap_stats, str) else tuple(heatmap_stats)
        unknown = [s for s in heatmap_stats if s not in known]
        if unknown:
            raise config_error(
                owner, f"{owner}: unknown heatmap_stats {unknown}; allowed: {', '.join(known)}"
            )
        if wandb:
            from shiftkit.extras import require

            require("wandb", f"{owner}(wandb=True)")

        self.layers, self.exclude, self.track = layers, exclude, track
        self.every_n_steps, self.reference = every_n_steps, reference
        self.probe_batch, self.probe_fn, self.probe_baseline = probe_batch, probe_fn, probe_baseline
        self.stats = frozenset(stats if stats is not None else known)
        self.quantiles, self.bins, self.hist_max_elements = quantiles, bins, hist_max_elements
        self.saturation_thresholds, self.noise_floor, self.var_floor = (
            thresholds,
            noise_floor,
            float(var_floor),
        )
        self.log_histograms, self.histogram_every = log_histograms, histogram_every
        self.keep_history, self.max_units, self.probe_seed = keep_history, max_units, probe_seed
        self.keep_histograms, self.fused, self.widen_at = keep_histograms, fused, widen_at

        self.history: list[dict[str, Any]] = []
        #: (step, counts per site, lo per site, hi per site) per measurement.
        self.histogram_history: list[tuple[int, list[list[float]], list[float], list[float]]] = []
        self.measurements = 0
        self.last_measured_step: int | None = None
        # Set up per fit (never in __init__: under ddp_spawn, tensors made here
        # would be shared between the spawned ranks).
        self._hooks: SiteHooks | None = None
        self._sites: list[SiteSpec] = []
        self._acc: ShiftAccumulator | None = None
        self._ref: Snapshot | None = None
        self._probe: Any = None
        self._every = 1
        self._batch_step = -1
        self._probed_step = -1
        self._pending_state: dict | None = None
        self._warned: set[tuple[str, str]] = set()
        self._failed_sites: set[int] = set()  # measuring failed on this rank
        self._failed_loggers: set[int] = set()  # ids of loggers whose log_metrics raised
        self._no_tensor: set[int] = set()  # sites whose calls carried no float tensor
        self._disabled = False
        self.log_fn, self.wandb = log_fn, wandb
        self.heatmap_every, self.heatmap_stats = heatmap_every, heatmap_stats
        self.epoch = 0
        self.loggers: list[Any] = []
        self._sinks: list[Any] = [FunctionSink(log_fn)] if log_fn is not None else []
        if wandb:
            self._sinks.append(WandbRunSink())
        self._every = every_n_steps or DEFAULT_EVERY
        self._next_step = 0
        self._model: nn.Module | None = None
        self._device: torch.device | None = None
        if model is not None:
            self.attach(model)

    # ------------------------------------------------------------------ identity
    @property
    def site_names(self) -> list[str]:
        """Names of the monitored sites (available after :meth:`attach`)."""
        return [s.name for s in self._sites]

    @property
    def every_n_steps_effective(self) -> int:
        """The measuring period in use (``every_n_steps``, or what an adapter chose)."""
        return self._every

    # ---------------------------------------------------------------- life cycle
    def attach(self, model: nn.Module, warn_unmatched: bool = True) -> None:
        """Select the layers of ``model`` and prepare their hooks, attached for measured steps.

        An eager model carries them only during measured steps; a compiled one (see
        :func:`~shiftkit.tracker.hooks.compiled_somewhere`) from here to :meth:`close`.

        Raises:
            ConfigError: nothing in ``model`` matches ``layers`` (the message lists its modules).
        """
        compiled = compiled_somewhere(model)  # before unwrapping: Fabric keeps it in a wrapper
        model = unwrapped(model)
        selected = select_modules(
            model, self.layers, self.exclude, warn_unmatched, owner=self.owner
        )
        sites = build_sites(selected, unit_layouts(model), self.track, self.saturation_thresholds)
        self._sites = [spec for spec, _, _ in sites]
        if self._hooks is not None:
            self._hooks.remove()
        self._hooks = SiteHooks(self._observe, on_demand=not compiled)
        for i, (_, kind, module) in enumerate(sites):
            self._hooks.register(i, module, kind)
        self._failed_sites, self._failed_loggers, self._no_tensor = set(), set(), set()
        self._disabled = False
        self._model = model
        self._acc = None

    def start(self, device: torch.device | str | None = None) -> None:
        """Make the on-device state (on ``device``, default the model's) and apply a loaded state.

        Called by the first :meth:`step`; adapters call it when training starts.
        """
        if self._model is None:
            raise RuntimeError(
                f"{self.owner}: no model: pass one to the constructor or call attach(model)"
            )
        if device is None:
            first = next(self._model.parameters(), None)
            device = first.device if first is not None else torch.device("cpu")
        device = torch.device(device)
        self._device = device
        self._acc = ShiftAccumulator(
            self._sites,
            bins=self.bins,
            hist_max_elements=self.hist_max_elements,
            max_units=self.max_units,
            split_half=self.noise_floor and self.reference != "probe",
            fused=self.fused,
            device=device,
        )
        self._ref, self._probe = None, None
        self._batch_step = self._probed_step = -1
        if self.probe_batch is not None:
            self._probe = moved_copy(self.probe_batch, device)
        if self._pending_state is not None:
            self._restore(self._pending_state, device)
            self._pending_state = None

    @contextlib.contextmanager
    def step(self, global_step: int | None = None, batch: Any = None) -> Iterator[None]:
        """One optimizer step: the forwards inside the block are measured if the step is due.

        Args:
            global_step: this step's number; default: one more than the last (from 0).
            batch: the step's (first) batch, for ``reference="probe"`` without a ``probe_batch``.
        """
        if self._acc is None:
            self.start()
        step = self._next_step if global_step is None else int(global_step)
        self.begin_batch(step, batch)
        try:
            yield
        finally:
            self.end_batch(stepped=True)
            self._next_step = step + 1

    def begin_batch(self, step: int, batch: Any = None) -> None:
        """A training (micro-)batch of optimizer step ``step`` starts: hooks on if the step is due.

        Adapters call this at every micro-batch; in probe mode the probe runs (and is measured)
        here, once per due step.
        """
        self._batch_step = step
        due = step % self._every == 0 and step != self.last_measured_step and not self._disabled
        if self.reference != "probe":
            self._hooks.active = due
            return
        if self._probe is None:
            if batch is None:
                raise config_error(
                    self.owner,
                    f"{self.owner}: reference='probe' needs a probe batch: pass probe_batch=... or step(batch=...)",
                )
            self._probe = detached_copy(batch)
        if due and self._probed_step != step:
            self._probed_step = step
            self._hooks.active = True
            try:
                run_probe(
                    self._model, self._probe, self.probe_fn or default_probe_fn, self.probe_seed
                )
            finally:
                self._hooks.active = False
            self._hooks.flush()
            self._measure(step)

    def end_batch(self, stepped: bool) -> None:
        """A training (micro-)batch ends; ``stepped``: the optimizer stepped after it.

        Under gradient accumulation a step's micro-batches all fold into one snapshot, measured
        once the optimizer has stepped.
        """
        was_active, self._hooks.active = self._hooks.active, False
        self._hooks.flush()  # what a compiled forward deferred (see hooks)
        if was_active and stepped:
            self._measure(self._batch_step)

    def close(self) -> None:
        """Remove every hook (the model is left as it was found); say which sites never ran."""
        if self._hooks is not None:
            self._hooks.remove()
            self._hooks = None
            self._warn_once_for_missing()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Inside this block no forward pass is measured, even during a measured step.

        For extra forward passes that are not training (e.g. the gradient-ICS
        and landscape measurements), which would otherwise be folded into the
        step's snapshot.
        """
        if self._hooks is None:
            yield
            return
        was, self._hooks.active = self._hooks.active, False
        try:
            yield
        finally:
            self._hooks.active = was

    # ------------------------------------------------------------------- hot path
    def _observe(self, index: int, x: torch.Tensor) -> None:
        if index in self._failed_sites:
            return
        try:
            self._acc.observe(index, x)
        except Exception as err:  # noqa: BLE001 -- the monitor must never be why a training run stops
            # Skipped on this rank only: the packed layout, and so every
            # collective, stays the same on all ranks.
            self._failed_sites.add(index)
            self._warn_once(
                self._sites[index].name,
                "observe",
                f"measuring its {{kind}} failed ({_error(err)}); no longer measured",
            )

    # ------------------------------------------------------------- per measurement
    def _measure(self, step: int) -> None:
        try:
            self._measure_now(step)
        except Exception as err:  # noqa: BLE001 -- never an exception from the monitor (see _observe)
            # Every rank reaches this at the same measurement: the states were
            # reduced before anything that depends on their values ran.
            self._disabled = True
            self._hooks.active = False
            rank_zero_warn(
                f"{self.owner}: the measurement at step {step} failed ({_error(err)}); the monitor is off "
                "for the rest of this run, training goes on"
            )

    def _measure_now(self, step: int) -> None:
        snap = self._acc.finish(
            all_reduce=torch_distributed_all_reduce if is_distributed() else None
        )
        # In this measurement's layout once (widened edges re-binned, new units appended), and kept
        # so: re-binning onto nested edges composes, so the kept reference compares as the original.
        ref = self._ref.extended_to(snap.layout) if self._ref is not None else None
        names, table = statistics_table(
            snap,
            ref,
            sites=self._sites,
            quantiles=self.quantiles,
            var_floor_rel=self.var_floor,
            noise_floor=self.noise_floor and self.reference != "probe",
            overflow=OVERFLOW_FLAG,
        )
        keep_first = self.reference == "initial" or (
            self.reference == "probe" and self.probe_baseline == "initial"
        )
        self._ref = snap if ref is None or not keep_first else ref
        log_hist = self.log_histograms and self.measurements % self.histogram_every == 0
        heatmaps = (
            self.heatmap_every is not None and (self.measurements + 1) % self.heatmap_every == 0
        )
        records = records_from_host(
            names, table, snap, [s.name for s in self._sites], log_hist or self.keep_histograms
        )
        self.measurements += 1
        self.last_measured_step = step
        self._report_inventories()
        self._warn_about(records, step)
        if self.keep_history:
            self.history.extend(r.row(step, self.epoch) for r in records if r.has_data)
        extra = self._wandb_media(records, snap if log_hist else None, heatmaps)
        metrics = measurement_metrics(records, self.stats)
        log_measurement(
            (*self._sinks, *self.loggers), metrics, step, self._failed_loggers, self.owner, extra
        )
        if self.keep_histograms:
            self.histogram_history.append(
                (step, [r.hist for r in records], list(snap.layout.lo), list(snap.layout.hi))
            )
        self._widen_outgrown(records)

    def _wandb_media(
        self, records, snap: Snapshot | None, heatmaps: bool
    ) -> Callable[[], dict] | None:
        """What W&B destinations get beyond the scalars: histograms and heat maps, made lazily."""
        if snap is None and not heatmaps:
            return None
        return lambda: {
            **(wandb_histograms(records, snap) if snap is not None else {}),
            **(self._heatmaps() if heatmaps else {}),
        }

    def _heatmaps(self) -> dict[str, Any]:
        """The layer x step heat maps of ``heatmap_stats`` over :attr:`history`, as ``wandb.Image``."""
        import wandb

        from shiftkit.integrations.wandb_workspace import figure_pixels, heatmap_figure
        from shiftkit.records.names import heatmap_key

        def image(stat: str):
            pixels = figure_pixels(heatmap_figure(self.history, stat))
            return wandb.Image(pixels, caption=f"{stat}: layers (rows) x steps")

        return {heatmap_key(s): image(s) for s in self.heatmap_stats}

    # ------------------------------------------------------------------- results
    def history_frame(self):
        """:attr:`history` as a pandas DataFrame (one row per measurement and site)."""
        import pandas as pd

        return pd.DataFrame(self.history)

    def summary(self, top: int | None = 10, by: str = "kl_gauss"):
        """The most-shifted sites: a DataFrame with one row per site, sorted by mean ``by``.

        Columns: the mean and last value of ``by`` over measurements, its mean
        excess over the noise floor (``kl_gauss - kl_gauss_floor``), the largest
        ``mean_drift`` over time (``mean_drift_peak``), and the last ``mean``/``std``/``sat_frac``/``dead_frac``.
        """
        return summarize_history(self.history, top=top, by=by)

    def histogram_edges(self) -> tuple[list[str], list[float], list[float]]:
        """``(sites, lo, hi)``: each site's in-range histogram edges (NaN if never seen)."""
        layout = self._acc.layout if self._acc is not None else None
        nan = [float("nan")] * len(self._sites)
        return (
            self.site_names,
            list(layout.lo) if layout else nan,
            list(layout.hi) if layout else nan,
        )

    def write_records(self, run_dir) -> None:
        """Write :attr:`history` (and the histograms, if kept) into a run directory.

        Files: ``shift_history.csv`` and ``shift_histograms.npz``, see
        :mod:`shiftkit.records.run_dir`. Atomic; call it on rank 0.
        """
        from shiftkit.records import write_shift_histograms, write_shift_history

        write_shift_history(run_dir, self.history)
        if self.histogram_history:
            sites, lo, hi = self.histogram_edges()
            steps = [entry[0] for entry in self.histogram_history]
            counts = [self._on_final_edges(entry, lo, hi) for entry in self.histogram_history]
            write_shift_histograms(run_dir, steps, counts, sites, lo, hi)

    def _on_final_edges(self, entry, lo: list[float], hi: list[float]) -> list[list[float]]:
        """One measurement's histograms re-binned onto the run's final (widest) edges."""
        _, counts, old_lo, old_hi = entry
        kept = [i for i, c in enumerate(counts) if c]
        if not kept:
            return counts
        moved = rebin_rows(
            torch.tensor([counts[i] for i in kept], dtype=torch.float64),
            [edges_or_none(old_lo[i], old_hi[i], self.bins) for i in kept],
            [edges_or_none(lo[i], hi[i], self.bins) for i in kept],
        ).tolist()
        out = list(counts)
        for row, i in zip(moved, kept):
            out[i] = row
        return out

    def _widen_outgrown(self, records: list[SiteRecord]) -> None:
        """Double the range of sites whose histogram spilled over (same decision on every rank)."""
        if self.widen_at is None:
            return
        spilled = [
            i
            for i, r in enumerate(records)
            if r.has_data and r.values.get("hist_outside", 0.0) > self.widen_at
        ]
        self._acc.widen(spilled)

    # -------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """The monitor's state: tensors, lists, dicts, strings and numbers only.

        So a checkpoint loads with ``torch.load(..., weights_only=True)``. A probe
        batch holding other objects than those is not saved (with a warning); a
        run resumed from such a checkpoint takes a new probe batch and starts a
        new reference.
        """
        if self._acc is None:
            return {} if self._pending_state is None else self._pending_state
        probe = None
        if self._probe is not None:
            try:
                probe = plain_batch(self._probe)
            except TypeError as err:
                if ("", "probe-state") not in self._warned:
                    self._warned.add(("", "probe-state"))
                    rank_zero_warn(
                        f"{self.owner}: the probe batch is not saved in checkpoints ({err}); a run resumed from "
                        "them takes a new probe batch and starts a new reference"
                    )
        return {
            "version": 1,
            "sites": [s.name for s in self._sites],
            "measurements": self.measurements,
            "last_measured_step": self.last_measured_step,
            "accumulator": self._acc.state_dict(),
            "reference": None
            if self._ref is None or (self.reference == "probe" and probe is None)
            else self._ref.state_dict(),
            "probe": probe,
            "history": list(self.history),
            "histogram_history": [list(entry) for entry in self.histogram_history],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        # Applied at on_train_start, once the model is on its device.
        self._pending_state = state_dict
        self.history = list(state_dict.get("history", []))
        self.histogram_history = [tuple(entry) for entry in state_dict.get("histogram_history", [])]
        self.measurements = state_dict.get("measurements", 0)
        self.last_measured_step = state_dict.get("last_measured_step")

    def _restore(self, state: dict, device: torch.device) -> None:
        names = [s.name for s in self._sites]
        if state.get("sites") != names:
            raise config_error(
                self.owner,
                f"{self.owner}: the checkpoint was written for other monitored layers "
                f"({len(state.get('sites', []))} sites) than this model has ({len(names)}); "
                "resume with the same model and the same layers/exclude/track arguments",
            )
        self._acc.load_state_dict(state["accumulator"])
        if state.get("reference") is not None:
            self._ref = Snapshot.from_state_dict(state["reference"])  # compared on the host
        if state.get("probe") is not None and self.probe_batch is None:
            self._probe = moved_copy(state["probe"], device)

    # ------------------------------------------------------------------ warnings
    def _warn_once(self, site: str, what: str, message: str) -> None:
        if (site, what) not in self._warned:
            self._warned.add((site, what))
            kind = "output" if site.endswith(OUTPUT_SITE_SUFFIX) else "input"
            rank_zero_warn(f"{self.owner}: site '{site}': " + message.format(kind=kind))

    def _report_inventories(self) -> None:
        """Say once per site what its calls carried that was not measured (see :mod:`.hooks`)."""
        for i, inventory in sorted(self._hooks.take_inventories().items()):
            skipped = ", ".join(f"{path}: {what}" for path, what in inventory.skipped.items())
            if not inventory.measured:
                self._no_tensor.add(i)
                got = f"got {skipped}" if skipped else "got no tensor at all"
                self._warn_once(
                    self._sites[i].name,
                    "no-tensor",
                    f"its {{kind}} carried no floating-point tensor ({got}); not measured",
                )
            elif skipped:
                ((path, what),) = inventory.measured.items()
                self._warn_once(
                    self._sites[i].name, "skipped", f"measured {path}: {what}; skipped {skipped}"
                )

    def _warn_about(self, records: list[SiteRecord], step: int) -> None:
        for r in records:
            if r.values.get("nonfinite", 0.0) > 0:
                self._warn_once(
                    r.site,
                    "nonfinite",
                    "{kind} had non-finite values (counted in 'nonfinite', left out of the statistics)",
                )
            if r.flags.get(OVERFLOW_FLAG):
                self._warn_once(
                    r.site,
                    "overflow",
                    f"{{kind}} values too large for float32 sums of squares (|x| above ~1e19) at step {step}; "
                    "its moments and divergences are reported as NaN where they overflowed",
                )
        for i, (lo, hi) in enumerate(zip(self._acc.layout.lo, self._acc.layout.hi)):
            if max(abs(lo), abs(hi)) >= EDGE_LIMIT:  # NaN (not seen yet) compares False
                self._warn_once(
                    self._sites[i].name,
                    "edges",
                    f"its histogram edges were chosen from values as large as {max(abs(lo), abs(hi)):.3g}; "
                    "its percentiles and histogram divergences are coarse for the rest of the run",
                )
        for i in sorted(self._acc.shape_mismatch):
            self._warn_once(
                self._sites[i].name,
                "shape",
                "the number of units changed between calls; those calls are skipped",
            )

    def _warn_once_for_missing(self) -> None:
        if self._acc is not None:
            # Sites already explained (no float tensor, measuring failed) are not repeated.
            explained = self._no_tensor | self._failed_sites
            for i, spec in enumerate(self._sites):
                if spec.name in self._acc.never_seen and i not in explained:
                    self._warn_once(
                        spec.name, "never", "never ran in a measured training step; dropped"
                    )


def unwrapped(model: nn.Module) -> nn.Module:
    """The user's module inside the wrappers of DDP/DataParallel (``.module``) and Lightning
    Fabric (``._original_module``), so site names are the same with or without them."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(
            getattr(model, "_original_module", None), nn.Module
        ):  # Fabric's _FabricModule
            model = model._original_module
        else:
            return model


def is_distributed() -> bool:
    """Several processes in an initialized default ``torch.distributed`` group: then every rank
    must enter the measurement's ``all_reduce`` at the same step."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"
