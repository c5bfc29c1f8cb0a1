"""Timing and memory instruments of the overhead benchmark, and one timed training block.

A *block* is one ``Trainer.fit`` of a fresh, identically seeded model with one configuration's
callbacks. :class:`StepTimer` (always the first callback) stamps ``time.perf_counter()`` at every
``on_train_batch_start``; the time of optimizer step ``k`` is ``stamp[k + 1] - stamp[k]``, so it
holds the forward/backward/optimizer step, every callback hook (a monitor's per-measurement work
in ``on_train_batch_end`` included) and the loggers' calls. On CUDA the timer synchronizes first.

Memory: the peak resident set size (``VmHWM``) of the block, after returning free heap to the OS
(``malloc_trim``) and resetting the peak with ``echo 5 > /proc/self/clear_refs`` (Linux); the
block's *rise* is that peak minus the RSS at its start. On CUDA also
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger

MIB = 2**20


# ----------------------------------------------------------------------------- memory
def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int | None:
    """Current resident set size (Linux ``VmRSS``), or None where /proc is absent."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib * 1024


def peak_rss_bytes() -> int | None:
    """Peak resident set size since the last :func:`reset_peak_rss` (``VmHWM``)."""
    kib = _status_kib("VmHWM")
    return None if kib is None else kib * 1024


def release_free_memory() -> None:
    """Return the allocator's free heap to the OS (glibc ``malloc_trim``), so that a block's RSS
    starts from what is alive rather than from what earlier blocks left resident."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS; False if the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: str, threads: int) -> dict:
    """What the numbers were measured on: CPU, cores, versions, threads, device, date, load."""
    import lightning
    import numpy

    info = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "numpy": numpy.__version__,
        "torch_threads": threads,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": device,
        "load_average_start": load_average(),
        "peak_rss_resettable": reset_peak_rss(),
    }
    try:
        import wandb

        info["wandb"] = wandb.__version__
    except ImportError:
        info["wandb"] = None
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "shiftkit"], capture_output=True, text=True, timeout=10
        )
        info["git_commit"] = rev.stdout.strip() or None
        info["shiftkit_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


# ----------------------------------------------------------------------------- timer
class StepTimer(Callback):
    """Stamps the start of every training batch; optionally stops an every-step block early.

    Args:
        device: ``"cuda"`` synchronizes before each stamp.
        timed_from: first global step whose time counts (the steps before are warm-up).
        time_cap_s: stop the fit once the timed steps have taken this long and at least
            ``min_timed`` of them are done (None: never); used only for configurations that
            measure every step, so that whole measurement periods are never cut.
        min_timed: see ``time_cap_s``.
        rss_every: sample the RSS every this many steps into :attr:`rss_samples` (0: never).
    """

    def __init__(
        self,
        device: str = "cpu",
        timed_from: int = 0,
        time_cap_s: float | None = None,
        min_timed: int = 3,
        rss_every: int = 0,
    ):
        self.sync = device == "cuda"
        self.timed_from = timed_from
        self.time_cap_s = time_cap_s
        self.min_timed = min_timed
        self.rss_every = rss_every
        self.stamps: list[tuple[int, float]] = []
        self.rss_samples: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.sync:
            torch.cuda.synchronize()
        self.stamps.append((trainer.global_step, time.perf_counter()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # steps done, this one included
        if self.rss_every and step % self.rss_every == 0:
            self.rss_samples.append((step, rss_bytes() or 0))
        if self.time_cap_s is None or step - self.timed_from < self.min_timed + 1:
            return
        first = next((t for s, t in self.stamps if s >= self.timed_from), None)
        if first is not None and time.perf_counter() - first > self.time_cap_s:
            trainer.should_stop = True

    def step_times(self) -> tuple[list[int], list[float]]:
        """``(steps, seconds)`` of the complete timed steps (a step is complete once the next began)."""
        steps, secs = [], []
        for (s0, t0), (_, t1) in zip(self.stamps, self.stamps[1:]):
            if s0 >= self.timed_from:
                steps.append(s0)
                secs.append(t1 - t0)
        return steps, secs


# ----------------------------------------------------------------------------- block
@dataclass
class BlockResult:
    """One configuration's timed block: per-step times and the memory it peaked at."""

    config: str
    round: int
    steps: list[int]
    seconds: list[float]
    rss_start: int | None
    rss_peak: int | None
    cuda_peak: int | None
    wall_s: float
    capped: bool
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "config": self.config,
            "round": self.round,
            "steps": self.steps,
            "seconds": [round(s, 7) for s in self.seconds],
            "rss_start": self.rss_start,
            "rss_peak": self.rss_peak,
            "cuda_peak": self.cuda_peak,
            "wall_s": round(self.wall_s, 3),
            "capped": self.capped,
            **self.extra,
        }


def trainer_kwargs(device: str, log_every_n_steps: int, logdir: str, world_size: int = 1) -> dict:
    """The Trainer every block uses: quiet, no checkpoints, CSV logger in a temporary folder."""
    kwargs = dict(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=world_size,
        logger=CSVLogger(logdir, name="bench", version=0),
        log_every_n_steps=log_every_n_steps,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=False,
    )
    if world_size > 1:
        kwargs.update(strategy="ddp", use_distributed_sampler=False)
    return kwargs


def run_block(
    workload,
    config: str,
    make_callbacks: Callable[[str], list],
    *,
    round_index: int,
    warmup: int,
    timed: int,
    log_every_n_steps: int,
    device: str = "cpu",
    seed: int = 0,
    time_cap_s: float | None = None,
    rss_every: int = 0,
    world_size: int = 1,
    tmp_root: str | None = None,
    extra_callbacks: list | None = None,
) -> tuple[BlockResult, StepTimer, list]:
    """Train ``warmup + timed + 1`` steps of a freshly seeded ``workload`` with one configuration.

    ``make_callbacks(tmpdir)`` returns the configuration's callbacks (it may use ``tmpdir`` for
    its own files: a W&B offline run, TensorBoard events). Returns the result, the timer and the
    callbacks (for inspection, e.g. the monitor's history length).
    """
    gc.collect()
    tmpdir = tempfile.mkdtemp(prefix=f"bench_{config}_", dir=tmp_root)
    seed_everything(seed, verbose=False)
    module = workload.module()
    total = warmup + timed + 1
    loader = workload.loader(total, seed=seed)
    callbacks = make_callbacks(tmpdir)
    timer = StepTimer(device, timed_from=warmup, time_cap_s=time_cap_s, rss_every=rss_every)
    trainer = Trainer(
        max_steps=total,
        callbacks=[timer, *callbacks, *(extra_callbacks or [])],
        **trainer_kwargs(device, log_every_n_steps, tmpdir, world_size),
    )
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    release_free_memory()
    rss_start = rss_bytes()
    reset_peak_rss()
    t0 = time.perf_counter()
    trainer.fit(module, loader)
    wall = time.perf_counter() - t0
    rss_peak = peak_rss_bytes()
    cuda_peak = torch.cuda.max_memory_allocated() if device == "cuda" else None
    steps, secs = timer.step_times()
    result = BlockResult(
        config=config,
        round=round_index,
        steps=steps,
        seconds=secs,
        rss_start=rss_start,
        rss_peak=rss_peak,
        cuda_peak=cuda_peak,
        wall_s=wall,
        capped=len(secs) < timed,
    )
    _rmtree_quiet(tmpdir)
    return result, timer, callbacks


def _rmtree_quiet(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def quiet_process(threads: int | None = None) -> None:
    """Silence Lightning's and W&B's chatter and warnings; fix torch's intra-op thread count."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "wandb"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for key, value in (
        ("WANDB_MODE", "offline"),
        ("WANDB_SILENT", "true"),
        ("WANDB_DISABLE_GIT", "true"),
        ("WANDB_CONSOLE", "off"),
        ("WANDB__DISABLE_STATS", "true"),
    ):
        os.environ.setdefault(key, value)
    if threads is not None:
        torch.set_num_threads(threads)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def ensure_repo_on_path() -> None:
    """Import ``shiftkit`` from the checkout this file lives in, not from an installed copy.

    (An editable install may point at another worktree; the benchmark must time the code next
    to it.)
    """
    root = str(repo_root())
    if root not in sys.path:
        sys.path.insert(0, root)
