"""reference="probe": a fixed batch re-run each measurement isolates parameter-driven shift."""

import lightning.pytorch as pl
import pytest
import torch

from shiftkit import ShiftMonitor
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer


def fit(monitor, lr, seed=0, steps=6, **model_kwargs):
    pl.seed_everything(seed, verbose=False)
    model = OffsetNet(lr=lr, **model_kwargs)
    callbacks = [monitor] if monitor is not None else []
    trainer(max_steps=steps, callbacks=callbacks).fit(model, loader(standardized(48, 6), 8))
    return model


def test_probe_without_parameter_change_shows_no_shift_despite_new_batches_and_dropout():
    probe = ShiftMonitor(every_n_steps=1, reference="probe")
    fit(probe, lr=0.0, dropout=0.5)
    kls = [r["kl_gauss"] for r in probe.history if r["step"] > 0]
    assert len(kls) == 5 * len(probe.site_names) and max(kls) < 1e-12
    assert "kl_gauss_floor" not in probe.history[0]  # no sampling noise in probe mode
    batch = ShiftMonitor(every_n_steps=1, reference="previous")
    fit(batch, lr=0.0, dropout=0.5)
    assert max(r["kl_gauss"] for r in batch.history if r["site"] == "fc1" and r["step"] > 0) > 1e-3


def test_probe_sees_parameter_change():
    probe = ShiftMonitor(every_n_steps=1, reference="probe", layers=["fc2"])
    fit(probe, lr=0.5)
    assert min(r["kl_gauss"] for r in probe.history if r["step"] > 0) > 1e-8


def test_probe_leaves_no_trace_on_training():
    kwargs = dict(lr=0.2, dropout=0.3, batchnorm=True)
    plain = fit(None, **kwargs)
    probed = fit(ShiftMonitor(every_n_steps=2, reference="probe"), **kwargs)
    for (name, a), b in zip(plain.state_dict().items(), probed.state_dict().values()):
        assert torch.equal(a, b), name  # parameters and BN running stats, bit for bit


def test_probe_batch_and_probe_fn_are_used():
    seen = []

    def probe_fn(module, batch):
        seen.append(batch["inputs"].shape[0])
        return module(batch["inputs"])

    custom = {"inputs": 3.0 + standardized(5, 6, seed=3)}
    monitor = ShiftMonitor(every_n_steps=2, reference="probe", probe_batch=custom, probe_fn=probe_fn, layers=["fc1"])
    fit(monitor, lr=0.1, steps=4)
    assert seen == [5, 5]
    assert monitor.history[0]["mean"] == pytest.approx(3.0, abs=1e-5)


def test_probe_on_an_unknown_batch_type_is_a_clear_error():
    monitor = ShiftMonitor(every_n_steps=1, reference="probe", probe_batch=object())
    with pytest.raises(TypeError, match="cannot tell the inputs of a batch of type object; pass probe_fn"):
        fit(monitor, lr=0.1, steps=1)
