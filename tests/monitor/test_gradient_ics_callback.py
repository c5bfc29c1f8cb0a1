"""GradientICSMonitor: logs what the pure function gives, leaves training alone."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.loggers import CSVLogger
from torch.nn import functional as F

from shiftkit import ShiftMonitor
from shiftkit.monitor import GradientICSMonitor, LandscapeMonitor
from shiftkit.tracker.probe import detached_copy
from shiftkit.records import read_csv_metrics
from shiftkit.records.names import GRAD_ICS_STATS, grad_ics_key
from shiftkit.stats import gradient_ics, parameter_snapshot
from tests.monitor.ddp_run import SameOrder
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer

REPO = Path(__file__).resolve().parents[2]



def fit(
    callbacks, steps=5, log_dir=None, batch=8, accumulate=1, model_cls=OffsetNet, **model_kwargs
):
    """Fit an OffsetNet (lr 0.3 unless given) on 48 standardized rows; returns the model."""
    pl.seed_everything(0, verbose=False)
    model = model_cls(**{"lr": 0.3, **model_kwargs})
    logger = CSVLogger(log_dir, name="csv", version=0) if log_dir else False
    t = trainer(
        max_steps=steps, callbacks=callbacks, logger=logger, accumulate_grad_batches=accumulate
    )
    t.fit(model, loader(standardized(48, 6), batch))
    return model


class Recorder(pl.Callback):
    """theta_t before each optimizer step; the state and batch after it."""

    def __init__(self):
        self.steps, self._before = {}, None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self._before, self._step = parameter_snapshot(pl_module), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._before is not None:  # an optimizer step was taken in this batch
            after = copy.deepcopy(pl_module.state_dict())
            self.steps[self._step] = (self._before, after, detached_copy(batch))
            self._before = None


def rows_by(history, *keys):
    return {tuple(r[k] for k in keys): r for r in history}


def test_logs_the_values_of_the_pure_function(tmp_path):
    monitor, recorder = GradientICSMonitor(every_n_steps=2, seed=3), Recorder()
    fit([monitor, recorder], log_dir=tmp_path, dropout=0.3, batchnorm=True)
    assert monitor.layer_names == ["fc1", "fc2"]
    assert [(r["step"], r["layer"]) for r in monitor.history] == [
        (s, layer) for s in (0, 2, 4) for layer in ("fc1", "fc2")
    ]
    rows = rows_by(monitor.history, "step", "layer")
    for step in (0, 2, 4):
        before, after, (x, y) = recorder.steps[step]
        model = OffsetNet(batchnorm=True, dropout=0.3)
        model.load_state_dict(after)
        expected = gradient_ics(
            model, lambda m: F.cross_entropy(m(x), y), before, layers=["fc1", "fc2"], seed=3
        )
        for i, layer in enumerate(("fc1", "fc2")):
            for stat in GRAD_ICS_STATS:
                assert rows[step, layer][stat] == getattr(expected, stat)[i].item(), (
                    step,
                    layer,
                    stat,
                )
    assert rows[0, "fc1"]["l2"] == 0.0 and rows[2, "fc2"]["l2"] > 0  # fc1 has nothing below it
    logged = read_csv_metrics(tmp_path / "csv" / "version_0").set_index("step")
    for (step, layer), row in rows.items():
        for stat in GRAD_ICS_STATS:
            assert logged.loc[step, grad_ics_key(layer, stat)] == row[stat]
    column = logged[grad_ics_key("fc2", "l2")]
    assert list(column[column.notna()].index) == [0, 2, 4]


def test_training_is_unchanged():
    """Parameters, BN buffers and the RNG stream after training: bit-identical with and without."""
    kwargs = dict(dropout=0.3, batchnorm=True, steps=6)
    plain = fit([], **kwargs)
    rng = torch.get_rng_state()
    monitors = [GradientICSMonitor(every_n_steps=1), LandscapeMonitor(every_n_steps=1)]
    measured = fit(monitors, **kwargs)
    assert torch.equal(torch.get_rng_state(), rng)
    assert len(monitors[0].history) == 12 and len(monitors[1].history) == 6
    for (name, a), b in zip(plain.state_dict().items(), measured.state_dict().values()):
        assert torch.equal(a, b), name


def test_shift_monitor_does_not_see_the_extra_passes():
    alone = ShiftMonitor(every_n_steps=1)
    fit([alone], dropout=0.3)
    together = ShiftMonitor(every_n_steps=1)
    fit(
        [GradientICSMonitor(every_n_steps=1), LandscapeMonitor(every_n_steps=1), together],
        dropout=0.3,
    )
    assert len(together.history) == len(alone.history) == 5 * 3
    for a, b in zip(alone.history, together.history):
        assert a == pytest.approx(b, nan_ok=True)


def test_gradient_accumulation_measures_once_per_optimizer_step():
    monitor, recorder = GradientICSMonitor(every_n_steps=1, layers=["fc2"]), Recorder()
    fit([monitor, recorder], steps=3, batch=4, accumulate=2)
    assert [r["step"] for r in monitor.history] == [0, 1, 2]
    before, after, (x, y) = recorder.steps[1]  # the step's last micro-batch
    model = OffsetNet()
    model.load_state_dict(after)
    expected = gradient_ics(model, lambda m: F.cross_entropy(m(x), y), before, layers=["fc2"])
    assert monitor.history[1]["l2"] == expected.l2.item() > 0


def test_probe_batches_and_custom_functions():
    x = standardized(48, 6)
    first = {"inputs": x[:8], "labels": (x[:8, 0] > 0).long()}
    custom = GradientICSMonitor(
        every_n_steps=1, probe_batch=first, probe_fn=lambda m, b: m(b["inputs"]), layers="fc2"
    )
    kept = GradientICSMonitor(every_n_steps=1, probe_batch="first", layers=["fc2"])
    current = GradientICSMonitor(every_n_steps=1, layers=[torch.nn.Linear], exclude="fc1")
    fit([custom, kept, current])
    assert custom.history == kept.history  # default loss_fn reads the "labels" key
    assert [r["l2"] for r in current.history][0] == kept.history[0]["l2"]  # step 0: same batch
    assert [r["l2"] for r in current.history][1:] != [r["l2"] for r in kept.history][1:]


def test_non_finite_gradients_warn_once_and_are_not_logged(tmp_path):
    def nan_loss(outputs, batch):
        return F.cross_entropy(outputs, batch[1]) * float("nan")

    monitor = GradientICSMonitor(every_n_steps=1, layers="fc2", loss_fn=nan_loss)
    with pytest.warns(UserWarning, match="layer 'fc2': non-finite gradients at step 0") as caught:
        fit([monitor], steps=3, log_dir=tmp_path)
    assert sum("non-finite" in str(w.message) for w in caught) == 1
    assert len(monitor.history) == 3 and all(r["l2"] != r["l2"] for r in monitor.history)
    # Nothing else logs within 3 steps (log_every_n_steps=50): NaN-only measurements log nothing.
    assert not (tmp_path / "csv" / "version_0" / "metrics.csv").exists()


def test_state_dict_round_trip():
    monitor = GradientICSMonitor(every_n_steps=2, probe_batch="first")
    fit([monitor], steps=3)
    state = monitor.state_dict()
    assert state["last_measured_step"] == 2 and state["probe"][0].shape == (8, 6)
    resumed = GradientICSMonitor(every_n_steps=2, probe_batch="first")
    resumed.load_state_dict(copy.deepcopy(state))
    assert resumed.history == monitor.history and resumed.measurements == 2
    assert torch.equal(resumed._probe[0], monitor._probe[0])
    assert GradientICSMonitor(layers="fc1").state_key != GradientICSMonitor(layers="fc2").state_key


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(every_n_steps=0), "every_n_steps must be an integer >= 1, got 0"),
        (dict(every_n_steps=2.0), "every_n_steps must be an integer"),
        (dict(layers=[3]), "layers must be a glob string on module names or type names"),
        (dict(exclude=3), "exclude must be a glob string"),
        (dict(layers=[torch.nn.Linear, int]), "layers must be a glob string"),
        (dict(probe_fn=1), "probe_fn must be callable"),
        (dict(loss_fn="ce"), "loss_fn must be callable"),
        (dict(seed=0.5), "seed must be an integer"),
        (dict(probe_batch="last"), "probe_batch must be None, 'first' or a batch"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"GradientICSMonitor: {match}"):
        GradientICSMonitor(**kwargs)


class Manual(OffsetNet):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False


def test_misconfigurations_are_clear_errors():
    with pytest.raises(
        ValueError, match="GradientICSMonitor: no module matched layers=\\['conv\\*'\\]"
    ):
        fit([GradientICSMonitor(layers=["conv*"])], steps=1)
    with pytest.raises(
        ValueError, match="matched \\['act', 'drop'\\], none of which owns a trainable"
    ):
        fit([GradientICSMonitor(layers=["act", "drop"])], steps=1)
    with pytest.warns(UserWarning, match="GradientICSMonitor: layers patterns \\['typo'\\] match no module"):
        fit([GradientICSMonitor(layers=["fc*", "typo"])], steps=1)
    # (Lightning itself refuses several optimizers under automatic optimization.)
    with pytest.raises(MisconfigurationException, match="automatic optimization only"):
        trainer(max_steps=1, callbacks=[GradientICSMonitor()]).fit(
            Manual(), loader(standardized(8, 6), 8)
        )


# ------------------------------------------------------------------------- two DDP ranks
#: Rank sums of half batches differ from the one-process batch by float32 rounding only.
DDP_RTOL, DDP_ATOL = 1e-5, 1e-7


def test_two_ddp_ranks_equal_one_process_on_the_global_batch(tmp_path):
    """G, G' and the landscape's gradients and losses are averaged across ranks."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "tests.monitor.test_gradient_ics_callback", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank logs the same numbers
    # One collective per gradient-ICS measurement (4), 1 + 8 per landscape measurement (2).
    assert ranks[0]["collectives"] == 4 + 2 * 9
    single = {
        "grad_ics": GradientICSMonitor(every_n_steps=1),
        "landscape": LandscapeMonitor(every_n_steps=2),
    }
    pl.seed_everything(0, verbose=False)
    trainer(max_steps=4, callbacks=list(single.values())).fit(
        OffsetNet(lr=0.3), datamodule=SameOrder(16)
    )
    for name, rows in (("grad_ics", 4 * 2), ("landscape", 2)):
        monitor = single[name]
        assert len(monitor.history) == len(ranks[0][name]) == rows
        for one, two in zip(monitor.history, ranks[0][name]):
            assert one.keys() == two.keys() and one.get("layer") == two.get("layer")
            for key, value in one.items():
                if key != "layer":
                    assert two[key] == pytest.approx(value, rel=DDP_RTOL, abs=DDP_ATOL), (name, key)
    assert min(r["l2"] for r in single["grad_ics"].history if r["layer"] == "fc2") > 1e-4


class DumpHistories(pl.Callback):
    def __init__(self, monitors, counter, out):
        self.monitors, self.counter, self.out = monitors, counter, Path(out)

    def on_train_end(self, trainer, pl_module):
        record = {name: m.history for name, m in self.monitors.items()}
        record["collectives"] = self.counter[0]
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def _ddp_main(out: str) -> None:
    """Two ddp_fork ranks of batch 8; each dumps the monitors' histories."""
    import shiftkit.monitor.periodic as module

    torch.set_num_threads(1)
    counter, inner = [0], module.torch_distributed_all_reduce

    def counting(tensor, op):
        counter[0] += 1
        inner(tensor, op)

    module.torch_distributed_all_reduce = counting
    pl.seed_everything(0, verbose=False)
    monitors = {
        "grad_ics": GradientICSMonitor(every_n_steps=1),
        "landscape": LandscapeMonitor(every_n_steps=2),
    }
    trainer(
        devices=2,
        strategy="ddp_fork",
        max_steps=4,
        callbacks=[*monitors.values(), DumpHistories(monitors, counter, out)],
        use_distributed_sampler=False,
    ).fit(OffsetNet(lr=0.3), datamodule=SameOrder(8))


if __name__ == "__main__":
    _ddp_main(sys.argv[1])
