"""LandscapeMonitor: logs what the pure function gives, at the optimizer's rate; changes nothing."""

import copy

import lightning.pytorch as pl
import pytest
import torch
from torch.nn import functional as F

from shiftkit.monitor import LandscapeMonitor
from shiftkit.tracker.probe import detached_copy
from shiftkit.records import read_csv_metrics
from shiftkit.records.names import LANDSCAPE_STATS, landscape_key
from shiftkit.stats import landscape_along_gradient
from tests.monitor.helpers import OffsetNet
from tests.monitor.test_gradient_ics_callback import fit


class BeforeStep(pl.Callback):
    """The module's state and the batch just before each optimizer step."""

    def __init__(self):
        self.steps, self._batch = {}, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._batch = detached_copy(batch)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        state = copy.deepcopy(pl_module.state_dict())
        self.steps[trainer.global_step] = (state, self._batch, optimizer.param_groups[0]["lr"])


class Decaying(OffsetNet):
    """OffsetNet whose learning rate halves every step."""

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def test_logs_the_values_of_the_pure_function(tmp_path):
    recorder, monitor = BeforeStep(), LandscapeMonitor(every_n_steps=2, seed=5)
    fit([recorder, monitor], log_dir=tmp_path, dropout=0.3, batchnorm=True)
    assert [r["step"] for r in monitor.history] == [0, 2, 4]
    logged = read_csv_metrics(tmp_path / "csv" / "version_0").set_index("step")
    for row in monitor.history:
        state, (x, y), lr = recorder.steps[row["step"]]
        model = OffsetNet(batchnorm=True, dropout=0.3)
        model.load_state_dict(state)
        land = landscape_along_gradient(model, lambda m: F.cross_entropy(m(x), y), lr, seed=5)
        assert row["lr"] == lr == 0.3
        for stat in LANDSCAPE_STATS:
            assert row[stat] == getattr(land, stat).item(), (row["step"], stat)
            assert logged.loc[row["step"], landscape_key(stat)] == row[stat]
        assert row["loss"] == land.loss_at_x.item() and row["grad_norm"] == land.grad_norm.item()
        assert row["loss_range"] > 0 and row["beta_smooth"] > 0


def test_training_is_unchanged_with_a_schedule_and_momentum():
    kwargs = dict(dropout=0.3, batchnorm=True, steps=6, model_cls=Decaying)
    plain = fit([], **kwargs)
    monitor = LandscapeMonitor(every_n_steps=2)
    measured = fit([monitor], **kwargs)
    for (name, a), b in zip(plain.state_dict().items(), measured.state_dict().values()):
        assert torch.equal(a, b), name


def test_learning_rate_from_the_optimizer_or_given():
    read = LandscapeMonitor(every_n_steps=1)
    given = LandscapeMonitor(every_n_steps=1, lr=0.01, multipliers=(1.0, 2.0))
    fit([read, given], steps=4, model_cls=Decaying)
    assert [r["lr"] for r in read.history] == [0.3, 0.15, 0.075, 0.0375]
    assert [r["lr"] for r in given.history] == [0.01] * 4
    assert read.history[0]["loss"] == given.history[0]["loss"]  # same point, same batch
    assert read.history[0]["grad_pred_max"] != given.history[0]["grad_pred_max"]


def test_zero_learning_rate_is_skipped_with_a_warning():
    monitor = LandscapeMonitor(every_n_steps=1)
    with pytest.warns(UserWarning, match="LandscapeMonitor: the learning rate is 0.0 at step 0"):
        fit([monitor], steps=2, lr=0.0)
    assert monitor.history == [] and monitor.measurements == 0


def test_gradient_accumulation_measures_each_optimizer_step_once():
    monitor = LandscapeMonitor(every_n_steps=1)
    fit([monitor], steps=3, batch=4, accumulate=2)
    assert [r["step"] for r in monitor.history] == [0, 1, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(every_n_steps=-1), "every_n_steps must be an integer >= 1"),
        (dict(lr=0.0), "lr must be None or a positive number"),
        (dict(lr=True), "lr must be None or a positive number"),
        (dict(multipliers=()), "multipliers must be positive numbers"),
        (dict(multipliers=(1.0, float("inf"))), "multipliers must be positive numbers"),
        (dict(multipliers=("a",)), "multipliers must be numbers"),
        (dict(probe_fn="f"), "probe_fn must be callable"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"LandscapeMonitor: {match}"):
        LandscapeMonitor(**kwargs)
