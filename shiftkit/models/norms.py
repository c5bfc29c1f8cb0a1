"""Normalization layers the model zoo needs beyond ``torch.nn``.

- :class:`GhostBatchNorm`: batch norm over groups of the batch (DDP's per-device BN, on one device).
- :class:`BatchNoise`: the non-stationary noise of Santurkar et al. (2018), train-time only.
- :class:`NoisyBatchNorm`: a batch norm followed by :class:`BatchNoise` ("noisy BN", CLAIMS C5).
- :class:`CPUSyncBatchNorm` and :func:`convert_sync_batchnorm`: synchronized batch norm that runs
  on CPU under gloo (torch's ``nn.SyncBatchNorm`` does not), torch's own on CUDA.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "BatchNoise",
    "GhostBatchNorm",
    "NoisyBatchNorm",
    "CPUSyncBatchNorm",
    "convert_sync_batchnorm",
]


def _reduce_dims(x: torch.Tensor) -> list[int]:
    # Units are features (N, F) or channels (N, C, *spatial): pool over batch and space, as BN does.
    return [0, *range(2, x.dim())]


def _per_unit(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-unit vector ``(C,)`` to broadcast against ``x`` of shape ``(N, C, *)``."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def _update_running_stats(bn: _BatchNorm, mean: torch.Tensor, var: torch.Tensor) -> None:
    """Move ``bn``'s running mean/var towards ``mean``/unbiased ``var``, as ``F.batch_norm`` does"""
    if not (bn.training and bn.track_running_stats):
        return
    bn.num_batches_tracked.add_(1)
    # momentum=None means a cumulative average, as in torch's BatchNorm.
    factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    with torch.no_grad():
        bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), factor)
        bn.running_var.lerp_(var.detach().to(bn.running_var.dtype), factor)


class GhostBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are computed over groups ("ghost batches") of the batch.

    The batch is split, in order, into consecutive groups of ``ghost_batch_size`` samples (the
    last group is smaller when the size does not divide the batch); each group is normalized with
    its own mean and variance, exactly as plain batch norm on that group alone. This is what DDP
    with plain (unsynced) BN does with a global batch of ``k x n`` on ``k`` devices, so one device
    can reproduce per-device statistics (Hoffer et al. 2017; CLAIMS C8). In eval mode the running
    statistics are used, as in ``nn.BatchNorm``; in training they move once per forward towards
    the *average* over groups of the group mean and unbiased group variance (under DDP each rank
    tracks its own group and DDP broadcasts rank 0's buffers; the average is the comparable
    single-device choice).

    Works for ``(N, C)``, ``(N, C, L)``, ``(N, C, H, W)`` and ``(N, C, D, H, W)`` inputs.

    Args:
        num_features: number of units (features or channels) ``C``.
        ghost_batch_size: samples per group; a batch of at most this size is plain batch norm.
        eps, momentum, affine, track_running_stats: as in ``torch.nn.BatchNorm1d``.

    Example:
        >>> bn = GhostBatchNorm(16, ghost_batch_size=4)
        >>> bn(torch.randn(8, 16, 5, 5)).shape
        torch.Size([8, 16, 5, 5])
    """

    def __init__(
        self,
        num_features: int,
        ghost_batch_size: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        if ghost_batch_size < 2:
            raise ValueError(
                f"ghost_batch_size must be >= 2 to have a variance, got {ghost_batch_size}"
            )
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.ghost_batch_size = ghost_batch_size

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ghost_batch_size={self.ghost_batch_size}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.size(0) <= self.ghost_batch_size:
            return super().forward(x)
        self._check_input_dim(x)
        groups = x.split(self.ghost_batch_size)
        out = torch.cat(
            [
                F.batch_norm(g, None, None, self.weight, self.bias, True, 0.0, self.eps)
                for g in groups
            ]
        )
        if self.track_running_stats:
            dims = _reduce_dims(x)
            with torch.no_grad():
                mean = torch.stack([g.mean(dims) for g in groups]).mean(0)
                var = torch.stack([g.var(dims, unbiased=True) for g in groups]).mean(0)
            _update_running_stats(self, mean, var)
        return out


class BatchNoise(nn.Module):
    """Non-stationary noise of Santurkar et al. (2018, Sec. 2.1), exactly as in CLAIMS C5.

    In training mode every forward draws, for this layer, ``mu_t ~ U(-0.5, 0.5)`` and
    ``sigma_t ~ U(1, 1.25)``, then for every sample and activation ``m ~ U(mu_t - 0.1, mu_t + 0.1)``
    and ``s ~ N(sigma_t, 0.1)`` (0.1 is the standard deviation), and returns ``s * a + m``. The
    noise is a constant for autograd (the gradient w.r.t. ``a`` is ``s``). In eval mode it is the
    identity. Random numbers come from torch's global generator on the input's device, so
    ``lightning.seed_everything`` makes runs repeatable; nothing is read back to the host.

    The last draw of ``mu_t`` and ``sigma_t`` is kept in ``last_mu`` / ``last_sigma`` (0-d tensors,
    NaN before the first training forward) so that a monitor or a test can read it.

    Args:
        mean_range: half-width of the uniform law of ``mu_t`` (0.5).
        scale_range: ``(low, high)`` of the uniform law of ``sigma_t`` ((1, 1.25)).
        mean_jitter: half-width of ``m`` around ``mu_t`` (0.1).
        scale_std: standard deviation of ``s`` around ``sigma_t`` (0.1).

    Example:
        >>> noise = BatchNoise()
        >>> a = torch.zeros(4, 3)
        >>> bool(((noise(a) - noise.last_mu).abs() <= 0.1).all())
        True
        >>> torch.equal(noise.eval()(a), a)
        True
    """

    def __init__(
        self,
        mean_range: float = 0.5,
        scale_range: tuple[float, float] = (1.0, 1.25),
        mean_jitter: float = 0.1,
        scale_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.mean_range = mean_range
        self.scale_range = tuple(scale_range)
        self.mean_jitter = mean_jitter
        self.scale_std = scale_std
        self.register_buffer("last_mu", torch.tensor(float("nan")), persistent=False)
        self.register_buffer("last_sigma", torch.tensor(float("nan")), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"mu_t~U(+-{self.mean_range}), sigma_t~U{self.scale_range}, "
            f"m~U(mu_t+-{self.mean_jitter}), s~N(sigma_t, {self.scale_std})"
        )

    def sample(
        self,
        shape: torch.Size,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw one step's noise: returns ``(s, m, mu_t, sigma_t)``; ``s``, ``m`` have ``shape``."""
        kw = dict(device=device, dtype=dtype)
        mu = torch.empty((), **kw).uniform_(-self.mean_range, self.mean_range)
        sigma = torch.empty((), **kw).uniform_(*self.scale_range)
        m = mu + torch.empty(shape, **kw).uniform_(-self.mean_jitter, self.mean_jitter)
        s = sigma + self.scale_std * torch.randn(shape, **kw)
        return s, m, mu, sigma

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return a
        s, m, mu, sigma = self.sample(a.shape, a.device, a.dtype)
        self.last_mu.copy_(mu)
        self.last_sigma.copy_(sigma)
        return s * a + m


class NoisyBatchNorm(nn.Module):
    """A batch-norm layer followed by :class:`BatchNoise` (the "noisy BN" of CLAIMS C5).

    The two parts stay separate children (``bn`` and ``noise``) so that ``norm="syncbatch"``-style
    conversion, parameter counting and hooks see an ordinary batch-norm module.

    Args:
        bn: the batch norm (``nn.BatchNorm1d/2d`` or :class:`GhostBatchNorm`).
        noise: the noise module; a fresh :class:`BatchNoise` by default.

    Example:
        >>> layer = NoisyBatchNorm(nn.BatchNorm1d(8))
        >>> layer(torch.randn(16, 8)).shape
        torch.Size([16, 8])
    """

    def __init__(self, bn: nn.Module, noise: BatchNoise | None = None) -> None:
        super().__init__()
        self.bn = bn
        self.noise = noise if noise is not None else BatchNoise()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.noise(self.bn(x))


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of a sum over ranks is the sum of the gradients.

    (``torch.distributed.nn.functional.all_reduce`` does the same but is deprecated in torch 2.13.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _AllReduceSum.apply(grad, ctx.group), None


def _world_size(group=None) -> int:
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)


class CPUSyncBatchNorm(_BatchNorm):
    """Synchronized batch norm for CPU processes (gloo): statistics over all ranks' batches.

    torch 2.13 has none: ``nn.SyncBatchNorm.forward`` raises ``ValueError`` for CPU inputs once a
    process group exists, and ``DistributedDataParallel`` refuses any ``nn.SyncBatchNorm`` in a CPU
    module -- so this class is deliberately *not* a subclass of it.

    In training with more than one rank, one all_reduce of per-rank ``(sum, count)`` gives the
    global mean and a second, of the per-rank sums of squared deviations from it, the global
    (biased) variance -- two passes, so no ``E[x^2] - E[x]^2`` cancellation. The all_reduce is
    differentiable (its backward is again a sum over ranks), so autograd gives the same input,
    weight and bias gradients as batch norm on the concatenated batch; ranks may hold different
    numbers of samples. Running statistics move towards the global mean and unbiased global
    variance, identically on every rank. In eval mode, or on one process, it is plain batch norm.
    (The collectives work on any device; :func:`convert_sync_batchnorm` still picks torch's fused
    ``nn.SyncBatchNorm`` for CUDA.)

    Build it with :func:`convert_sync_batchnorm`.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as in ``nn.BatchNorm2d``.
        process_group: the group to synchronize over; the whole world by default.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (N, C, ...), got {input.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or _world_size(self.process_group) < 2:
            return super().forward(x)
        self._check_input_dim(x)
        group = self.process_group or dist.group.WORLD
        dims = _reduce_dims(x)
        local_count = x.new_full((1,), x.numel() // x.size(1))
        total = _AllReduceSum.apply(torch.cat([x.sum(dims), local_count]), group)
        count = total[-1]
        mean = total[:-1] / count
        centered = x - _per_unit(mean, x)
        var = _AllReduceSum.apply(centered.square().sum(dims), group) / count
        y = centered * _per_unit(torch.rsqrt(var + self.eps), x)
        if self.affine:
            y = y * _per_unit(self.weight, x) + _per_unit(self.bias, x)
        _update_running_stats(self, mean, var * count / (count - 1).clamp(min=1))
        return y


def convert_sync_batchnorm(
    module: nn.Module, process_group=None, device: torch.device | str | None = None
) -> nn.Module:
    """Replace each ``nn.BatchNorm1d/2d/3d`` in ``module`` by synchronized BN, if distributed.

    Like ``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` (parameters and buffers are moved over,
    not copied), except that for a CPU device the new layers are :class:`CPUSyncBatchNorm`
    (torch's own does not run on CPU), and :class:`GhostBatchNorm` is left alone (its groups are
    its point). When no process group with more than one rank is initialized the module is
    returned unchanged, so a single-process run keeps plain batch norm. Call it after the process
    group exists and before DDP wraps the model (``ShiftClassifier`` does so in ``setup``).

    Args:
        module: the model (or a single batch-norm layer, which is then returned replaced).
        process_group: the group to synchronize over; the whole world by default.
        device: where the model will run; torch's ``nn.SyncBatchNorm`` for non-CPU devices,
            :class:`CPUSyncBatchNorm` for CPU. Default: the device of the module's parameters.

    Returns:
        ``module`` with its batch norms converted (a new object if ``module`` itself is one).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8))
        >>> convert_sync_batchnorm(net) is net  # not distributed: unchanged
        True
    """
    if _world_size(process_group) < 2:
        return module
    if device is None:
        device = next(module.parameters(), torch.empty(0)).device
    sync_class = CPUSyncBatchNorm if torch.device(device).type == "cpu" else nn.SyncBatchNorm
    return _convert(module, process_group, sync_class)


def _convert(module: nn.Module, process_group, sync_class: type) -> nn.Module:
    out = module
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        out = sync_class(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            process_group,
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child, process_group, sync_class))
    return out
