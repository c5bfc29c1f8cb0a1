import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shiftkit.models import ShiftClassifier
from shiftkit.models.classifier import lr_factor, scaled_lr
from tests.monitor.helpers import trainer


def _blobs(n=64, dim=8, classes=4, seed=0):
    """An easy task: ``classes`` well separated Gaussian blobs."""
    g = torch.Generator().manual_seed(seed)
    centers = 4 * torch.randn(classes, dim, generator=g)
    y = torch.arange(n) % classes
    return TensorDataset(centers[y] + torch.randn(n, dim, generator=g), y)


def _trainer(max_steps, callbacks=(), **kw):
    return trainer(max_steps=max_steps, callbacks=list(callbacks), **kw)


def _mlp(**kw):
    defaults = dict(arch="mlp", input_shape=(8,), num_classes=4, depth=2, width=16)
    return ShiftClassifier(**{**defaults, **kw})


def _loss(model, data):
    model.eval()
    with torch.no_grad():
        loss = F.cross_entropy(model(data.tensors[0]), data.tensors[1]).item()
    model.train()
    return loss


class _Record(L.Callback):
    """Per optimizer step: the learning rate in use and a copy of the parameters before it."""

    def __init__(self):
        self.lr, self.params = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        step = trainer.global_step
        self.lr.setdefault(step, trainer.optimizers[0].param_groups[0]["lr"])
        self.params[step] = [p.detach().clone() for p in pl_module.parameters()]


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_training_lowers_the_loss(norm):
    torch.manual_seed(0)
    data = _blobs()
    model = _mlp(norm=norm, lr=0.05)
    before = _loss(model, data)
    _trainer(30).fit(model, DataLoader(data, batch_size=16, shuffle=True))
    assert _loss(model, data) < 0.25 * before
    metrics = _trainer(1).validate(model, DataLoader(data, batch_size=16), verbose=False)[0]
    assert set(metrics) == {"val/loss", "val/acc"} and metrics["val/acc"] > 0.9


def test_divergence_is_recorded_not_raised_and_ends_the_run():
    torch.manual_seed(0)
    data = _blobs()
    # Momentum and weight decay would move the weights even with zero gradients: they must not.
    model = _mlp(depth=3, lr=1e6, momentum=0.9, weight_decay=0.1)
    record = _Record()
    trainer = _trainer(50, callbacks=[record])
    trainer.fit(model, DataLoader(data, batch_size=16))  # must not raise
    assert model.diverged is True
    assert isinstance(model.diverged_step, int) and 0 < model.diverged_step < 10
    assert trainer.global_step == model.diverged_step + 1 < 50  # stopped right there
    # The non-finite step was skipped: weights are those from before it, and finite.
    for p, before in zip(model.parameters(), record.params[model.diverged_step]):
        assert torch.equal(p.detach(), before)
        assert torch.isfinite(p).all()
    assert trainer.callback_metrics["diverged"].item() == 1.0
    assert trainer.callback_metrics["diverged_step"].item() == model.diverged_step
    summary = model.result_summary()
    assert summary["diverged"] is True and summary["diverged_step"] == model.diverged_step


def test_a_healthy_run_is_not_marked_diverged():
    torch.manual_seed(0)
    model = _mlp(lr=0.05)
    trainer = _trainer(8)
    trainer.fit(model, DataLoader(_blobs(), batch_size=16))
    assert model.diverged is False and model.diverged_step is None
    assert trainer.callback_metrics["diverged"].item() == 0.0
    assert "diverged_step" not in trainer.callback_metrics
    assert {"train/loss_step", "train/loss_epoch", "train/acc_step", "train/acc_epoch"} <= set(
        trainer.callback_metrics
    )


def test_lr_multiplier_and_warmup_give_the_expected_lr_each_step():
    record = _Record()
    model = _mlp(
        lr=0.1, lr_multiplier=5, warmup_steps=4, lr_schedule="step", lr_step_size=6, lr_gamma=0.1
    )
    _trainer(8, callbacks=[record]).fit(model, DataLoader(_blobs(), batch_size=16))
    expected = [0.5 * (s + 1) / 4 for s in range(4)] + [0.5, 0.5, 0.05, 0.05]
    assert [record.lr[s] for s in range(8)] == pytest.approx(expected, rel=1e-12)
    assert model.result_summary()["base_lr"] == pytest.approx(0.5)


class _DataModule(L.LightningDataModule):
    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size

    def train_dataloader(self):
        return DataLoader(_blobs(), batch_size=self.batch_size)


def test_linear_batch_scaling_uses_per_device_batch_world_size_and_accumulation():
    record = _Record()
    # Global batch = 8 per device x 1 device x 2 accumulated = 16 = base 32 / 2: half the lr.
    model = _mlp(lr=0.2, scale_lr_with_batch=True, base_batch_size=32)
    trainer = _trainer(3, callbacks=[record], accumulate_grad_batches=2)
    trainer.fit(model, datamodule=_DataModule(batch_size=8))
    assert model.global_batch_size() == 16
    assert [record.lr[s] for s in range(3)] == pytest.approx([0.1] * 3, rel=1e-12)
    # An explicit per-device batch_size takes precedence over the datamodule's.
    explicit = _mlp(lr=0.2, scale_lr_with_batch=True, base_batch_size=32, batch_size=64)
    _trainer(1).fit(explicit, datamodule=_DataModule(batch_size=8))
    assert explicit.result_summary()["base_lr"] == pytest.approx(0.2 * 64 / 32)


def test_batch_scaling_without_a_known_batch_size_is_a_clear_error():
    model = _mlp(scale_lr_with_batch=True)
    with pytest.raises(ValueError, match="per-device batch size"):
        _trainer(1).fit(model, DataLoader(_blobs(), batch_size=8))


def test_schedule_and_scaling_formulas():
    assert scaled_lr(0.1, per_device_batch=32, world_size=8, accumulate=1) == pytest.approx(0.1)
    assert scaled_lr(0.1, per_device_batch=32, world_size=8, accumulate=4) == pytest.approx(0.4)
    assert lr_factor(9, "exponential", step_size=3, gamma=0.5) == pytest.approx(0.125)
    assert lr_factor(10, "exponential", step_size=4, gamma=0.5) == pytest.approx(0.5**2.5)
    cos = [lr_factor(s, "cosine", warmup_steps=2, total_steps=10) for s in (0, 1, 2, 6, 10, 12)]
    assert cos == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0, 0.0], abs=1e-12)
    with pytest.raises(ValueError):
        lr_factor(0, "cosine")


def test_result_summary_steps_to_target_and_best_val_acc():
    torch.manual_seed(0)
    data = _blobs(n=40)
    val_accs = []

    class ValAcc(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            val_accs.append((trainer.global_step, trainer.callback_metrics["val/acc"].item()))

    def fit(target):
        model = _mlp(lr=0.05, target_accuracy=target)
        trainer = _trainer(10, callbacks=[ValAcc()])
        # 40 samples / batch 8 = 5 steps per epoch: validation after steps 5 and 10.
        trainer.fit(model, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
        return model, trainer

    model, trainer = fit(target=0.0)
    assert [s for s, _ in val_accs] == [5, 10]
    assert model.steps_to_target == 5
    assert model.best_val_acc == pytest.approx(max(a for _, a in val_accs))
    trainer.test(model, DataLoader(data, batch_size=8), verbose=False)
    summary = model.result_summary()
    assert set(summary) == {
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "test/loss",
        "test/acc",
        "best_val_acc",
        "target_accuracy",
        "steps_to_target",
        "diverged",
        "diverged_step",
        "global_step",
        "base_lr",
    }
    assert summary["global_step"] == 10 and summary["steps_to_target"] == 5
    assert 0 <= summary["train/loss"] < math.log(4) and 0 <= summary["train/acc"] <= 1  # kept
    assert summary["val/acc"] == pytest.approx(val_accs[-1][1])
    assert summary["test/acc"] == pytest.approx(summary["val/acc"])  # same data, same weights
    assert summary["test/loss"] == pytest.approx(_loss(model, data), rel=1e-5)
    assert all(v is None or isinstance(v, (bool, int, float)) for v in summary.values())

    never, _ = fit(target=1.01)
    assert never.steps_to_target is None and never.result_summary()["test/acc"] is None


def test_syncbatch_on_one_process_keeps_batch_norm_and_trains():
    torch.manual_seed(0)
    model = _mlp(norm="syncbatch", lr=0.05)
    _trainer(3).fit(model, DataLoader(_blobs(), batch_size=16))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert [type(m) for m in bns] == [nn.BatchNorm1d] * 2
    assert all(m.num_batches_tracked.item() == 3 for m in bns)


def test_hyperparameters_are_saved_and_cli_parsable():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(ShiftClassifier, "model")
    cfg = parser.parse_args(
        [
            "--model.arch=resnet",
            "--model.input_shape=[3, 32, 32]",
            "--model.norm=noisy_batch",
            "--model.width=0.25",
            "--model.lr_multiplier=30",
            "--model.ghost_batch_size=8",
        ]
    )
    model = ShiftClassifier(**cfg.model)
    assert model.hparams.input_shape == (3, 32, 32)
    assert model.hparams.lr_multiplier == 30 and model.hparams.norm == "noisy_batch"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_outcome_survives_a_checkpoint_round_trip():
    model = _mlp()
    model.diverged, model.diverged_step, model.steps_to_target = True, 7, 3
    checkpoint = {}
    model.on_save_checkpoint(checkpoint)
    fresh = _mlp()
    fresh.on_load_checkpoint(checkpoint)
    assert (fresh.diverged, fresh.diverged_step, fresh.steps_to_target) == (True, 7, 3)


def test_unknown_optimizer_or_schedule_raise():
    with pytest.raises(ValueError):
        _mlp(optimizer="lbfgs")
    with pytest.raises(ValueError):
        _mlp(lr_schedule="linear")
