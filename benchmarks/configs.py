"""The monitoring configurations the benchmark compares, each against ``none`` in the same run.

``period`` is how often a configuration does its work (1: every step; ``"log"``: every
``log_every_n_steps``). It decides how a configuration's cost is summarized (see
``benchmarks/README.md``): every-step configurations by the median step time, periodic ones by
the mean over whole periods.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    period: int | str  # steps between measurements; "log" = the Trainer's log_every_n_steps
    mirrors: str
    factory: Callable[[str], list]  # tmpdir -> callbacks

    def period_steps(self, log_every_n_steps: int) -> int:
        return log_every_n_steps if self.period == "log" else int(self.period)


#: ShiftMonitor measuring every step, all default layers, inputs, histograms on. With a CSV logger
#: ``log_histograms`` logs nothing (histograms go to W&B only), so ``keep_histograms`` makes the
#: histograms come back to the host every measurement anyway.
SHIFT_EVERY_KWARGS = {
    "every_n_steps": 1,
    "track": "inputs",
    "log_histograms": True,
    "histogram_every": 1,
    "keep_histograms": True,
}


def _none(tmpdir: str) -> list:
    return []


def _shift_default(tmpdir: str) -> list:
    from shiftkit import ShiftMonitor

    return [ShiftMonitor()]


def _shift_every(tmpdir: str) -> list:
    from shiftkit import ShiftMonitor

    return [ShiftMonitor(**SHIFT_EVERY_KWARGS)]


def _shift_every_fused(tmpdir: str) -> list:
    from shiftkit import ShiftMonitor

    return [ShiftMonitor(**SHIFT_EVERY_KWARGS, fused=True)]


def _fastai(tmpdir: str) -> list:
    from baselines import FastaiActivationStats

    return [FastaiActivationStats()]


def _bolts(tmpdir: str) -> list:
    from baselines import BoltsModuleDataMonitor

    return [BoltsModuleDataMonitor(log_every_n_steps=1, logdir=tmpdir)]


def _floor_read(tmpdir: str) -> list:
    from baselines import FloorReadOnce

    return [FloorReadOnce()]


def _floor_moments(tmpdir: str) -> list:
    from baselines import FloorMoments

    return [FloorMoments()]


def _torchinstruments(every_forward: bool) -> Callable[[str], list]:
    def make(tmpdir: str) -> list:
        from baselines import TorchInstruments

        return [
            TorchInstruments(every_forward, output_dir=os.path.join(tmpdir, "torchinstruments"))
        ]

    return make


def _nv_inspect(tmpdir: str) -> list:
    from baselines import NvInspectTensorStats

    return [NvInspectTensorStats(log_dir=os.path.join(tmpdir, "nvdlfw_inspect"))]


def _wandb(log_freq: int) -> Callable[[str], list]:
    def make(tmpdir: str) -> list:
        from baselines import WandbWatch

        return [WandbWatch(log_freq=log_freq, run_dir=tmpdir)]

    return make


CONFIGS: dict[str, Config] = {
    c.name: c
    for c in (
        Config("none", "no monitor", 1, "-", _none),
        Config(
            "shift_default",
            "ShiftMonitor() defaults",
            "log",
            "shiftkit: every log_every_n_steps (50), inputs of default layers, no histograms logged",
            _shift_default,
        ),
        Config(
            "shift_every",
            "ShiftMonitor every step + histograms",
            1,
            "shiftkit: ShiftMonitor("
            + ", ".join(f"{k}={v!r}" for k, v in SHIFT_EVERY_KWARGS.items())
            + ")",
            _shift_every,
        ),
        Config(
            "shift_every_fused",
            "ShiftMonitor every step + histograms, fused=True",
            1,
            "as shift_every, each site's sums in one torch.compile-d kernel (compiled during warm-up)",
            _shift_every_fused,
        ),
        Config(
            "floor_read",
            "floor: read each monitored input once",
            1,
            "limit, not a tool: a pre-hook per ShiftMonitor default site, x.sum() kept on device",
            _floor_read,
        ),
        Config(
            "floor_moments",
            "floor: per-unit sum and sum of squares",
            1,
            "limit, not a tool: a pre-hook per ShiftMonitor default site, per-unit sum and sum of "
            "squares (what the Gaussian statistics need) kept on device",
            _floor_moments,
        ),
        Config(
            "fastai",
            "fastai ActivationStats-style",
            1,
            "hooks copy input+output .detach().cpu(); output mean/std/near_zero .item() each; "
            "abs().histc(40,0,10); stats kept per step",
            _fastai,
        ),
        Config(
            "wandb_watch_1",
            'wandb.watch(log="all", log_freq=1)',
            1,
            "the real wandb.watch, offline run: parameter + gradient histograms every step",
            _wandb(1),
        ),
        Config(
            "wandb_watch_10",
            'wandb.watch(log="all", log_freq=10)',
            10,
            "the real wandb.watch, offline run: parameter + gradient histograms every 10 steps",
            _wandb(10),
        ),
        Config(
            "torchinstruments_1",
            "torchinstruments, every forward",
            1,
            "the real torchinstruments.inject_observer on the same modules, AlwaysSampler: "
            "default reducers + histograms of every sampled forward, DirectorySink in a temp folder",
            _torchinstruments(True),
        ),
        Config(
            "torchinstruments_timed",
            "torchinstruments, default 1-minute interval",
            1,
            "the real torchinstruments.inject_observer on the same modules, its default "
            "TimedSampler(1 min): a block samples at most once or twice; per sample see "
            "torchinstruments_1",
            _torchinstruments(False),
        ),
        Config(
            "nvdlfw_inspect",
            "nvdlfw-inspect LogTensorStats, every step",
            1,
            "the real nvdlfw_inspect.api: log_tensor_stats (min/max/mean/std/l1/l2) of each "
            "monitored input, called from a pre-hook (where a model would call it), api.step() "
            "per step, statistics to its log file",
            _nv_inspect,
        ),
        Config(
            "bolts",
            "Bolts ModuleDataMonitor-style",
            1,
            "hooks take input+output .detach().cpu() -> SummaryWriter.add_histogram (np.histogram) every step",
            _bolts,
        ),
    )
}

#: The baselines that the ">= 3x less added time" target compares ShiftMonitor with (config 2).
BASELINES = ("fastai", "wandb_watch_1", "wandb_watch_10", "bolts")

#: The limits every ratio is read against (columns of the table): reading each input once, and
#: the per-unit moments the Gaussian statistics need.
FLOORS = ("floor_read", "floor_moments")

#: The real packages (not re-implementations) that the per-measurement comparison names.
REAL_PEERS = ("torchinstruments_1", "nvdlfw_inspect", "wandb_watch_1", "wandb_watch_10")
