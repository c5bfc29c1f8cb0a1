"""Bad input: every ShiftMonitor argument, patterns that match nothing, broken dataset files,
interrupted writes, checkpoints loaded with weights_only=True, and secrets in the environment."""

import errno
import inspect
import os
import warnings
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from shiftkit import ShiftMonitor
from shiftkit.data import (
    Cifar10DataModule,
    DatasetFormatError,
    DatasetNotFoundError,
    MnistDataModule,
)
from shiftkit.data.mnist5k import CACHE_NAME, load_mnist5k
from shiftkit.monitor import MonitorConfigError
from shiftkit.records import HISTORY_FILE, write_run_result
from tests.data.helpers import cifar_record_bytes, idx_bytes, write_cifar_dir, write_mnist_dir
from tests.hardening.helpers import fit, monitor_warnings
from tests.hardening.zoo import Classifier, Containers, sequences
from tests.monitor.helpers import OffsetNet, loader, standardized, trainer

GLOB = "must be a glob string on module names or type names ('encoder.*', 'Conv*'), an nn.Module subclass, or a list of them"
# argument -> [(bad value(s) as kwargs, the message it must get)]
BAD = {
    "layers": [({"layers": 5}, f"layers {GLOB}; got 5"), ({"layers": ["fc1", ""]}, f"layers {GLOB}")],
    "exclude": [({"exclude": [3.0]}, f"exclude {GLOB}; got [3.0]"), ({"exclude": int}, f"exclude {GLOB}")],
    "track": [({"track": "input"}, "track='input' is not one of 'inputs', 'outputs', 'both'")],
    "every_n_steps": [
        ({"every_n_steps": 0}, "every_n_steps must be an integer >= 1, got 0"),
        ({"every_n_steps": -5}, "every_n_steps must be an integer >= 1, got -5"),
        ({"every_n_steps": 2.5}, "every_n_steps must be an integer >= 1, got 2.5"),
        ({"every_n_steps": True}, "every_n_steps must be an integer >= 1, got True"),
    ],
    "reference": [({"reference": "last"}, "reference='last' is not one of 'previous', 'initial', 'probe'")],
    "probe_batch": [({"probe_batch": torch.zeros(2, 6)}, "probe_batch is used only with reference='probe', got reference='previous'")],
    "probe_fn": [
        ({"reference": "probe", "probe_fn": 3}, "probe_fn must be callable as probe_fn(module, batch)"),
        ({"probe_fn": lambda m, b: m(b)}, "probe_fn is used only with reference='probe', got reference='previous'"),
    ],
    "probe_baseline": [({"reference": "probe", "probe_baseline": "first"}, "probe_baseline='first' is not one of 'previous', 'initial'")],
    "stats": [
        ({"stats": ["kl_gaus"]}, "unknown stats ['kl_gaus']; allowed: kl_gauss, kl_gauss_floor, kl_hist, js_hist"),
        ({"stats": []}, "stats must be a non-empty list of names from: kl_gauss"),
        ({"stats": 5}, "stats must be a non-empty list of names from: kl_gauss"),
        ({"stats": ["p15"], "quantiles": (0.25,)}, ("unknown stats ['p15']; allowed: kl_gauss", "std, p25, hist_outside")),
    ],
    "quantiles": [
        ({"quantiles": (0.5, 1.5)}, "quantiles must be levels in (0, 1), a non-empty list such as (0.15, 0.5, 0.85); got (0.5, 1.5)"),
        ({"quantiles": ()}, "quantiles must be levels in (0, 1), a non-empty list such as (0.15, 0.5, 0.85); got ()"),
        ({"quantiles": ("a",)}, "quantiles must be levels in (0, 1), a non-empty list such as (0.15, 0.5, 0.85); got ('a',)"),
        ({"quantiles": 0.5}, "quantiles must be levels in (0, 1), a non-empty list such as (0.15, 0.5, 0.85); got 0.5"),
    ],
    "bins": [({"bins": 1}, "bins must be an integer >= 2, got 1"), ({"bins": 8.0}, "bins must be an integer >= 2, got 8.0")],
    "hist_max_elements": [({"hist_max_elements": 0}, "hist_max_elements must be an integer >= 1, got 0")],
    "saturation_thresholds": [
        ({"saturation_thresholds": {"Sigmoid": -1}}, "saturation_thresholds must be positive finite numbers keyed by activation type name"),
        ({"saturation_thresholds": {"Tanh": float("inf")}}, "saturation_thresholds must be positive finite numbers"),
        ({"saturation_thresholds": {"Tanh": True}}, "saturation_thresholds must be positive finite numbers"),
        ({"saturation_thresholds": {3: 1.0}}, "saturation_thresholds must be positive finite numbers"),
        ({"saturation_thresholds": [("Tanh", 2.0)]}, "saturation_thresholds must be a dict {activation type name: |x| threshold}, e.g. {'Sigmoid': 4.0"),
    ],
    "noise_floor": [({"noise_floor": "yes"}, "noise_floor must be True or False, got 'yes'")],
    "log_histograms": [({"log_histograms": 1}, "log_histograms must be True or False, got 1")],
    "histogram_every": [({"histogram_every": 0}, "histogram_every must be an integer >= 1, got 0")],
    "keep_history": [({"keep_history": None}, "keep_history must be True or False, got None")],
    "keep_histograms": [({"keep_histograms": "no"}, "keep_histograms must be True or False, got 'no'")],
    "max_units": [({"max_units": 0}, "max_units must be an integer >= 1, got 0")],
    "var_floor": [
        ({"var_floor": 1.5}, "var_floor must be a fraction in [0, 1), got 1.5"),
        ({"var_floor": -0.1}, "var_floor must be a fraction in [0, 1), got -0.1"),
        ({"var_floor": True}, "var_floor must be a fraction in [0, 1), got True"),
    ],
    "widen_at": [
        ({"widen_at": 0.0}, "widen_at must be a fraction in (0, 1) or None, got 0.0"),
        ({"widen_at": 1}, "widen_at must be a fraction in (0, 1) or None, got 1"),
    ],
    "fused": [({"fused": "yes"}, "fused must be True or False, got 'yes'")],
    "probe_seed": [({"probe_seed": -1}, "probe_seed must be an integer >= 0, got -1"), ({"probe_seed": "0"}, "probe_seed must be an integer >= 0, got '0'")],
    "heatmap_every": [({"heatmap_every": 0}, "heatmap_every must be an integer >= 1, got 0")],
}  # fmt: skip


def test_the_table_covers_every_argument():
    assert set(BAD) == set(inspect.signature(ShiftMonitor).parameters)


@pytest.mark.parametrize(
    "kwargs, message",
    [case for cases in BAD.values() for case in cases],
    ids=[f"{a}-{i}" for a, c in BAD.items() for i in range(len(c))],
)
def test_bad_arguments_are_refused_at_construction_naming_argument_and_allowed_values(
    kwargs, message
):
    # One error type for every misconfiguration: a Lightning MisconfigurationException and a
    # ValueError.
    with pytest.raises(MonitorConfigError, match=r"^ShiftMonitor: ") as err:
        ShiftMonitor(**kwargs)
    assert isinstance(err.value, ValueError) and isinstance(err.value, MisconfigurationException)
    for part in (message,) if isinstance(message, str) else message:
        assert part in str(err.value)


PATTERNS = {
    "no-layer-matches": ({"layers": ["encoder.*"]}, MonitorConfigError, r"no module matched layers=\['encoder\.\*'\].*fc1 \(Linear\)"),
    "one-layer-pattern-matches-nothing": (
        {"layers": ["fc1", "encodr.*"]}, None,
        "ShiftMonitor: layers patterns ['encodr.*'] match no module of the model (a typo?). The model has: fc1 (Linear)",
    ),
    "exclude-matches-nothing": (
        {"exclude": ["Conv*"]}, None, "ShiftMonitor: exclude patterns ['Conv*'] match no module of the model (a typo?)",
    ),
    "log-histograms-without-wandb": (
        {"log_histograms": True}, None,
        "ShiftMonitor: log_histograms=True, but the Trainer has no WandbLogger; histograms are logged to W&B only",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PATTERNS))
def test_setup_says_what_does_not_match_the_model(case):
    kwargs, error, message = PATTERNS[case]
    monitor = ShiftMonitor(every_n_steps=1, **kwargs)
    if error is not None:
        with pytest.raises(error, match=message):
            fit(OffsetNet(), loader(standardized(8, 6), 8), monitor, 1)
        return
    messages = monitor_warnings(fit(OffsetNet(), loader(standardized(8, 6), 8), monitor, 1))
    assert len(messages) == 1 and messages[0].startswith(message)
    assert monitor.history  # a warning, and the run is measured


# ----------------------------------------------------------------------------- data files
def mnist_truncated(tmp_path):
    write_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    return (
        MnistDataModule(str(tmp_path)),
        DatasetFormatError,
        f"{path} truncated: header says 20x28x28 = 15696 bytes, file has 1000",
    )


def mnist_truncated_gzip(tmp_path):
    write_mnist_dir(tmp_path, gz=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    return (
        MnistDataModule(str(tmp_path)),
        DatasetFormatError,
        (
            f"{path} is not a valid gzip file: Compressed file ended before the end-of-stream marker was reached"
        ),
    )


def mnist_swapped_files(tmp_path):
    write_mnist_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros(20, np.uint8), 2049))
    return (
        MnistDataModule(str(tmp_path)),
        DatasetFormatError,
        f"expected magic 2051 (images) in {path}, found 2049",
    )


def mnist_wrong_directory(tmp_path):
    return (
        MnistDataModule(str(tmp_path / "nowhere")),
        DatasetNotFoundError,
        (
            f"MNIST directory {tmp_path / 'nowhere'} does not exist; expected a directory holding train-images-idx3-ubyte"
        ),
    )


def mnist_directory_is_a_file(tmp_path):
    (tmp_path / "mnist.tar").write_bytes(b"")
    return (
        MnistDataModule(str(tmp_path / "mnist.tar")),
        DatasetNotFoundError,
        (f"MNIST directory {tmp_path / 'mnist.tar'} is a file, not a directory"),
    )


def cifar_truncated(tmp_path):
    write_cifar_dir(tmp_path, records_per_file=3)
    path = tmp_path / "data_batch_2.bin"
    path.write_bytes(cifar_record_bytes(np.zeros(3, np.uint8))[:-5])
    return (
        Cifar10DataModule(str(tmp_path)),
        DatasetFormatError,
        f"{path} has 9214 bytes, expected a positive multiple of 3073",
    )


def cifar_wrong_directory(tmp_path):
    write_mnist_dir(tmp_path)
    return (
        Cifar10DataModule(str(tmp_path)),
        DatasetNotFoundError,
        f"CIFAR-10 binary files missing in {tmp_path}",
    )


DATA = [
    mnist_truncated,
    mnist_truncated_gzip,
    mnist_swapped_files,
    mnist_wrong_directory,
    mnist_directory_is_a_file,
    cifar_truncated,
    cifar_wrong_directory,
]


@pytest.mark.parametrize("make", DATA, ids=[f.__name__ for f in DATA])
def test_a_broken_dataset_is_one_clear_error_naming_the_file(tmp_path, make):
    datamodule, error, message = make(tmp_path)
    with pytest.raises(error) as err:
        datamodule.setup()
    assert str(err.value).startswith(message)


def test_a_corrupt_cache_file_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    import shiftkit.data.mnist5k as mnist5k

    small = {"images": np.zeros((3, 784), np.uint8), "labels": np.arange(3, dtype=np.uint8)}
    monkeypatch.setattr(mnist5k, "_parse_mnist5k", lambda: small)
    (tmp_path / CACHE_NAME).write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.warns(
        UserWarning, match=f"rebuilding unreadable cache file {tmp_path / CACHE_NAME}"
    ):
        images, labels = load_mnist5k(tmp_path)
    assert images.shape == (3, 784) and labels.tolist() == [0, 1, 2]
    assert np.load(tmp_path / CACHE_NAME, allow_pickle=False)["labels"].tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- atomic writes
def fitted_monitor():
    monitor = ShiftMonitor(every_n_steps=1, keep_histograms=True)
    fit(OffsetNet(lr=0.1), loader(standardized(16, 6), 8), monitor, 2)
    return monitor


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["disk-full", "killed"],
)
@pytest.mark.parametrize("writer", ["write_records", "write_run_result"])
def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(
    tmp_path, monkeypatch, failure, writer
):
    monitor = fitted_monitor()
    target = tmp_path / (HISTORY_FILE if writer == "write_records" else "result.json")
    target.write_text("the previous complete file\n")

    def fail(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(failure)):
        if writer == "write_records":
            monitor.write_records(tmp_path)
        else:
            write_run_result(tmp_path, {"recipe": "r", "history": monitor.history})
    assert target.read_text() == "the previous complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temporary file left


# ----------------------------------------------------------------------------- weights_only
Pair = namedtuple("Pair", "x y")


class Opaque:
    """A batch type a weights_only checkpoint cannot hold."""

    def __init__(self, x):
        self.x = x


PROBES = {
    "previous": (dict(reference="previous"), None),
    "initial": (dict(reference="initial"), None),
    "probe-first-batch": (dict(reference="probe"), None),
    "probe-namedtuple": (
        dict(reference="probe", probe_batch=Pair(standardized(4, 6), torch.zeros(4))),
        None,
    ),
    "probe-dict": (
        dict(reference="probe", probe_batch={"x": standardized(4, 6), "ids": [1, 2], "name": "p"}),
        None,
    ),
    "probe-opaque": (
        dict(
            reference="probe", probe_batch=Opaque(standardized(4, 6)), probe_fn=lambda m, b: m(b.x)
        ),
        "Opaque, not only tensors, containers and numbers); a run resumed from them takes a new probe batch",
    ),
}


@pytest.mark.parametrize("case", list(PROBES))
def test_checkpoints_load_with_weights_only_and_resume(tmp_path, case):
    kwargs, expected = PROBES[case]
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    monitor = ShiftMonitor(every_n_steps=1, keep_histograms=True, **kwargs)
    messages = fit(
        OffsetNet(lr=0.1),
        loader(standardized(16, 6), 8),
        monitor,
        2,
        [ckpt],
        enable_checkpointing=True,
    )
    warned = monitor_warnings(messages)
    assert len(warned) == (0 if expected is None else 1)  # once, although saved at every checkpoint
    if expected:
        assert (
            warned[0].startswith("ShiftMonitor: the probe batch is not saved in checkpoints")
            and expected in warned[0]
        )
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"][monitor.state_key]
    assert [r["step"] for r in state["history"] if r["site"] == "fc1"] == [0, 1]
    assert (state["probe"] is None) == (kwargs["reference"] != "probe" or expected is not None)
    if case == "probe-namedtuple":
        assert type(state["probe"]) is tuple and torch.equal(
            state["probe"][0], kwargs["probe_batch"].x
        )
    resumed = ShiftMonitor(every_n_steps=1, keep_histograms=True, **kwargs)
    t = trainer(max_steps=4, callbacks=[resumed], enable_checkpointing=False)
    t.fit(
        OffsetNet(lr=0.1),
        loader(standardized(16, 6), 8),
        ckpt_path=tmp_path / "last.ckpt",
        weights_only=True,
    )
    assert [r["step"] for r in resumed.history if r["site"] == "fc1"] == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- secrets
SECRETS = {
    "WANDB_API_KEY": "secret-test-key-123",
    "HF_TOKEN": "hf-secret-token-456",
    "DB_PASSWORD": "pw-secret-789",
}


def test_no_secret_from_the_environment_is_written_anywhere(tmp_path, monkeypatch):
    import wandb

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monitor = ShiftMonitor(
        every_n_steps=1, keep_histograms=True, log_histograms=True, histogram_every=1
    )
    loggers = [
        CSVLogger(tmp_path, name="csv"),
        WandbLogger(project="shiftkit-test", save_dir=str(tmp_path), offline=True),
    ]
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit(
            Classifier(Containers()),
            sequences([(8, 4)] * 3),
            monitor,
            3,
            [ckpt],
            logger=loggers,
            enable_checkpointing=True,
        )
        wandb.finish()
        monitor.write_records(tmp_path / "run")
        write_run_result(
            tmp_path / "run",
            {
                "recipe": "r",
                "config": {"env": dict(os.environ), "wandb": {"key": os.environ["WANDB_API_KEY"]}},
            },
        )
    written = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".csv", ".json", ".npz", ".ckpt", ".wandb", ".log"} <= kinds  # every writer ran
    for path in written:
        data = path.read_bytes()
        for name, value in SECRETS.items():
            assert value.encode() not in data, f"{name} written to {path}"
