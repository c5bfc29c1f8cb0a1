"""ShiftMonitor: measure how each layer's input distribution moves while a network trains."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Iterator, Literal, Sequence

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from shiftkit.monitor.distributed import is_distributed
from shiftkit.monitor.hooks import SiteHooks
from shiftkit.monitor.logging import (
    OVERFLOW_FLAG,
    SiteRecord,
    log_measurement,
    measurement_metrics,
    records_from_host,
    wandb_histograms,
)
from shiftkit.monitor.probe import (
    ProbeFn,
    default_probe_fn,
    detached_copy,
    moved_copy,
    plain_batch,
    run_probe,
)
from shiftkit.monitor.selection import (
    Pattern,
    as_patterns,
    build_sites,
    select_modules,
    unit_layouts,
)
from shiftkit.monitor.summary import summarize_history
from shiftkit.monitor.validation import (
    MonitorConfigError,
    check_bool,
    check_callable,
    check_choice,
    check_fraction,
    check_int,
    check_quantiles,
    is_positive_number,
)
from shiftkit.records.names import DEFAULT_QUANTILES, OUTPUT_SITE_SUFFIX, site_stats
from shiftkit.stats import (
    EDGE_LIMIT,
    SATURATION_THRESHOLDS,
    ShiftAccumulator,
    SiteSpec,
    Snapshot,
    overflowed,
    site_statistics,
    torch_distributed_all_reduce,
)
from shiftkit.stats.histogram import edges_or_none, rebin_rows

TRACKS = ("inputs", "outputs", "both")
REFERENCES = ("previous", "initial", "probe")
PROBE_BASELINES = ("previous", "initial")


class ShiftMonitor(Callback):
    r"""Measure internal covariate shift: how each layer's input distribution moves between steps.

    Attach it to any LightningModule, with no change to the module. Every ``every_n_steps``
    optimizer steps it folds the selected layers' inputs of the training batch into per-unit
    sums and a fixed-edge histogram on the device, reduces them across DDP ranks with one
    ``all_reduce``, compares them with a reference snapshot and logs, per site,
    ``shift/{site}/{stat}`` (``kl_gauss``, ``kl_gauss_floor``, ``kl_hist``, ``js_hist``,
    ``mean_drift``, ``mean_drift_max``, ``std_log_ratio``, ``mean``, ``std``, the
    percentiles, ``hist_outside``, ``sat_frac``, ``dead_frac``, ``dead_units``, ``nonfinite``)
    plus ``shift/mean_kl_gauss`` and ``shift/max_kl_gauss``, one ``log_metrics`` call per
    logger. Definitions: :mod:`shiftkit.stats.compare`; names: :mod:`shiftkit.records.names`.
    What a site measures, mixed precision, ``torch.compile``, faults (which never stop
    training) and checkpoints: ``docs/shift_monitor.md``.

    Args:
        layers: which modules to watch: glob patterns on module names
            (``"encoder.*"``) or type names (``"Conv*"``), or module classes.
            Default: every ``Linear``, ``Conv*``, ``BatchNorm*``/``LayerNorm``/
            ``GroupNorm`` and activation module (not the submodules of
            ``MultiheadAttention``, which uses their weights without calling them).
        exclude: patterns of modules to leave out, same forms as ``layers``.
        track: measure each layer's ``"inputs"`` (the covariates, default),
            ``"outputs"``, or ``"both"``.
        every_n_steps: measure every this many optimizer steps (steps where
            ``global_step % every_n_steps == 0``); default: the Trainer's
            ``log_every_n_steps``.
        reference: what a snapshot is compared with: ``"previous"`` (the last
            measurement), ``"initial"`` (the first measurement), or
            ``"probe"``: instead of the training batch, a fixed probe batch is
            re-run through the training-mode forward under ``torch.no_grad()``
            at every measurement (see :mod:`shiftkit.monitor.probe`) and
            compared with the probe's previous (or initial, see
            ``probe_baseline``) snapshot, so only parameter changes move it.
        probe_batch: the probe batch; default: the first training batch.
        probe_fn: ``probe_fn(module, batch)`` runs the forward pass on a batch;
            default :func:`~shiftkit.monitor.probe.default_probe_fn`.
        probe_baseline: in probe mode, compare with the ``"previous"`` or the
            ``"initial"`` probe snapshot.
        stats: which statistics to log (default all); names from the list above,
            percentile names follow ``quantiles`` (``p15`` for 0.15).
        quantiles: percentile levels read from the histograms.
        bins: in-range histogram bins per site (plus underflow and overflow).
        hist_max_elements: at most this many elements per observed tensor go
            into the histogram (a strided subsample; moments use all elements);
            the default 16384 keeps percentiles within about ±0.012 in CDF.
        saturation_thresholds: ``{activation type name: |x| threshold}``;
            default :data:`~shiftkit.stats.SATURATION_THRESHOLDS` (Sigmoid 4, Tanh 2).
        noise_floor: log ``kl_gauss_floor`` (costs a few half-batch reductions).
        widen_at: when more than this share of a site's histogram falls outside
            its range (``hist_outside``), the range doubles around its centre
            from the next measurement on, so percentiles stay values rather than
            bounds; older histograms are re-binned onto the new edges (exactly,
            in-range). None keeps the warm-up edges for the whole run.
        var_floor: per-unit variances below this fraction of the layer's typical
            (mean per-unit) variance are raised to it before the Gaussian KL and
            the mean drift, so nearly constant units (border pixels, saturated or
            dead units) do not dominate the mean over units; see
            :mod:`shiftkit.stats.compare`.
        log_histograms: with a ``WandbLogger``, also log each site's fixed-edge
            histogram as a ``wandb.Histogram`` (key ``shift_hist/{site}``) ...
        histogram_every: ... every this many measurements.
        keep_history: keep :attr:`history` in memory.
        keep_histograms: also keep every measurement's histograms in
            :attr:`histogram_history` (``S x (bins + 2)`` floats per measurement;
            for the per-layer "colorful dimension" plots of the reports).
        max_units: a site with more units than this is tracked as one pooled
            unit (count, sum, sum of squares of all its elements): ``mean``,
            ``std``, the percentiles and ``nonfinite`` stay exact, and the
            divergences become those of one pooled Gaussian. So the state is
            ``O(sites x (min(units, max_units) + bins))`` however wide a layer
            is; only :attr:`history` grows, by one row per site and measurement.
        fused: compute each layer's sums in one ``torch.compile``-d kernel instead
            of about five elementwise passes (:mod:`shiftkit.stats.fused`):
            ~10x less time per large activation, but tens of seconds of
            compilation at the first measurement. Worth it for long runs that
            measure often on large activations.
        probe_seed: seed of the probe forward's random number generators.

    Attributes:
        history: a **list of dict rows**, one per (measurement, site): ``step``,
            ``epoch``, ``site`` and every statistic (NaN where it does not
            apply). ``pandas.DataFrame(monitor.history)`` gives a tidy table;
            see also :meth:`history_frame` and :meth:`summary`. Under
            ``ddp_spawn`` the launching process gets no history back: read the
            logger's files instead.

    Raises:
        MonitorConfigError: at construction, for an argument outside its allowed values (the
            message names it and them); at ``setup``, when nothing matches ``layers``; when a
            checkpoint written for other monitored layers is resumed.

    Example::

        from lightning.pytorch import Trainer
        from shiftkit import ShiftMonitor

        monitor = ShiftMonitor(every_n_steps=20, layers=["Linear", "Sigmoid"])
        Trainer(max_steps=500, callbacks=[monitor]).fit(model, datamodule)
        print(monitor.summary(top=5))
    """

    def __init__(
        self,
        layers: Pattern | Sequence[Pattern] | None = None,
        exclude: Pattern | Sequence[Pattern] | None = None,
        track: Literal["inputs", "outputs", "both"] = "inputs",
        every_n_steps: int | None = None,
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
    ):
        super().__init__()
        owner = "ShiftMonitor"
        as_patterns(layers, "layers", owner)
        as_patterns(exclude, "exclude", owner)
        check_choice(owner, "track", track, TRACKS)
        check_choice(owner, "reference", reference, REFERENCES)
        check_choice(owner, "probe_baseline", probe_baseline, PROBE_BASELINES)
        check_int(owner, "every_n_steps", every_n_steps, 1, allow_none=True)
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
                raise MonitorConfigError(
                    f"ShiftMonitor: stats must be a non-empty list of names from: {', '.join(known)}; "
                    f"got {stats!r}"
                )
            unknown = [s for s in stats if s not in known]
            if unknown:
                raise MonitorConfigError(f"ShiftMonitor: unknown stats {unknown}; allowed: {', '.join(known)}")
        thresholds = dict(SATURATION_THRESHOLDS) if saturation_thresholds is None else saturation_thresholds
        if not isinstance(thresholds, Mapping):
            raise MonitorConfigError(
                f"ShiftMonitor: saturation_thresholds must be a dict {{activation type name: |x| threshold}}, "
                f"e.g. {dict(SATURATION_THRESHOLDS)}; got {thresholds!r}"
            )
        bad = {k: v for k, v in thresholds.items() if not (isinstance(k, str) and is_positive_number(v))}
        if bad:
            raise MonitorConfigError(
                f"ShiftMonitor: saturation_thresholds must be positive finite numbers keyed by activation "
                f"type name (str), got {bad}"
            )
        thresholds = dict(thresholds)
        check_fraction(owner, "widen_at", widen_at, allow_none=True)
        check_fraction(owner, "var_floor", var_floor, closed_low=True)
        check_callable(owner, "probe_fn", probe_fn, "probe_fn(module, batch)")
        if reference != "probe" and (probe_batch is not None or probe_fn is not None):
            given = "probe_batch" if probe_batch is not None else "probe_fn"
            raise MonitorConfigError(
                f"ShiftMonitor: {given} is used only with reference='probe', got reference={reference!r}"
            )

        self.layers, self.exclude, self.track = layers, exclude, track
        self.every_n_steps, self.reference = every_n_steps, reference
        self.probe_batch, self.probe_fn, self.probe_baseline = probe_batch, probe_fn, probe_baseline
        self.stats = frozenset(stats if stats is not None else known)
        self.quantiles, self.bins, self.hist_max_elements = quantiles, bins, hist_max_elements
        self.saturation_thresholds, self.noise_floor, self.var_floor = thresholds, noise_floor, float(var_floor)
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

    # ------------------------------------------------------------------ identity
    @property
    @override
    def state_key(self) -> str:
        # Every argument that changes what is measured: two monitors of one Trainer that differ
        # in any of them keep their own checkpoint state (as ModelCheckpoint's key does).
        return self._generate_state_key(
            layers=repr(self.layers),
            exclude=repr(self.exclude),
            track=self.track,
            every_n_steps=self.every_n_steps,
            reference=self.reference,
            probe_baseline=self.probe_baseline,
            stats=sorted(self.stats),
            quantiles=self.quantiles,
            bins=self.bins,
            hist_max_elements=self.hist_max_elements,
            saturation_thresholds=sorted(self.saturation_thresholds.items()),
            noise_floor=self.noise_floor,
            widen_at=self.widen_at,
            var_floor=self.var_floor,
            max_units=self.max_units,
            probe_seed=self.probe_seed,
        )

    @property
    def site_names(self) -> list[str]:
        """Names of the monitored sites (available after ``setup``)."""
        return [s.name for s in self._sites]

    # ---------------------------------------------------------------- life cycle
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        selected = select_modules(pl_module, self.layers, self.exclude)
        sites = build_sites(selected, unit_layouts(pl_module), self.track, self.saturation_thresholds)
        self._sites = [spec for spec, _, _ in sites]
        self._every = self.every_n_steps or trainer.log_every_n_steps
        if self._hooks is not None:
            self._hooks.remove()
        self._hooks = SiteHooks(self._observe)
        for i, (_, kind, module) in enumerate(sites):
            self._hooks.register(i, module, kind)
        self._failed_sites, self._failed_loggers, self._no_tensor = set(), set(), set()
        self._disabled = False
        if self.log_histograms and not any(_is_wandb(lg) for lg in trainer.loggers):
            rank_zero_warn(
                "ShiftMonitor: log_histograms=True, but the Trainer has no WandbLogger; histograms are "
                "logged to W&B only (keep_histograms=True keeps them for write_records)"
            )

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._acc = ShiftAccumulator(
            self._sites,
            bins=self.bins,
            hist_max_elements=self.hist_max_elements,
            max_units=self.max_units,
            split_half=self.noise_floor and self.reference != "probe",
            fused=self.fused,
            device=pl_module.device,
        )
        self._ref, self._probe = None, None
        self._batch_step = self._probed_step = -1
        if self.probe_batch is not None:
            self._probe = moved_copy(self.probe_batch, pl_module.device)
        if self._pending_state is not None:
            self._restore(self._pending_state, pl_module.device)
            self._pending_state = None

    @override
    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        self._batch_step = step
        due = step % self._every == 0 and step != self.last_measured_step and not self._disabled
        if self.reference != "probe":
            self._hooks.active = due
            return
        if self._probe is None:
            self._probe = detached_copy(batch)
        if due and self._probed_step != step:
            self._probed_step = step
            self._hooks.active = True
            try:
                run_probe(pl_module, self._probe, self.probe_fn or default_probe_fn, self.probe_seed)
            finally:
                self._hooks.active = False
            self._hooks.flush()
            self._measure(trainer, step)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        was_active, self._hooks.active = self._hooks.active, False
        self._hooks.flush()  # what a compiled forward deferred (see hooks)
        # Under gradient accumulation the step's micro-batches all fold into one
        # snapshot: measure once the optimizer has stepped.
        if was_active and trainer.global_step != self._batch_step:
            self._measure(trainer, self._batch_step)

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and self._hooks is not None:
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
        except Exception as err:  # the monitor must never be why a training run stops
            # Skipped on this rank only: the packed layout, and so every
            # collective, stays the same on all ranks.
            self._failed_sites.add(index)
            self._warn_once(
                self._sites[index].name, "observe", f"measuring its {{kind}} failed ({_error(err)}); no longer measured"
            )

    # ------------------------------------------------------------- per measurement
    def _measure(self, trainer: Trainer, step: int) -> None:
        try:
            self._measure_now(trainer, step)
        except Exception as err:  # never an exception from the monitor (see _observe)
            # Every rank reaches this at the same measurement: the states were
            # reduced before anything that depends on their values ran.
            self._disabled = True
            self._hooks.active = False
            rank_zero_warn(
                f"ShiftMonitor: the measurement at step {step} failed ({_error(err)}); the monitor is off "
                "for the rest of this run, training goes on"
            )

    def _measure_now(self, trainer: Trainer, step: int) -> None:
        snap = self._acc.finish(all_reduce=torch_distributed_all_reduce if is_distributed(trainer) else None)
        ref = self._ref
        stats = site_statistics(
            snap,
            ref,
            sites=self._sites,
            quantiles=self.quantiles,
            var_floor_rel=self.var_floor,
            noise_floor=self.noise_floor and self.reference != "probe",
        )
        stats[OVERFLOW_FLAG] = overflowed(snap, ref)
        keep_first = self.reference == "initial" or (self.reference == "probe" and self.probe_baseline == "initial")
        if ref is None or not keep_first:
            self._ref = snap
        log_hist = self.log_histograms and self.measurements % self.histogram_every == 0
        records = records_from_host(stats, snap, [s.name for s in self._sites], log_hist or self.keep_histograms)
        self.measurements += 1
        self.last_measured_step = step
        self._report_inventories()
        self._warn_about(records, step)
        histograms = (lambda: wandb_histograms(records, snap)) if log_hist else None
        metrics = measurement_metrics(records, self.stats)
        log_measurement(trainer.loggers, metrics, step, self._failed_loggers, "ShiftMonitor", histograms)
        if self.keep_history:
            self.history.extend(r.row(step, trainer.current_epoch) for r in records if r.has_data)
        if self.keep_histograms:
            self.histogram_history.append((step, [r.hist for r in records], list(snap.layout.lo), list(snap.layout.hi)))
        self._widen_outgrown(records)

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
        return self.site_names, list(layout.lo) if layout else nan, list(layout.hi) if layout else nan

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
    @override
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
                        f"ShiftMonitor: the probe batch is not saved in checkpoints ({err}); a run resumed from "
                        "them takes a new probe batch and starts a new reference"
                    )
        return {
            "version": 1,
            "sites": [s.name for s in self._sites],
            "measurements": self.measurements,
            "last_measured_step": self.last_measured_step,
            "accumulator": self._acc.state_dict(),
            "reference": None if self._ref is None or (self.reference == "probe" and probe is None) else self._ref.state_dict(),
            "probe": probe,
            "history": list(self.history),
            "histogram_history": [list(entry) for entry in self.histogram_history],
        }

    @override
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
            raise MonitorConfigError(
                "ShiftMonitor: the checkpoint was written for other monitored layers "
                f"({len(state.get('sites', []))} sites) than this model has ({len(names)}); "
                "resume with the same model and the same layers/exclude/track arguments"
            )
        self._acc.load_state_dict(state["accumulator"])
        if state.get("reference") is not None:
            self._ref = Snapshot.from_state_dict(state["reference"], device)
        if state.get("probe") is not None and self.probe_batch is None:
            self._probe = moved_copy(state["probe"], device)

    # ------------------------------------------------------------------ warnings
    def _warn_once(self, site: str, what: str, message: str) -> None:
        if (site, what) not in self._warned:
            self._warned.add((site, what))
            kind = "output" if site.endswith(OUTPUT_SITE_SUFFIX) else "input"
            rank_zero_warn(f"ShiftMonitor: site '{site}': " + message.format(kind=kind))

    def _report_inventories(self) -> None:
        """Say once per site what its calls carried that was not measured (see :mod:`.hooks`)."""
        for i, inventory in sorted(self._hooks.take_inventories().items()):
            skipped = ", ".join(f"{path}: {what}" for path, what in inventory.skipped.items())
            if not inventory.measured:
                self._no_tensor.add(i)
                got = f"got {skipped}" if skipped else "got no tensor at all"
                self._warn_once(
                    self._sites[i].name, "no-tensor", f"its {{kind}} carried no floating-point tensor ({got}); not measured"
                )
            elif skipped:
                ((path, what),) = inventory.measured.items()
                self._warn_once(self._sites[i].name, "skipped", f"measured {path}: {what}; skipped {skipped}")

    def _warn_about(self, records: list[SiteRecord], step: int) -> None:
        for r in records:
            if r.values.get("nonfinite", 0.0) > 0:
                self._warn_once(
                    r.site, "nonfinite", "{kind} had non-finite values (counted in 'nonfinite', left out of the statistics)"
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
            self._warn_once(self._sites[i].name, "shape", "the number of units changed between calls; those calls are skipped")

    def _warn_once_for_missing(self) -> None:
        if self._acc is not None:
            # Sites already explained (no float tensor, measuring failed) are not repeated.
            explained = self._no_tensor | self._failed_sites
            for i, spec in enumerate(self._sites):
                if spec.name in self._acc.never_seen and i not in explained:
                    self._warn_once(spec.name, "never", "never ran in a measured training step; dropped")


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _is_wandb(logger: Any) -> bool:
    from lightning.pytorch.loggers import WandbLogger

    return isinstance(logger, WandbLogger)
