"""When the monitor measures: every N optimizer steps, training forwards only."""

import pickle

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from torch import nn

from shiftkit import ShiftMonitor
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer


def measured_steps(monitor, site="fc1"):
    return [r["step"] for r in monitor.history if r["site"] == site]


def test_every_n_steps_and_default_from_trainer():
    x = standardized(32, 6)
    monitor = ShiftMonitor(every_n_steps=3)
    trainer(max_steps=10, callbacks=[monitor]).fit(OffsetNet(lr=0.1), loader(x, 8))
    assert measured_steps(monitor) == [0, 3, 6, 9]
    default = ShiftMonitor()
    trainer(max_steps=10, log_every_n_steps=4, callbacks=[default]).fit(
        OffsetNet(lr=0.1), loader(x, 8)
    )
    assert measured_steps(default) == [0, 4, 8]


def test_gradient_accumulation_folds_micro_batches_into_one_snapshot():
    x = standardized(16, 6)
    monitor = ShiftMonitor(every_n_steps=1, layers=["fc1"])
    trainer(max_steps=3, accumulate_grad_batches=2, callbacks=[monitor]).fit(
        OffsetNet(), loader(x, 4)
    )
    assert measured_steps(monitor) == [0, 1, 2]  # counted in optimizer steps, not batches
    # Step 0 saw micro-batches 0 and 1 (rows 0..7): the snapshot is their union.
    first = x[:8].double().numpy()
    row = monitor.history[0]
    assert row["mean"] == pytest.approx(first.mean(), abs=1e-6)
    assert row["std"] == pytest.approx(first.std(), rel=1e-5)


def test_validation_forwards_are_not_measured():
    x = standardized(32, 6)
    loud = 100 * standardized(32, 6, seed=1)
    monitor = ShiftMonitor(every_n_steps=1, layers=["fc1"])
    trainer(max_steps=6, val_check_interval=2, callbacks=[monitor]).fit(
        OffsetNet(), train_dataloaders=loader(x, 8), val_dataloaders=loader(loud, 8)
    )
    stds = [r["std"] for r in monitor.history]
    assert len(stds) == 6 and max(stds) < 2.0  # the x100 validation inputs never entered


class HookCounter(pl.Callback):
    """Records, between each training forward and its backward, how many hooks the model carries."""

    def __init__(self):
        self.carried = []

    def on_train_start(self, trainer, pl_module):
        self.on_start = count_hooks(pl_module)

    def on_before_backward(self, trainer, pl_module, loss):
        self.carried.append(count_hooks(pl_module))


def count_hooks(module):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in module.modules())


class UnloggedNet(OffsetNet):
    """OffsetNet without ``self.log``, which Dynamo cannot trace in this torch."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)


@pytest.mark.parametrize("compiled", [False, True])
def test_hooks_attached_for_measured_steps_only_unless_compiled(compiled):
    torch._dynamo.reset()
    model, counter = UnloggedNet(), HookCounter()
    fitted = torch.compile(model, backend="eager") if compiled else model
    monitor = ShiftMonitor(every_n_steps=3, layers=["fc1", "act"])
    trainer(max_steps=5, callbacks=[monitor, counter]).fit(fitted, loader(standardized(40, 6), 8))
    # A compiled LightningModule keeps them: Dynamo would not see hooks added after compiling.
    assert counter.on_start == (2 if compiled else 0)  # before any forward: seen in the model
    assert counter.carried == ([2] * 5 if compiled else [2, 0, 0, 2, 0])
    assert measured_steps(monitor) == [0, 3]
    assert count_hooks(model) == 0


def test_hooks_removed_at_teardown_and_model_pickles(tmp_path):
    model = OffsetNet()
    monitor = ShiftMonitor(every_n_steps=1)
    trainer(max_steps=2, callbacks=[monitor]).fit(model, loader(standardized(16, 6), 8))
    for module in model.modules():
        assert not module._forward_pre_hooks and not module._forward_hooks
    model.trainer = None  # detach Lightning's reference before pickling the bare module
    restored = pickle.loads(pickle.dumps(model))
    torch.save(restored.state_dict(), tmp_path / "m.pt")
    assert set(torch.load(tmp_path / "m.pt", weights_only=True)) == set(model.state_dict())


def test_track_outputs_and_both_name_sites():
    x = standardized(16, 6)
    both = ShiftMonitor(every_n_steps=1, layers=["fc1"], track="both")
    trainer(max_steps=2, callbacks=[both]).fit(OffsetNet(), loader(x, 8))
    assert both.site_names == ["fc1", "fc1@out"]
    out = {r["site"]: r for r in both.history if r["step"] == 0}
    assert out["fc1"]["mean"] == pytest.approx(float(x[:8].mean()), abs=1e-6)
    assert out["fc1@out"]["std"] > 0 and not np.isnan(out["fc1@out"]["p50"])
    only = ShiftMonitor(every_n_steps=1, layers=["fc1"], track="outputs")
    trainer(max_steps=1, callbacks=[only]).fit(OffsetNet(), loader(x, 8))
    assert only.site_names == ["fc1@out"]
