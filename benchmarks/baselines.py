"""The monitors people use today, rebuilt as Lightning callbacks so they run in the same Trainer.

None of these tools ships in shiftkit's environment as a Lightning callback (fastai is its own
trainer, Lightning Bolts is unmaintained and pins old Lightning), so each is written here to do
the same per-step work as the original, on **the same layers** ShiftMonitor watches by default
(Linear, Conv*, norms, activations; :func:`shiftkit.tracker.selection.select_modules`):

* :class:`FastaiActivationStats` -- fastai ``callback/hook.py``: ``HookCallback`` hooks with
  ``detach=True, cpu=True`` copy each hooked module's input and output to the CPU
  (``to_detach``), then ``ActivationStats.hook`` reduces the output: ``mean().item()``,
  ``std().item()``, ``near_zero = (o <= 0.05).sum().item() / numel``, and a 40-bin
  ``histc(40, 0, 10)`` (of ``abs()``, as in the fastai course's version; the library's current
  version histograms ``o`` itself, the same cost); ``after_batch`` appends every step's stats to
  an in-memory list (it grows, as fastai's does).
* :class:`BoltsModuleDataMonitor` -- Lightning Bolts ``ModuleDataMonitor(submodules=[...],
  log_every_n_steps=1)``: a forward hook per module that, at each logging step, takes the
  module's input and output, ``tensor.detach().cpu()``, and hands it to the logger's
  ``add_histogram`` (Bolts' TensorBoard branch: ``SummaryWriter.add_histogram`` computes
  ``np.histogram`` over the whole tensor and queues an event for its writer thread). If
  TensorBoard is not installed, ``np.histogram(bins=64)`` into memory stands in.
* :class:`FloorReadOnce` and :class:`FloorMoments` -- not tools but the limits: a forward
  pre-hook on each site ShiftMonitor measures by default (its inputs) that reads the input once
  (``x.sum()``), or computes what the Gaussian statistics need, the per-unit sum and sum of
  squares (Linear-like: over every dim but the last; conv-like: per channel over batch and
  space; the unit layout from :func:`shiftkit.tracker.selection.unit_layouts`). Results stay on
  the device, overwritten each step: no sync, no logging.
* :class:`TorchInstruments` -- the real ``torchinstruments.inject_observer`` (0.10) on the same
  modules, writing to the block's temporary folder, sampling every forward or at its default
  one-minute interval; ``remove_observer`` when the fit ends.
* :class:`NvInspectTensorStats` -- the real nvdlfw-inspect (``nvdlfw_inspect.api``, 0.2) with
  its ``LogTensorStats`` feature (min, max, mean, std, l1 and l2 norms, every step, to its
  statistics log file). nvdlfw-inspect has no hooks of its own: a model calls
  ``log_tensor_stats(layer_name=..., tensor_name=..., tensor=...)`` inside its forward (as
  Transformer Engine's layers do). Here a forward pre-hook on each monitored site makes that
  call with the site's input, and ``api.step()`` ends each training step.
* :class:`WandbWatch` -- the real ``wandb.watch(model, log="all", log_freq=N)`` on an offline
  run (``WANDB_MODE=offline``, files in the block's temporary folder, system-metrics sampling
  off so that only ``watch`` is measured); ``unwatch`` and ``finish`` when the fit ends.

On a CPU run ``.cpu()`` of a CPU tensor is free (no copy), so CPU numbers understate what the
fastai and Bolts styles cost on a GPU, where each copy is a device-to-host transfer and a sync.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


def _monitored_modules(pl_module: LightningModule) -> list[tuple[str, torch.nn.Module]]:
    from shiftkit.tracker.selection import select_modules

    return select_modules(pl_module, None, None)


def _to_detach(value: Any) -> Any:
    """fastai ``to_detach(b, cpu=True)``: detach and move every tensor of a (nested) value to CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (tuple, list)):
        return type(value)(_to_detach(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_detach(v) for k, v in value.items()}
    return value


class _HookedCallback(Callback):
    """Forward hooks on the monitored layers, registered at ``setup`` and removed at ``teardown``."""

    def __init__(self) -> None:
        self._handles: list = []
        self.layers: list[str] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from shiftkit.tracker.selection import unit_layouts

        layouts = unit_layouts(pl_module)
        for name, module in _monitored_modules(pl_module):
            self.layers.append(name)
            self._handles.append(self._register(name, module, layouts[name]))

    def _register(self, name: str, module: torch.nn.Module, layout: int):
        """A forward hook on ``module``'s output (the fastai and Bolts tools hook outputs)."""
        return module.register_forward_hook(self._make_hook(name))

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _make_hook(self, name: str):
        raise NotImplementedError


class FastaiActivationStats(_HookedCallback):
    """fastai-``ActivationStats(with_hist=True)``-style statistics of every hooked module's output,
    each step, with a host sync per statistic (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, dict] = {}
        self.stats: list[dict[str, dict]] = []

    def _make_hook(self, name: str):
        def hook(module, inputs, output):
            inputs, output = _to_detach(inputs), _to_detach(output)  # Hook.hook_fn, cpu=True
            if not isinstance(output, torch.Tensor):
                return
            o = output.float()
            self.stored[name] = {
                "mean": o.mean().item(),
                "std": o.std().item(),
                "near_zero": (o <= 0.05).long().sum().item() / o.numel(),
                "hist": o.abs().histc(40, 0, 10),
            }

        return hook

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # ActivationStats.after_batch with every=None: keep every step's stats.
        self.stats.append(self.stored)
        self.stored = {}


class BoltsModuleDataMonitor(_HookedCallback):
    """Lightning-Bolts-``ModuleDataMonitor``-style histograms of every hooked module's input and
    output at each logging step (every step here), through ``add_histogram``."""

    def __init__(self, log_every_n_steps: int = 1, logdir: str | None = None) -> None:
        super().__init__()
        self.log_every_n_steps = log_every_n_steps
        self.logdir = logdir
        self.writer = None
        self.memory_sink: list[tuple[str, np.ndarray]] = []
        self._batch_idx = 0
        self._step = 0

    @property
    def sink(self) -> str:
        return "tensorboard" if self.writer is not None else "memory"

    def setup(self, trainer, pl_module, stage) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(self.logdir or None)
            except ImportError:  # pragma: no cover - tensorboard is a test extra
                self.writer = None

    def teardown(self, trainer, pl_module, stage) -> None:
        super().teardown(trainer, pl_module, stage)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_idx, self._step = batch_idx, trainer.global_step

    def _make_hook(self, name: str):
        def hook(module, inputs, output):
            if (self._batch_idx + 1) % self.log_every_n_steps != 0:
                return
            inp = inputs[0] if len(inputs) == 1 else inputs
            self._log_histograms(inp, f"input/{name}")
            self._log_histograms(output, f"output/{name}")

        return hook

    def _log_histograms(self, value: Any, group: str) -> None:
        tensors = (
            [value]
            if isinstance(value, torch.Tensor)
            else [v for v in value if isinstance(v, torch.Tensor)]
        )
        for i, t in enumerate(tensors):
            tag = f"{group}/{i}/{list(t.shape)}"
            t = t.detach().cpu()
            if self.writer is not None:
                self.writer.add_histogram(tag, t, global_step=self._step)
            else:
                self.memory_sink.append((tag, np.histogram(t.numpy(), bins=64)[0]))


class _FloorHooks(_HookedCallback):
    """Forward pre-hooks on the inputs of the monitored layers (``track="inputs"``, ShiftMonitor's
    default), each reducing its input on the device into :attr:`kept`; no host sync."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, Any] = {}

    def _register(self, name: str, module: torch.nn.Module, layout: int):
        return module.register_forward_pre_hook(self._make_hook(name, layout))

    def _make_hook(self, name: str, layout: int):
        raise NotImplementedError


class FloorReadOnce(_FloorHooks):
    """Floor (a): each monitored input read once, ``x.detach().sum()``, kept on the device."""

    def _make_hook(self, name: str, layout: int):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor):
                self.kept[name] = args[0].detach().sum()

        return hook


class FloorMoments(_FloorHooks):
    """Floor (b): per-unit sum and sum of squares of each monitored input, kept on the device.

    A unit is the last dim for feature layouts (Linear-like), dim 1 for channel layouts
    (convolutions and what follows them); the reduction covers every other dim.
    """

    def _make_hook(self, name: str, layout: int):
        from shiftkit.stats import CHANNELS

        def hook(module, args):
            if not args or not isinstance(args[0], torch.Tensor):
                return
            x = args[0].detach()
            unit = 1 if layout == CHANNELS and x.dim() > 2 else x.dim() - 1
            dims = [d for d in range(x.dim()) if d != unit]
            self.kept[name] = (x.sum(dims), (x * x).sum(dims))

        return hook


class TorchInstruments(Callback):
    """The real ``torchinstruments.inject_observer`` on the layers ShiftMonitor watches by default.

    Args:
        every_forward: sample every root forward (``AlwaysSampler``); otherwise the package's
            default, a ``TimedSampler`` of one minute (the first forward, then once a minute).
        output_dir: where its ``DirectorySink`` writes history, summaries and TensorBoard events.
    """

    def __init__(self, every_forward: bool, output_dir: str) -> None:
        self.every_forward = every_forward
        self.output_dir = output_dir
        self._module = None

    def setup(self, trainer, pl_module, stage) -> None:
        if stage != "fit" or self._module is not None:
            return
        import torchinstruments as ti

        names = {name for name, _ in _monitored_modules(pl_module)}
        kwargs = {"sampler": ti.AlwaysSampler()} if self.every_forward else {}
        ti.inject_observer(
            pl_module,
            output_dir=self.output_dir,
            selector=lambda name, module: name in names,
            **kwargs,
        )
        self._module = pl_module

    def teardown(self, trainer, pl_module, stage) -> None:
        if self._module is None:
            return
        import torchinstruments as ti

        ti.remove_observer(self._module)
        self._module = None


#: nvdlfw-inspect's config: LogTensorStats on every layer name, every supported statistic, every
#: step (its YAML schema: a named section with ``layers`` and one block per feature).
NV_INSPECT_CONFIG = """\
shiftkit_benchmark:
  enabled: True
  layers:
    layer_name_regex_pattern: .*
  LogTensorStats:
    enabled: True
    tensors: [activation]
    stats: [min, max, mean, std, l1_norm, l2_norm]
    freq: 1
"""


class NvInspectTensorStats(_FloorHooks):
    """The real nvdlfw-inspect ``LogTensorStats`` on the inputs of the monitored layers, called
    from forward pre-hooks where a model would call it in its forward (see the module docstring).

    Args:
        log_dir: where nvdlfw-inspect writes its config copy and its logs.
    """

    def __init__(self, log_dir: str) -> None:
        super().__init__()
        self.log_dir = log_dir
        self._api = None

    def setup(self, trainer, pl_module, stage) -> None:
        if stage != "fit" or self._api is not None:
            return
        from nvdlfw_inspect import api

        os.makedirs(self.log_dir, exist_ok=True)
        config = os.path.join(self.log_dir, "config.yaml")
        with open(config, "w") as f:
            f.write(NV_INSPECT_CONFIG)
        api.initialize(config_file=config, log_dir=self.log_dir, default_logging_enabled=True)
        self._api = api
        super().setup(trainer, pl_module, stage)

    def _make_hook(self, name: str, layout: int):
        def hook(module, args):
            if args and isinstance(args[0], torch.Tensor):
                # skip_reduction: one process, nothing to gather (as its own DDP path when
                # torch.distributed is not initialized), without a warning per layer.
                self.kept[name] = self._api.log_tensor_stats(
                    layer_name=name,
                    tensor_name="activation",
                    tensor=args[0].detach(),
                    skip_reduction=True,
                )

        return hook

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._api.step()

    def teardown(self, trainer, pl_module, stage) -> None:
        super().teardown(trainer, pl_module, stage)
        if self._api is not None:
            self._api.end_debug()  # one debug manager per process: the next block starts anew
            self._api = None


class WandbWatch(Callback):
    """``wandb.watch(model, log="all", log_freq=N)`` on an offline run that lives for one fit."""

    def __init__(self, log_freq: int, run_dir: str) -> None:
        self.log_freq = log_freq
        self.run_dir = run_dir
        self.run = None

    def setup(self, trainer, pl_module, stage) -> None:
        if stage != "fit" or self.run is not None:
            return
        import wandb

        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            mode="offline",
            dir=self.run_dir,
            project="shiftkit-overhead-bench",
            reinit="finish_previous",
            settings=wandb.Settings(
                silent=True,
                console="off",
                disable_git=True,
                disable_code=True,
                x_disable_stats=True,
            ),
        )
        self.run.watch(pl_module, log="all", log_freq=self.log_freq)
        self._module = pl_module

    def teardown(self, trainer, pl_module, stage) -> None:
        if self.run is None:
            return
        self.run.unwatch(self._module)
        self.run.finish()
        self.run = None
