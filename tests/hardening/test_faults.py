"""Faults: non-finite and overflowing activations, errors inside the monitor, a run killed and
resumed mid-epoch, uneven DDP batches, W&B offline or failing, and a layer with millions of units.

The monitor must never be why a run crashes, hangs or loses its records.
"""

import errno
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import nn

import shiftkit.tracker.tracker as shift_monitor_module
from shiftkit import ShiftMonitor
from shiftkit.records import read_csv_metrics, read_wandb_offline, wait_for_wandb_run
from shiftkit.stats import ShiftAccumulator, gaussian_kl
from shiftkit.stats.moments import FIELDS, RAW_FIELDS
from tests.hardening.helpers import Capture, assert_pooled_moments, fit, monitor_warnings, rows
from tests.hardening.zoo import Classifier, Containers, batches_loader, sequences
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer

REPO = Path(__file__).resolve().parents[2]


class Poison(nn.Module):
    """fc1 -> fc2, with a tap: an ``nn.Identity`` that sees fc1's output with ``value`` written
    into the first ``rows`` rows of unit 0 (``rows=None``: everywhere) at the given forwards.

    The tap's output is not used, so the model trains on clean numbers whatever the tap sees.
    """

    def __init__(self, value: float, at: set[int], rows: int | None = 2):
        super().__init__()
        self.fc1, self.tap, self.fc2 = nn.Linear(4, 6), nn.Identity(), nn.Linear(6, 2)
        self.value, self.at, self.rows, self.calls = value, at, rows, 0

    def forward(self, x):
        h = self.fc1(x)
        tapped = h.detach().clone()
        if self.calls in self.at:
            tapped[
                slice(None) if self.rows is None else slice(self.rows),
                slice(None) if self.rows is None else 0,
            ] = self.value
        self.tap(tapped)
        self.calls += 1
        return self.fc2(h)


NONFINITE = "ShiftMonitor: site 'net.tap': input had non-finite values (counted in 'nonfinite', left out of the statistics)"
OVERFLOW = "ShiftMonitor: site 'net.tap': input values too large for float32 sums of squares (|x| above ~1e19) at step {}"
# value, forwards it is injected at, rows (None: the whole tensor), expected warnings
FAULTS = {
    "nan-in-some-elements": (math.nan, {1, 3}, 2, [NONFINITE]),
    "inf-at-the-first-measurement": (math.inf, {0}, 2, [NONFINITE]),
    "minus-inf": (-math.inf, {2}, 3, [NONFINITE]),
    "a-step-of-nothing-but-nan": (math.nan, {2}, None, [NONFINITE]),
    "overflowing-values": (1e30, {2}, 2, [OVERFLOW.format(2)]),
    "float32-max-at-the-first-measurement": (
        3e38,
        {0},
        2,
        [OVERFLOW.format(0), "edges were chosen from values as large as"],
    ),
}
STEPS = 5


@pytest.mark.parametrize("case", list(FAULTS))
def test_nonfinite_and_huge_activations_are_counted_and_training_goes_on(case):
    value, at, n_rows, expected = FAULTS[case]
    monitor = ShiftMonitor(
        every_n_steps=1, layers=["net.tap"], keep_histograms=True, hist_max_elements=10**6
    )
    capture = Capture("net.tap")
    messages = monitor_warnings(
        fit(
            Classifier(Poison(value, at, n_rows)),
            sequences([(8, 4)] * STEPS),
            monitor,
            STEPS,
            [capture],
        )
    )
    assert len(messages) == len(expected)  # each once, although injected at several steps
    for message, start in zip(messages, expected):
        assert message.startswith(start) or start in message
    measured = rows(monitor, "net.tap")
    assert sorted(measured) == list(range(STEPS))  # training went on, every step measured
    for (step, row), (_, counts, _, _) in zip(sorted(measured.items()), monitor.histogram_history):
        x = torch.cat(capture.calls[step]).double()
        finite = torch.isfinite(x)
        assert row["nonfinite"] == (~finite).sum().item()
        assert all(math.isfinite(v) or math.isnan(v) for v in row.values() if isinstance(v, float))
        if step in at and not math.isfinite(value):
            assert sum(counts[0]) == finite.sum().item()  # histograms hold the finite values only
        if step not in at:
            assert_pooled_moments(
                row, capture.values(step)
            )  # the step after a fault is clean again
        clean = (not math.isfinite(value) and n_rows is not None) or not ({step, step - 1} & at)
        if step > 0 and clean:
            assert math.isfinite(row["kl_gauss"]) and math.isfinite(row["kl_hist"])
    if n_rows is None:  # no finite value at all: moments and divergences NaN, count exact
        (bad,) = at
        assert math.isnan(measured[bad]["mean"]) and math.isnan(measured[bad]["kl_gauss"])
        assert measured[bad]["nonfinite"] == 8 * 6
    if value == 1e30:
        assert math.isnan(measured[2]["std"]) and math.isnan(measured[2]["kl_gauss"])


def test_an_error_while_observing_skips_that_site_and_training_goes_on(monkeypatch):
    real = ShiftAccumulator.observe

    def observe(self, i, x):
        if self.sites[i].name == "net.blocks.0":
            raise RuntimeError("boom")
        real(self, i, x)

    monkeypatch.setattr(ShiftAccumulator, "observe", observe)
    monitor = ShiftMonitor(every_n_steps=1)
    messages = monitor_warnings(fit(Classifier(Containers()), sequences([(8, 4)] * 3), monitor))
    assert messages == [
        "ShiftMonitor: site 'net.blocks.0': measuring its input failed (RuntimeError: boom); "
        "no longer measured"
    ]
    assert rows(monitor, "net.blocks.0") == {}
    assert sorted(rows(monitor, "net.blocks.1")) == [0, 1, 2]


def test_an_error_in_a_measurement_switches_the_monitor_off_and_training_goes_on(monkeypatch):
    real, calls = shift_monitor_module.statistics_table, []

    def statistics_table(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("bad numbers")
        return real(*args, **kwargs)

    monkeypatch.setattr(shift_monitor_module, "statistics_table", statistics_table)
    monitor = ShiftMonitor(every_n_steps=1)
    model = Classifier(Containers())
    messages = monitor_warnings(fit(model, sequences([(8, 4)] * 4), monitor, max_steps=4))
    assert messages == [
        "ShiftMonitor: the measurement at step 1 failed (ValueError: bad numbers); the monitor is off for the rest "
        "of this run, training goes on"
    ]
    assert {r["step"] for r in monitor.history} == {0} and len(calls) == 2
    assert model.trainer.global_step == 4


# ----------------------------------------------------------------------------- resume mid-epoch
RESUME_STEPS, CKPT_EVERY, KILL_AT = 10, 3, 5


class Kill(pl.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == KILL_AT:
            raise RuntimeError("killed")


def resume_run(root: Path, every: int, kill=False, ckpt_path=None):
    pl.seed_everything(0, verbose=False)
    monitor = ShiftMonitor(every_n_steps=every, keep_histograms=True, bins=8)
    ckpt = ModelCheckpoint(
        dirpath=root, save_last=True, every_n_train_steps=CKPT_EVERY, save_top_k=-1
    )
    t = trainer(
        max_steps=RESUME_STEPS, max_epochs=-1, callbacks=[monitor, ckpt] + ([Kill()] if kill else []),
        enable_checkpointing=True, default_root_dir=root, logger=CSVLogger(root, name="csv"),
    )  # fmt: skip
    # Five identical batches per epoch: the data are the same at every step, so
    # Lightning restarting the interrupted epoch's dataloader changes nothing.
    x = standardized(8, 6).repeat(5, 1)
    t.fit(OffsetNet(lr=0.3), loader(x, 8), ckpt_path=ckpt_path, weights_only=True)
    return monitor, t


@pytest.mark.parametrize("every", [1, 2])
def test_a_run_killed_mid_epoch_resumes_its_series_without_gaps_or_repeats(tmp_path, every):
    straight, _ = resume_run(tmp_path / "straight", every)
    with pytest.raises(RuntimeError, match="killed"):
        resume_run(tmp_path / "killed", every, kill=True)
    last = tmp_path / "killed" / "last.ckpt"
    assert (
        torch.load(last, weights_only=True)["global_step"] == CKPT_EVERY
    )  # a mid-epoch checkpoint
    resumed, t = resume_run(tmp_path / "killed", every, ckpt_path=last)
    expected_steps = list(range(0, RESUME_STEPS, every))
    for monitor in (straight, resumed):
        assert [r["step"] for r in monitor.history if r["site"] == "fc1"] == expected_steps
        assert [entry[0] for entry in monitor.histogram_history] == expected_steps
    a = {(r["step"], r["site"]): r for r in straight.history}
    b = {(r["step"], r["site"]): r for r in resumed.history}
    assert a.keys() == b.keys()
    for key, row in a.items():
        for stat in ("kl_gauss", "kl_hist", "p50", "mean", "std", "mean_drift"):
            assert b[key][stat] == pytest.approx(row[stat], rel=1e-9, abs=1e-12, nan_ok=True), (
                key,
                stat,
            )
    assert resumed.histogram_edges() == straight.histogram_edges()  # same edges
    assert resumed.histogram_history == straight.histogram_history
    # The resumed run's own log starts where the checkpoint left off: no step logged twice, none skipped.
    logged = read_csv_metrics(t.logger.log_dir)
    first_due = -(-CKPT_EVERY // every) * every
    assert logged.dropna(subset=["shift/fc1/mean"])["step"].tolist() == list(
        range(first_due, RESUME_STEPS, every)
    )


# ----------------------------------------------------------------------------- DDP
def test_ddp_with_an_empty_and_partial_batches_does_not_deadlock(tmp_path):
    from tests.hardening.ddp_uneven import ROWS, data

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "tests.hardening.ddp_uneven", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    # The same collectives on both ranks: one SUM per measurement, one MAX to discover the sites.
    assert ranks[0]["collectives"] == ranks[1]["collectives"] == {"sum": 6, "max": 1}
    assert ranks[0]["history"] == ranks[1]["history"]
    x, starts = data().double(), np.cumsum([0] + [sum(r) for r in ROWS])
    fc = {r["step"]: r for r in ranks[0]["history"] if r["site"] == "net.fc"}
    squash = {r["step"] for r in ranks[0]["history"] if r["site"] == "net.squash"}
    assert sorted(fc) == list(range(6))
    assert squash == set(range(6))  # discovered at step 0, when only rank 0 ran it
    for step, row in fc.items():  # each step's global batch, whatever its split between ranks
        rows_ = x[starts[step % 3] : starts[step % 3 + 1]].numpy().ravel()
        assert row["mean"] == pytest.approx(rows_.mean(), rel=1e-5)
        assert row["std"] == pytest.approx(rows_.std(), rel=1e-5)


# ----------------------------------------------------------------------------- W&B
@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any attempt to reach W&B's servers would hang on an unroutable address; temp files stay in tmp_path."""
    for var in ("WANDB_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://10.255.255.1:9")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def wandb_fit(save_dir, tmp_path, steps=4):
    import wandb

    monitor = ShiftMonitor(every_n_steps=1, log_histograms=True, histogram_every=1)
    csv = CSVLogger(tmp_path, name="csv")
    wb = WandbLogger(project="shiftkit-test", save_dir=str(save_dir), offline=True)
    messages = monitor_warnings(
        fit(Classifier(Containers()), sequences([(8, 4)] * steps), monitor, steps, logger=[csv, wb])
    )
    wandb.finish()
    monitor.write_records(tmp_path / "run")
    return monitor, messages, csv


def assert_local_records(monitor, csv, tmp_path, steps=4):
    logged = read_csv_metrics(csv.log_dir).dropna(subset=["shift/net.seq.0/mean"])
    assert logged["step"].tolist() == list(range(steps))
    run = read_run_history(tmp_path / "run")
    assert len(run) == len(monitor.history) == steps * 6


def read_run_history(run_dir):
    import pandas as pd

    from shiftkit.records import HISTORY_FILE

    return pd.read_csv(run_dir / HISTORY_FILE)


def test_wandb_offline_never_waits_on_the_network(tmp_path, no_network):
    start = time.monotonic()
    monitor, messages, csv = wandb_fit(tmp_path, tmp_path)
    assert (
        time.monotonic() - start < 30
    )  # a connection attempt to 10.255.255.1 would hang far longer
    assert messages == []
    frame = read_wandb_offline(wait_for_wandb_run(tmp_path / "wandb"))
    assert frame["shift/net.seq.0/mean"].notna().sum() == 4
    assert_local_records(monitor, csv, tmp_path)


def test_wandb_directory_that_cannot_be_written_still_leaves_local_records(tmp_path, no_network):
    (tmp_path / "a-file").write_text("not a directory")
    monitor, messages, csv = wandb_fit(tmp_path / "a-file" / "wandb", tmp_path)
    assert messages == []
    assert list((tmp_path / "tmp").rglob("*.wandb"))  # wandb fell back to the temp directory itself
    assert_local_records(monitor, csv, tmp_path)


def test_wandb_failing_to_write_is_one_warning_and_local_records_are_kept(
    tmp_path, no_network, monkeypatch
):
    from wandb.sdk.wandb_run import Run

    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Run, "log", disk_full)
    monitor, messages, csv = wandb_fit(tmp_path, tmp_path)
    assert messages == [
        "ShiftMonitor: logging to WandbLogger failed (OSError: [Errno 28] No space left on device); the monitor "
        "stops logging to it. Its history and the other loggers are unaffected"
    ]
    assert_local_records(monitor, csv, tmp_path)


# ----------------------------------------------------------------------------- memory
class Wide(nn.Module):
    """An identity over 2 million features (selected by name), then a tiny head."""

    def __init__(self):
        super().__init__()
        self.wide = nn.Identity()
        self.head = nn.Linear(1, 2)

    def forward(self, x):
        return self.head(self.wide(x).mean(1, keepdim=True))


def tensor_elements(state) -> int:
    """How many numbers the tensors of a (nested) state hold."""
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, dict):
        return sum(tensor_elements(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(tensor_elements(v) for v in state)
    return 0


def test_a_layer_with_millions_of_units_is_pooled_and_the_state_stays_bounded():
    units, bins = 2_000_000, 16
    monitor = ShiftMonitor(every_n_steps=1, layers=["net.wide", "net.head"], bins=bins)
    data = [(2 + step) * torch.randn(2, units) + step for step in range(3)]
    sizes = []

    class StateSize(pl.Callback):
        def on_train_batch_end(self, *args):
            sizes.append(tensor_elements(monitor.state_dict()) + monitor._acc.flat.numel())

    loader_ = batches_loader([(x, torch.zeros(2, dtype=torch.long)) for x in data])
    fit(Classifier(Wide()), loader_, monitor, 3, [StateSize()])
    assert monitor._acc.layout.pooled == (True, False) and monitor._acc.layout.units == (1, 1)
    # O(sites x (units + bins)) whatever the 2M features: the packed buffer (raw fields x 2
    # units + 2 x (bins + 2)), the saved shift (2) and reference (fields x 2 units + the
    # histograms + its shift).
    packed = len(RAW_FIELDS) * 2 + 2 * (bins + 2)
    reference = len(FIELDS) * 2 + 2 * (bins + 2)
    assert monitor._acc.flat.numel() == packed
    assert sizes == [packed + 2 + reference + 2] * 3
    wide = rows(monitor, "net.wide")
    _, lo, hi = monitor.histogram_edges()
    for step, x in enumerate(data):
        v = x.double()
        assert wide[step]["mean"] == pytest.approx(v.mean().item(), rel=1e-6, abs=1e-6)
        assert wide[step]["std"] == pytest.approx(v.std(unbiased=False).item(), rel=1e-6)
        assert wide[step]["p50"] == pytest.approx(v.median().item(), abs=(hi[0] - lo[0]) / bins)
        if step:
            prev = data[step - 1].double()
            kl = gaussian_kl(v.mean(), v.var(unbiased=False), prev.mean(), prev.var(unbiased=False))
            assert wide[step]["kl_gauss"] == pytest.approx(kl.item(), rel=1e-5)
