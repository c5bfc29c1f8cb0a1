"""ShiftMonitor: measure how each layer's input distribution moves while a network trains."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn

from shiftkit.records.names import GLOBAL_STEP
from shiftkit.tracker import ShiftTracker
from shiftkit.tracker.logging import define_shift_metrics, wants_wandb_media
from shiftkit.tracker.probe import ProbeFn
from shiftkit.tracker.selection import Pattern
from shiftkit.tracker.tracker import DEFAULT_EVERY


class ShiftMonitor(Callback):
    r"""Measure internal covariate shift: how each layer's input distribution moves between steps.

    Attach it to any LightningModule, with no change to the module::

        trainer = Trainer(callbacks=[ShiftMonitor()])

    Every ``every_n_steps`` optimizer steps it folds the selected layers'
    inputs of that step's training batch (all micro-batches, all calls of a
    shared module) into per-unit sufficient statistics and a fixed-edge
    histogram, on the device, without host syncs inside the hooks. Then, once
    per measurement, it sums those states across DDP ranks with one
    ``all_reduce``, compares them with the reference snapshot, reads every
    number back in one transfer and logs them through the Trainer's loggers.
    Validation, test and predict forwards are never measured.

    Logged per site (a layer's input is named after the layer; an output gets
    the suffix ``@out``), as ``shift/{site}/{stat}``:

    * against the reference: ``kl_gauss`` (mean over units of the Gaussian
      KL(now || reference)), ``kl_gauss_floor`` (the KL two batches of one
      unchanging distribution would give, from a split-half estimate within the
      batch; not in probe mode, where the inputs do not change),
      ``kl_hist``/``js_hist`` (between fixed-edge histograms),
      ``mean_drift``/``mean_drift_max`` (``|mu - mu_ref| / sigma_ref``, mean/max
      over units), ``std_log_ratio`` (``log(sigma / sigma_ref)``);
    * of the current snapshot: ``mean``, ``std``, ``p15``/``p50``/``p85``
      (from the histogram), ``nonfinite`` (count of NaN/Inf), ``sat_frac``
      (inputs of sigmoid/tanh beyond the saturation threshold), ``dead_frac``
      and ``dead_units`` (inputs of ReLU that are <= 0 / units that never fire);
    * per network: ``shift/mean_kl_gauss`` and ``shift/max_kl_gauss`` over sites.

    The exact definitions are in :mod:`shiftkit.stats.compare`.

    **What a site measures.** The first floating-point tensor among the
    module's positional, then keyword arguments (for an ``@out`` site: in its
    output), searched through tuples, lists and dicts. Integer token ids,
    ``None``, a LSTM's ``(h, c)``, attention weights are skipped, and the monitor
    says once per site what it measured and what it skipped. A module called
    several times in one step (shared weights, a recurrent cell) folds every
    call into one state. Shapes may change between steps (sequence length,
    image size, a partial last batch) while the number of units stays; a site
    whose number of units changes (features = sequence length) skips the calls
    that do not match its first one, with one warning.

    **Mixed precision.** float16/bfloat16 activations (``precision="bf16-mixed"``,
    ``"16-mixed"``, ``"bf16-true"``, ``"16-true"``) are upcast to float32 before
    any reduction; per-call sums are accumulated in float64. On CPU, Lightning
    turns ``"16-mixed"`` into ``"bf16-mixed"`` (with its own warning); float16
    autocast on CPU runs with ``plugins=[MixedPrecision("16-mixed", "cpu")]``
    and is measured the same way (checked on torch 2.13 CPU).

    **torch.compile** (checked on torch 2.13 CPU with the ``eager``, ``aot_eager``
    and ``inductor`` backends, ``fullgraph=True`` included, compiling the
    LightningModule or a submodule): the numbers equal the uncompiled model's
    (inductor: to its own float32 rounding, ~1e-6). Dynamo compiles two variants:
    unmeasured steps with no trace of the monitor, measured steps where each
    hook copies its tensor (kept until the end of the batch: one extra copy of
    every monitored activation on measured steps only) instead of breaking the
    graph. Hooks may be registered before or after the first compiled call;
    site names leave out ``_orig_mod``. Not checked here: CUDA graphs
    (``mode="reduce-overhead"``).

    **Faults never stop training.** NaN/±Inf elements are counted in
    ``nonfinite`` and left out of every other statistic and of the histograms
    (one warning per site). Statistics are finite or NaN, never Inf: finite
    inputs beyond ~1e19 overflow float32 squares, and what depends on them is
    NaN (one warning per site saying so). An error while measuring a site stops
    that site, an error in a measurement switches the monitor off, a logger
    whose ``log_metrics`` raises (W&B on a full disk) stops getting the
    monitor's metrics — each with one warning, never an exception into the
    training loop. Misuse does raise: at construction (every argument is
    checked, the message names it and the allowed values) and at ``setup``
    (nothing matches ``layers``; a single pattern that matches nothing warns).
    Under DDP, ranks with uneven or empty batches enter the same collectives in
    the same order. The state (:meth:`state_dict`) holds only tensors, lists,
    dicts, strings and numbers: checkpoints load with ``weights_only=True``.

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
        quantiles: Sequence[float] = (0.15, 0.5, 0.85),
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
            probe_seed=probe_seed, fused=fused, owner="ShiftMonitor",
        )  # fmt: skip
        self.every_n_steps = every_n_steps

    def __getattr__(self, name: str) -> Any:
        # The options and results (history, measurements, bins, ...) live on the tracker.
        if name == "tracker":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.tracker, name)

    # ------------------------------------------------------------------ identity
    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            layers=repr(self.layers), track=self.track, reference=self.reference
        )

    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict row per (measurement, site); see the class docstring."""
        return self.tracker.history

    @history.setter
    def history(self, rows: list[dict[str, Any]]) -> None:
        self.tracker.history = rows

    # ---------------------------------------------------------------- life cycle
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

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.tracker.start(pl_module.device)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.tracker.epoch = trainer.current_epoch
        self.tracker.begin_batch(trainer.global_step, batch)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Under gradient accumulation only the last micro-batch of a step advances global_step.
        self.tracker.end_batch(stepped=trainer.global_step != self.tracker._batch_step)

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
        ``mean_drift``, and the last ``mean``/``std``/``sat_frac``/``dead_frac``.
        """
        return self.tracker.summary(top=top, by=by)

    def write_records(self, run_dir) -> None:
        """Write :attr:`history` (and the histograms, if kept) into a run directory (see
        :meth:`ShiftTracker.write_records`); call it on rank 0."""
        self.tracker.write_records(run_dir)

    # -------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """The monitor's state (the tracker's): tensors, lists, dicts, strings and numbers only,
        so a checkpoint loads with ``torch.load(..., weights_only=True)``."""
        return self.tracker.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state_dict)
