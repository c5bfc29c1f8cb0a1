"""Hugging Face Transformers: :class:`ShiftCallback`, the tracker as a ``TrainerCallback``.

::

    from transformers import Trainer
    from shiftkit.integrations.transformers import ShiftCallback

    callback = ShiftCallback(every_n_steps=50)         # any ShiftTracker option
    Trainer(model=model, args=args, train_dataset=train, callbacks=[callback]).train()
    print(callback.summary(top=10)); callback.history

It counts the Trainer's optimizer steps (``state.global_step``): a measured step folds every
micro-batch of its gradient accumulation, as the Lightning monitor does. The metrics go through
the Trainer's own reporting, i.e. to the ``report_to`` integrations (W&B, TensorBoard, MLflow,
...), not to the console: they call the keys ``train/shift/{site}/{stat}`` (the Trainer's
``rewrite_logs`` prefixes ``train/``) against ``train/global_step``, which the Trainer has
already advanced past the measured step (a measurement of step ``s`` is reported at ``s + 1``;
:attr:`history` keeps ``s``). Under ``accelerate`` DDP every rank measures and the states are
summed with one ``all_reduce`` (the tracker's ``torch.distributed`` reduction); the integrations
report on the main process only.

Needs ``pip install 'shiftkit[hf]'``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from shiftkit.extras import require

require("hf", "shiftkit.integrations.transformers", ("transformers",))

from transformers import Trainer, TrainerCallback
from transformers.integrations import INTEGRATION_TO_CALLBACK

from shiftkit.tracker import ShiftTracker
from shiftkit.tracker.tracker import DEFAULT_EVERY
from shiftkit.tracker.warnings import rank_zero_warn

__all__ = ["ShiftCallback"]

#: The callbacks behind ``TrainingArguments.report_to``: where the metrics go.
REPORTING_CALLBACKS = tuple(INTEGRATION_TO_CALLBACK.values())


class ShiftCallback(TrainerCallback):
    """Measure internal covariate shift in a Hugging Face ``Trainer`` run.

    Args:
        every_n_steps: measure every this many optimizer steps; default the Trainer's
            ``logging_steps`` (a fraction of the run if it is below 1, as the Trainer reads it).
        trainer: the Trainer whose integrations get the metrics; default: the Trainer that
            calls this callback (found when training begins).
        **options: every other :class:`~shiftkit.ShiftTracker` option (``layers``,
            ``reference``, ``bins``, ...).

    Attributes:
        tracker: the :class:`~shiftkit.ShiftTracker` doing the work.
    """

    def __init__(
        self, every_n_steps: int | None = None, trainer: Trainer | None = None, **options: Any
    ):
        every = DEFAULT_EVERY if every_n_steps is None else every_n_steps
        self.tracker = ShiftTracker(None, every_n_steps=every, owner="ShiftCallback", **options)
        self.every_n_steps = every_n_steps
        self.trainer = trainer

    # ---------------------------------------------------------------- life cycle
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.tracker.attach(model)
        if self.every_n_steps is None:
            steps = args.logging_steps
            self.tracker._every = max(
                1, math.ceil(state.max_steps * steps) if steps < 1 else int(steps)
            )
        self.tracker.start()
        trainer = self.trainer or _calling_trainer()
        if trainer is None:
            rank_zero_warn(
                "ShiftCallback: could not find the Trainer; the metrics are kept in .history only "
                "(pass ShiftCallback(trainer=trainer) to report them)"
            )
            self.tracker.loggers = []
        else:
            self.tracker.loggers = [TrainerReporting(trainer)]

    def on_step_begin(self, args, state, control, **kwargs):
        # Called before the first micro-batch of an optimizer step; global_step is that step.
        self.tracker.epoch = int(state.epoch or 0)
        self.tracker.begin_batch(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        # After optimizer.step(): every micro-batch of the step has been folded.
        self.tracker.end_batch(stepped=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.tracker.close()

    # ------------------------------------------------------------------- results
    @property
    def history(self) -> list[dict[str, Any]]:
        """One dict row per (measurement, site), as :attr:`ShiftTracker.history`."""
        return self.tracker.history

    def summary(self, top: int | None = 10, by: str = "kl_gauss"):
        """The most-shifted sites (see :meth:`ShiftTracker.summary`)."""
        return self.tracker.summary(top=top, by=by)

    def history_frame(self):
        """:attr:`history` as a pandas DataFrame."""
        return self.tracker.history_frame()

    def write_records(self, run_dir) -> None:
        """Write the history (and kept histograms) into a run directory; on the main process."""
        self.tracker.write_records(run_dir)


class TrainerReporting:
    """A Trainer's ``report_to`` integrations as one logger: each gets ``on_log`` as from
    ``Trainer.log``, but the console printers and ``state.log_history`` do not (a measurement
    is hundreds of numbers)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        t = self.trainer
        for callback in t.callback_handler.callbacks:
            if isinstance(callback, REPORTING_CALLBACKS):
                callback.on_log(t.args, t.state, t.control, logs=dict(metrics), model=t.model)


def _calling_trainer() -> Trainer | None:
    """The Trainer up the call stack (``on_train_begin`` is called from its training loop)."""
    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Trainer):
            return candidate
        frame = frame.f_back
    return None
