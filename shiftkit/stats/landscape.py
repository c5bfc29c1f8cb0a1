"""Smoothness of the loss landscape along the gradient (Santurkar et al. 2018, Fig. 4).

At parameters ``x`` with gradient ``g = grad L(x)`` on a fixed batch, and step sizes
``eta_k = m_k * lr`` for multipliers ``m_k`` in ``[0.5, 4]`` (default: 8 values,
log-spaced, see :func:`step_multipliers`):

* **loss landscape variation**: the losses ``L(x - eta_k g)``; their range
  ``max_k - min_k`` (and the min and max, the band of Fig. 4a);
* **gradient predictiveness**: ``||grad L(x) - grad L(x - eta_k g)||_2`` per step size;
  its max and min (the band of Fig. 4b);
* **effective beta-smoothness**: ``max_k ||grad L(x) - grad L(x - eta_k g)|| / ||eta_k g||``
  (Fig. 4c).

``g`` is recomputed in a fresh pass on the batch (not read from ``.grad``), over the
given parameters (default: every trainable parameter). Every pass starts from the same
RNG state and the same buffers (see :class:`~shiftkit.stats.gradient_ics.Replay`), so
dropout masks and batch-norm state are identical across step sizes; afterwards the
parameters, their ``.grad`` fields, the buffers and the caller's RNG streams are as
they were. Passes run in the model's current mode and the parameters' dtype; the
comparison is in float64.

Cost: ``1 + K`` forward/backward passes for ``K`` step sizes, and three parameter-sized
vectors (``x``, ``g``, the gradient at the moved point). Under data parallelism, with
``all_reduce`` given, ``g`` and ``L(x)`` are averaged across ranks before moving (so all
ranks move along the global-batch gradient) and each step size's gradient and loss are
averaged before comparing: ``1 + K`` collectives of one parameter-sized vector, the
numbers those of the global batch and identical on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from shiftkit.records.names import LANDSCAPE_STATS
from shiftkit.stats.accumulator import AllReduce
from shiftkit.stats.gradient_ics import LossFn, Replay, average_across_ranks, flat, load_flat

#: Step sizes in units of the learning rate, as in Santurkar et al. (2018), Fig. 4.
STEP_RANGE = (0.5, 4.0)


def step_multipliers(
    n: int = 8, low: float = STEP_RANGE[0], high: float = STEP_RANGE[1], spacing: str = "log"
) -> tuple[float, ...]:
    """``n`` step-size multipliers from ``low`` to ``high`` inclusive, log- or linearly spaced.

    Example:
        >>> [round(m, 3) for m in step_multipliers(4)]
        [0.5, 1.0, 2.0, 4.0]
        >>> step_multipliers(3, spacing="linear")
        (0.5, 2.25, 4.0)
    """
    if n < 1 or not (0 < low <= high) or spacing not in ("log", "linear"):
        raise ValueError(
            "step_multipliers: need n >= 1, 0 < low <= high and spacing 'log' or 'linear'; "
            f"got n={n}, low={low}, high={high}, spacing={spacing!r}"
        )
    if n == 1:
        return (float(low),)
    if spacing == "log":
        return tuple(low * (high / low) ** (k / (n - 1)) for k in range(n))
    return tuple(low + (high - low) * k / (n - 1) for k in range(n))


#: The default grid: 8 log-spaced multipliers of the learning rate from 0.5 to 4.
DEFAULT_MULTIPLIERS = step_multipliers()


@dataclass(frozen=True)
class Landscape:
    """The landscape along the gradient at one point; tensors are float64 on the model's device.

    Attributes:
        etas: the step sizes ``eta_k`` (multipliers times ``lr``), shape ``(K,)``.
        loss: ``L(x - eta_k g)``, ``(K,)``.
        grad_pred: ``||grad L(x) - grad L(x - eta_k g)||_2``, ``(K,)``.
        beta: ``grad_pred / ||eta_k g||``, ``(K,)``.
        loss_at_x: ``L(x)``.
        grad_norm: ``||g||_2``.

    Example:
        >>> # land = landscape_along_gradient(...); land.summary()["beta_smooth"]
    """

    etas: Tensor
    loss: Tensor
    grad_pred: Tensor
    beta: Tensor
    loss_at_x: Tensor
    grad_norm: Tensor

    @property
    def loss_min(self) -> Tensor:
        """``min_k L(x - eta_k g)``."""
        return self.loss.min()

    @property
    def loss_max(self) -> Tensor:
        """``max_k L(x - eta_k g)``."""
        return self.loss.max()

    @property
    def loss_range(self) -> Tensor:
        """Loss landscape variation: ``max_k - min_k`` of ``L(x - eta_k g)``."""
        return self.loss_max - self.loss_min

    @property
    def grad_pred_max(self) -> Tensor:
        """Largest gradient change over the step sizes."""
        return self.grad_pred.max()

    @property
    def grad_pred_min(self) -> Tensor:
        """Smallest gradient change over the step sizes."""
        return self.grad_pred.min()

    @property
    def beta_smooth(self) -> Tensor:
        """Effective beta-smoothness: ``max_k ||grad change|| / ||eta_k g||``."""
        return self.beta.max()

    def summary(self) -> dict[str, float]:
        """The summaries by name (``loss_range`` ... ``grad_norm``), in one device-to-host copy."""
        names = (*LANDSCAPE_STATS, "loss_at_x", "grad_norm")
        return dict(zip(names, torch.stack([getattr(self, n) for n in names]).tolist()))


def landscape_along_gradient(
    model: nn.Module,
    loss_fn: LossFn,
    lr: float,
    *,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    params: Sequence[Tensor] | None = None,
    seed: int = 0,
    all_reduce: AllReduce | None = None,
    world_size: int = 1,
) -> Landscape:
    """Loss variation, gradient predictiveness and effective beta-smoothness along the gradient.

    Definitions and side effects: see the module doc.

    Args:
        model: the network, at the point ``x`` to measure; left there.
        loss_fn: ``loss_fn(model) -> scalar``: the forward pass and loss on the fixed batch.
        lr: the learning rate the multipliers scale.
        multipliers: step sizes in units of ``lr`` (default 8 log-spaced in ``[0.5, 4]``).
        params: the parameters that move (default: every parameter with ``requires_grad``);
            the gradient and its norms are over these.
        seed: the RNG seed every pass starts from.
        all_reduce: ``all_reduce(tensor, "sum")`` in place across data-parallel ranks;
            gradients and losses are averaged. None: one process.
        world_size: number of ranks ``all_reduce`` sums over.

    Returns:
        A :class:`Landscape`.

    Raises:
        ValueError: ``lr`` or a multiplier not positive and finite, no parameters.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        >>> x, y = torch.randn(16, 4), torch.randn(16, 2)
        >>> land = landscape_along_gradient(net, lambda m: nn.functional.mse_loss(m(x), y), lr=0.1)
        >>> land.loss.shape, bool(land.beta_smooth > 0)
        (torch.Size([8]), True)
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"landscape_along_gradient: lr must be a positive number, got {lr!r}")
    multipliers = tuple(float(m) for m in multipliers)
    if not multipliers or not all(math.isfinite(m) and m > 0 for m in multipliers):
        raise ValueError(
            f"landscape_along_gradient: multipliers must be positive numbers, got {multipliers!r}"
        )
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size!r}")
    params = [p for p in model.parameters() if p.requires_grad] if params is None else list(params)
    if not params:
        raise ValueError("landscape_along_gradient: no trainable parameters to move")

    with Replay(model, seed) as replay:
        x = flat([p.detach() for p in params])
        replay.final = (params, [p.detach().clone() for p in params])
        loss_x, grads = replay.grad(loss_fn, params)
        packed = average_across_ranks(
            torch.cat([flat(grads), loss_x.reshape(1).to(x.dtype)]), all_reduce, world_size
        )
        g, loss_x = packed[:-1], packed[-1].double()
        g64 = g.double()
        grad_norm = torch.linalg.vector_norm(g64)
        losses, changes = [], []
        for m in multipliers:
            load_flat(params, x - (m * lr) * g)
            loss_e, grads_e = replay.grad(loss_fn, params)
            packed = torch.cat([flat(grads_e), loss_e.reshape(1).to(x.dtype)])
            packed = average_across_ranks(packed, all_reduce, world_size)
            changes.append(torch.linalg.vector_norm(g64 - packed[:-1].double()))
            losses.append(packed[-1].double())

    etas = torch.tensor([m * lr for m in multipliers], dtype=torch.float64, device=g.device)
    grad_pred = torch.stack(changes)
    return Landscape(
        etas, torch.stack(losses), grad_pred, grad_pred / (etas * grad_norm), loss_x, grad_norm
    )
