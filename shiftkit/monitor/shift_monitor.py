"""ShiftMonitor: measure how each layer's input distribution moves while a network trains."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from shiftkit.monitor.validation import MonitorConfigError  # noqa: F401 -- registered for ShiftMonitor
from shiftkit.records.names import DEFAULT_QUANTILES, GLOBAL_STEP
from shiftkit.tracker import ShiftTracker
from shiftkit.tracker.logging import define_shift_metrics, wants_wandb_media
from shiftkit.tracker.probe import ProbeFn
from shiftkit.tracker.selection import Pattern
from shiftkit.tracker.tracker import DEFAULT_EVERY


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
    training) and checkpoints: ``docs/shift_monitor.md``. Everything but the Lightning life
    cycle is done by a :class:`~shiftkit.ShiftTracker` (:attr:`tracker`), which works the same
    in a plain loop, under Fabric and in the Hugging Face Trainer.

    Args:
        layers: which modules to watch: glob patterns on module names
            (``"encoder.*"``) or type names (``"Conv*"``), or module classes.
            Default: every ``Linear``, ``Conv*``, ``BatchNorm*``/``LayerNorm``/
            ``GroupNorm``, activation and recurrent (``LSTM``/``GRU``/``RNN``: the
            float input sequence) module (not the submodules of
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
            at every measurement (see :mod:`shiftkit.tracker.probe`) and
            compared with the probe's previous (or initial, see
            ``probe_baseline``) snapshot, so only parameter changes move it.
        probe_batch: the probe batch; default: the first training batch.
        probe_fn: ``probe_fn(module, batch)`` runs the forward pass on a batch;
            default :func:`~shiftkit.tracker.probe.default_probe_fn`.
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
            of two elementwise passes (a CPU tensor with finite values) or five
            (NaN/Inf, or an accelerator) (:mod:`shiftkit.stats.fused`): one read
            of each large activation, but tens of seconds of compilation at the
            first measurement. On a CPU it gains some on large layers (1.23-1.38x
            instead of 1.29-1.68x every step on ResNet-20 in the committed
            benchmark) and costs more than eager on small ones; it is meant for
            accelerators, not yet measured there.
        probe_seed: seed of the probe forward's random number generators.
        heatmap_every: with a ``WandbLogger``, also log the layer x step heat map of
            ``kl_gauss`` over the run so far (an image, ``shift_heatmap/kl_gauss``) every this
            many measurements; None (default): never. How a run is shown, not what it computes:
            left out of the CLI's run hash.

    Attributes:
        tracker: the :class:`~shiftkit.ShiftTracker` doing the work; the options and results
            (:attr:`history`, ``measurements``, ``histogram_history``, ...) are read from it.
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
        heatmap_every: int | None = None,
    ):
        super().__init__()
        # Everything but the Lightning life cycle is the tracker's: checks, hooks, measurement,
        # history, checkpoint state. every_n_steps=None waits for the Trainer's log_every_n_steps.
        self.tracker = ShiftTracker(
            None, layers=layers, exclude=exclude, track=track,
            every_n_steps=DEFAULT_EVERY if every_n_steps is None else every_n_steps,
            reference=reference, probe_batch=probe_batch, probe_fn=probe_fn, probe_baseline=probe_baseline,
            stats=stats, quantiles=quantiles, bins=bins, hist_max_elements=hist_max_elements,
            saturation_thresholds=saturation_thresholds, noise_floor=noise_floor, widen_at=widen_at,
            var_floor=var_floor, log_histograms=log_histograms, histogram_every=histogram_every,
            keep_history=keep_history, keep_histograms=keep_histograms, max_units=max_units,
            probe_seed=probe_seed, fused=fused, heatmap_every=heatmap_every, owner="ShiftMonitor",
        )  # fmt: skip
        self.every_n_steps = every_n_steps

    def __getattr__(self, name: str) -> Any:
        # The options and results (history, measurements, bins, ...) live on the tracker.
        if name == "tracker":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.tracker, name)

    # ------------------------------------------------------------------ identity
    #: Every argument that changes what is measured, in the key's order (``every_n_steps`` is the
    #: monitor's, the rest the tracker's), and how a value is written into the key.
    _KEY_OPTIONS = (
        "layers", "exclude", "track", "every_n_steps", "reference", "probe_baseline", "stats",
        "quantiles", "bins", "hist_max_elements", "saturation_thresholds", "noise_floor", "widen_at",
        "var_floor", "max_units", "probe_seed",
    )  # fmt: skip
    _KEY_FORMS: dict[str, Any] = {
        "layers": repr, "exclude": repr, "stats": sorted, "saturation_thresholds": lambda d: sorted(d.items()),
    }  # fmt: skip

    @property
    @override
    def state_key(self) -> str:
        # Two monitors of one Trainer that differ in any option keep their own checkpoint state
        # (as ModelCheckpoint's key does). Lightning reads the key around every callback hook (its
        # profiler's action name), six times a step: it is rebuilt only when an option changed
        # (building it took 23 us).
        tracker = self.tracker
        values = tuple(
            self.every_n_steps if name == "every_n_steps" else getattr(tracker, name)
            for name in self._KEY_OPTIONS
        )
        cached = self.__dict__.get("_state_key")
        if cached is None or cached[0] != values:
            forms = self._KEY_FORMS
            key = self._generate_state_key(
                **{n: forms[n](v) if n in forms else v for n, v in zip(self._KEY_OPTIONS, values)}
            )
            cached = self.__dict__["_state_key"] = (values, key)
        return cached[1]

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict row per (measurement, site); see the class docstring."""
        return self.tracker.history

    @history.setter
    def history(self, rows: list[dict[str, Any]]) -> None:
        self.tracker.history = rows

    # ---------------------------------------------------------------- life cycle
    @override
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.tracker.attach(pl_module)
        self.tracker._every = self.every_n_steps or trainer.log_every_n_steps
        self.tracker.loggers = list(trainer.loggers)
        wandb_loggers = [lg for lg in trainer.loggers if wants_wandb_media(lg)]
        for logger in wandb_loggers:
            # shift/* against the Trainer's step, as Lightning's own trainer/* keys.
            experiment = logger.experiment
            if hasattr(experiment, "define_metric"):  # rank 0 only: other ranks get a dummy
                define_shift_metrics(experiment, GLOBAL_STEP)
        if self.log_histograms and not wandb_loggers:
            rank_zero_warn(
                "ShiftMonitor: log_histograms=True, but the Trainer has no WandbLogger; histograms are "
                "logged to W&B only (keep_histograms=True keeps them for write_records)"
            )

    @override
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.start(pl_module.device)

    @override
    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.tracker.epoch = trainer.current_epoch
        self.tracker.begin_batch(trainer.global_step, batch)

    @override
    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Under gradient accumulation only the last micro-batch of a step advances global_step.
        self.tracker.end_batch(stepped=trainer.global_step != self.tracker._batch_step)

    @override
    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self.tracker.close()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Inside this block no forward pass is measured, even during a measured step.

        For extra forward passes that are not training (e.g. the gradient-ICS and landscape
        measurements), which would otherwise be folded into the step's snapshot.
        """
        with self.tracker.paused():
            yield

    # ------------------------------------------------------------------- results
    def history_frame(self):
        """:attr:`history` as a pandas DataFrame (one row per measurement and site)."""
        return self.tracker.history_frame()

    def summary(self, top: int | None = 10, by: str = "kl_gauss"):
        """The most-shifted sites: a DataFrame with one row per site, sorted by mean ``by``.

        Columns: the mean and last value of ``by`` over measurements, its mean
        excess over the noise floor (``kl_gauss - kl_gauss_floor``), the largest
        ``mean_drift`` over time (``mean_drift_peak``), and the last ``mean``/``std``/``sat_frac``/``dead_frac``.
        """
        return self.tracker.summary(top=top, by=by)

    def write_records(self, run_dir) -> None:
        """Write :attr:`history` (and the histograms, if kept) into a run directory (see
        :meth:`ShiftTracker.write_records`); call it on rank 0."""
        self.tracker.write_records(run_dir)

    # -------------------------------------------------------------- checkpointing
    @override
    def state_dict(self) -> dict[str, Any]:
        """The monitor's state (the tracker's): tensors, lists, dicts, strings and numbers only,
        so a checkpoint loads with ``torch.load(..., weights_only=True)``."""
        return self.tracker.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state_dict)
