"""Gradient-based internal covariate shift (Santurkar et al. 2018, Definition 2.1).

For layer ``i`` at step ``t``, with the batch of step ``t`` held fixed:

* ``G``  = gradient of the loss w.r.t. layer ``i``'s parameters, every layer at ``theta_t``;
* ``G'`` = the same gradient after the layers *below* ``i`` have taken their step-``t``
  update (they are at ``theta_{t+1}``), layer ``i`` and everything above still at ``theta_t``.

The shift is ``||G - G'||_2``; :func:`gradient_ics` also gives ``cos(G, G')``, ``||G||_2``
and ``||G - G'|| / ||G||``.

Definitions, precisely:

* **A layer's parameters** are the parameters a module owns directly
  (``module.parameters(recurse=False)``): weight *and* bias of a ``Linear``/``Conv``.
  ``G`` is their gradients, flattened and concatenated.
* **Below.** Every module that directly owns parameters has a *position*: by default
  the order in which the modules are first called in the forward pass, recorded with
  forward pre-hooks during the pass that computes ``G`` (no extra pass). The layers
  below layer ``i`` are all parameter-owning modules whose position comes before
  ``i``'s -- not only the measured ``Linear``/``Conv`` layers, but also the batch-norm
  affine parameters and biases in between, so that "the layers below have taken their
  update" holds for the whole network beneath ``W_i``. A container that owns
  parameters itself (the root module, say) is placed where it is first called, before
  its children; a module never called is placed last (never below anything). Pass
  ``order`` to fix the positions yourself (e.g. for branches of a residual block,
  where the forward order of parallel paths is an implementation detail).
* **Randomness.** Every forward/backward pass starts from the same random number
  generator state (the CPU generator and those of the model's CUDA devices are forked,
  then seeded with ``seed`` before each pass), so dropout and noise layers draw the same
  masks for ``G`` and ``G'``; the caller's RNG streams are restored afterwards.
* **No side effects.** Buffers (batch-norm running statistics, counters) are restored
  before every pass and at the end; gradients are taken with :func:`torch.autograd.grad`,
  so the parameters' ``.grad`` fields are never touched; the model's parameters end at
  ``theta_{t+1}``. The passes run in the model's current mode (training mode in a
  training loop) and in the parameters' own dtype; only the comparison is in float64.

Cost: ``1 + L`` forward/backward passes for ``L`` measured layers (one pass less when
the first measured layer has nothing below it: its ``G' = G`` exactly), plus two copies
of the parameters (``theta_t`` and ``theta_{t+1}``) and two of the measured gradients.
Measure a subset of layers, every N steps.

Under data parallelism every rank computes ``G`` and ``G'`` on its own batch; with
``all_reduce`` given, the packed ``[G, G']`` of all measured layers is averaged across
ranks (one collective, in the parameters' dtype) *before* the norms, so the numbers are
those of the global batch -- what DDP's averaged gradient is -- and identical on every
rank.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from shiftkit.stats.accumulator import AllReduce

#: ``loss_fn(model) -> scalar tensor``: runs the forward pass on the fixed batch.
LossFn = Callable[[nn.Module], Tensor]

#: Module types measured when ``layers`` is not given.
MEASURED_TYPES = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def parameter_snapshot(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of every parameter, by name: ``theta_t`` before the optimizer step.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> sorted(parameter_snapshot(net))
        ['bias', 'weight']
    """
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def parameter_groups(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """The ``(name, parameter)`` pairs each module owns directly, by module name.

    Tied parameters belong to the first module that ``named_parameters`` names them under.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1, bias=False))
        >>> {m: [n for n, _ in ps] for m, ps in parameter_groups(net).items()}
        {'0': ['0.weight', '0.bias'], '2': ['2.weight']}
    """
    groups: dict[str, list[tuple[str, nn.Parameter]]] = {}
    for name, p in model.named_parameters():
        groups.setdefault(name.rpartition(".")[0], []).append((name, p))
    return groups


def default_layers(model: nn.Module) -> list[str]:
    """Names of the ``Linear``/``Conv*`` modules that own trainable parameters, in module order.

    Example:
        >>> default_layers(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)))
        ['0', '2']
    """
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, MEASURED_TYPES)
        and any(p.requires_grad for p in module.parameters(recurse=False))
    ]


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors flattened and concatenated into one vector (dtypes promoted).

    Example:
        >>> flat([torch.ones(2, 2), torch.zeros(1)]).tolist()
        [1.0, 1.0, 1.0, 1.0, 0.0]
    """
    return torch.cat([t.reshape(-1) for t in tensors])


def load_flat(params: Sequence[Tensor], vector: Tensor) -> None:
    """Copy consecutive slices of ``vector`` into ``params`` (in place, no autograd).

    Example:
        >>> a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))
        >>> load_flat([a, b], torch.tensor([1.0, 2.0, 3.0])); b.tolist()
        [3.0]
    """
    with torch.no_grad():
        start = 0
        for p in params:
            p.copy_(vector[start : start + p.numel()].view_as(p))
            start += p.numel()


def load_values(params: Sequence[Tensor], values: Sequence[Tensor]) -> None:
    """Copy ``values[k]`` into ``params[k]`` (in place, no autograd).

    Example:
        >>> w = nn.Parameter(torch.zeros(2))
        >>> load_values([w], [torch.ones(2)]); w.tolist()
        [1.0, 1.0]
    """
    with torch.no_grad():
        for p, v in zip(params, values):
            p.copy_(v)


def average_across_ranks(vector: Tensor, all_reduce: AllReduce | None, world_size: int) -> Tensor:
    """``vector`` summed over ranks with one ``all_reduce`` and divided by ``world_size``.

    Returns ``vector`` itself when ``all_reduce`` is None (one process).

    Example:
        >>> def two_ranks(t, op):  # as if a second rank held the same vector
        ...     t.mul_(2)
        >>> average_across_ranks(torch.tensor([1.0, 3.0]), two_ranks, world_size=2).tolist()
        [1.0, 3.0]
    """
    if all_reduce is None:
        return vector
    all_reduce(vector, "sum")
    return vector.div_(world_size)


class Replay:
    """Repeated forward/backward passes of one model on one batch, each as if it were the only one.

    Inside the ``with`` block, each :meth:`grad` call first restores the buffers to
    their values at entry and seeds the random number generators (CPU, and the CUDA
    devices holding the model) with ``seed``. On exit the buffers are restored, the
    RNG states are those at entry, and, if :attr:`final` was set, the parameters are
    loaded from it (on an exception too).

    Args:
        model: the module whose passes are replayed.
        seed: the seed every pass starts from.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
        >>> x = torch.randn(4, 3)
        >>> with Replay(net, seed=0) as replay:
        ...     _, g1 = replay.grad(lambda m: m(x).sum(), [net[0].weight])
        ...     _, g2 = replay.grad(lambda m: m(x).sum(), [net[0].weight])
        >>> torch.equal(g1[0], g2[0])  # same dropout mask in both passes
        True
    """

    def __init__(self, model: nn.Module, seed: int = 0):
        self.model, self.seed = model, seed
        #: Parameters and the values they get on exit (``(params, values)``), or None.
        self.final: tuple[Sequence[Tensor], Sequence[Tensor]] | None = None
        self.passes = 0
        self._buffers: list[tuple[Tensor, Tensor]] = []
        self._devices: list[int] = []
        self._fork = None

    def __enter__(self) -> Replay:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        self._devices = sorted({t.device.index for t in tensors if t.device.type == "cuda"})
        self._buffers = [(b, b.detach().clone()) for b in self.model.buffers()]
        self._fork = torch.random.fork_rng(devices=self._devices)
        self._fork.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.final is not None:
                load_values(*self.final)
            self._restore_buffers()
        finally:
            self._fork.__exit__(*exc)

    def _restore_buffers(self) -> None:
        with torch.no_grad():
            for buf, saved in self._buffers:
                buf.copy_(saved)

    def grad(self, loss_fn: LossFn, params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """One pass: ``(loss, [d loss / d p for p in params])``; zeros for an unused parameter."""
        self._restore_buffers()
        # Only the generators forked at entry are seeded (torch.manual_seed would also
        # seed every other CUDA device, and lazily one not yet initialized).
        torch.default_generator.manual_seed(self.seed)
        for d in self._devices:
            torch.cuda.default_generators[d].manual_seed(self.seed)
        with torch.enable_grad():
            loss = loss_fn(self.model)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ValueError(f"loss_fn must return a scalar tensor, got {type(loss).__name__}")
            if not loss.requires_grad:
                raise ValueError("loss_fn returned a loss that does not depend on the parameters")
            grads = torch.autograd.grad(loss.reshape(()), list(params), allow_unused=True)
        self.passes += 1
        return loss.detach().reshape(()), [
            torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)
        ]


@dataclass(frozen=True)
class GradientICS:
    """The gradient-based shift of each measured layer; vectors are float64, on the model's device.

    Attributes:
        layers: the measured layers' module names, in the order of the vectors.
        l2: ``||G - G'||_2``.
        cos: ``cos(G, G')`` (NaN where either gradient is zero).
        grad_norm: ``||G||_2``.
        rel: ``||G - G'||_2 / ||G||_2``.
        order: the module positions used (``below`` = earlier in this list).
        passes: forward/backward passes run.

    Example:
        >>> # result = gradient_ics(...); dict(zip(result.layers, result.l2.tolist()))
    """

    layers: tuple[str, ...]
    l2: Tensor
    cos: Tensor
    grad_norm: Tensor
    rel: Tensor
    order: tuple[str, ...]
    passes: int

    def rows(self) -> list[dict]:
        """One ``{layer, l2, cos, grad_norm, rel}`` dict per layer (one device-to-host copy)."""
        host = torch.stack([self.l2, self.cos, self.grad_norm, self.rel]).tolist()
        return [
            {
                "layer": name,
                "l2": host[0][i],
                "cos": host[1][i],
                "grad_norm": host[2][i],
                "rel": host[3][i],
            }
            for i, name in enumerate(self.layers)
        ]


def gradient_ics(
    model: nn.Module,
    loss_fn: LossFn,
    params_before: Mapping[str, Tensor],
    params_after: Mapping[str, Tensor] | None = None,
    *,
    layers: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
    seed: int = 0,
    all_reduce: AllReduce | None = None,
    world_size: int = 1,
) -> GradientICS:
    """Gradient-based internal covariate shift of each layer (definitions in the module doc).

    Args:
        model: the network, at any parameters on entry; at ``params_after`` on return.
        loss_fn: ``loss_fn(model) -> scalar``: the forward pass and loss on the fixed batch.
        params_before: ``theta_t``, every parameter by ``named_parameters`` name (see
            :func:`parameter_snapshot`, taken before the optimizer step).
        params_after: ``theta_{t+1}``; default: the model's parameters on entry (call
            after the optimizer step).
        layers: module names of the layers to measure (each must own parameters);
            default :func:`default_layers` (every ``Linear``/``Conv*``).
        order: module names in the order that defines "below"; default: the order of
            first calls in the forward pass. Parameter-owning modules left out are
            never below anything.
        seed: the RNG seed every pass starts from.
        all_reduce: ``all_reduce(tensor, "sum")`` in place across data-parallel ranks
            (e.g. :func:`~shiftkit.stats.torch_distributed_all_reduce`); ``G`` and
            ``G'`` are averaged before the norms. None: one process.
        world_size: number of ranks ``all_reduce`` sums over.

    Returns:
        A :class:`GradientICS`.

    Raises:
        ValueError: a layer that owns no trainable parameter or never ran, an unknown
            name in ``order``, or parameters missing from ``params_before``/``params_after``.

    Example:
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
        >>> x, y = torch.randn(16, 4), torch.randn(16, 2)
        >>> loss_fn = lambda m: nn.functional.mse_loss(m(x), y)
        >>> before = parameter_snapshot(net)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.5)
        >>> loss_fn(net).backward(); opt.step()
        >>> result = gradient_ics(net, loss_fn, before)
        >>> result.layers, result.passes
        (('0', '2'), 2)
        >>> result.l2[0].item()  # nothing lies below the first layer
        0.0
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size!r}")
    named = dict(model.named_parameters())
    groups = parameter_groups(model)
    layers = list(default_layers(model) if layers is None else layers)
    if not layers:
        raise ValueError(
            "gradient_ics: no layer to measure (the model has no Linear/Conv layer; pass layers=)"
        )
    for name in layers:
        if not any(p.requires_grad for _, p in groups.get(name, [])):
            raise ValueError(f"gradient_ics: layer {name!r} owns no trainable parameter of its own")
    if order is not None:
        unknown = [n for n in order if n not in groups]
        if unknown:
            raise ValueError(f"gradient_ics: order names modules that own no parameters: {unknown}")
        absent = [n for n in layers if n not in order]
        if absent:
            raise ValueError(
                f"gradient_ics: order must place every measured layer; it lacks {absent}"
            )
    before = _values(named, params_before, "params_before")
    after = _values(named, params_after, "params_after") if params_after is not None else None

    params = list(named.values())
    index = {id(p): k for k, p in enumerate(params)}
    measured = [[p for _, p in groups[name] if p.requires_grad] for name in layers]
    sizes = [sum(p.numel() for p in ps) for ps in measured]
    with Replay(model, seed) as replay:
        if after is None:
            after = [p.detach().clone() for p in params]
        replay.final = (params, after)
        load_values(params, before)
        with _first_calls(model, groups if order is None else {}) as called:
            _, grads = replay.grad(loss_fn, [p for ps in measured for p in ps])
        if order is None:
            order = called + [n for n in groups if n not in called]
            never = [n for n in layers if n not in called]
            if never:
                raise ValueError(
                    f"gradient_ics: layers {never} were never called in the forward pass of loss_fn"
                )
        g = flat(grads)
        g_after = torch.empty_like(g)
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        position = {name: k for k, name in enumerate(order)}
        updated = 0  # order[:updated] is at theta_{t+1}
        for i in sorted(range(len(layers)), key=lambda i: position[layers[i]]):
            k = position[layers[i]]
            for name in order[updated:k]:
                below = [p for _, p in groups[name]]
                load_values(below, [after[index[id(p)]] for p in below])
            updated = k
            segment = slice(offsets[i], offsets[i + 1])
            if k == 0:
                g_after[segment] = g[segment]  # nothing below: G' = G exactly
            else:
                g_after[segment] = flat(replay.grad(loss_fn, measured[i])[1])
        passes = replay.passes

    packed = average_across_ranks(torch.cat([g, g_after]), all_reduce, world_size)
    g, g_after = packed[: g.numel()].double(), packed[g.numel() :].double()
    l2, cos, norm = [], [], []
    for i in range(len(layers)):
        a, b = g[offsets[i] : offsets[i + 1]], g_after[offsets[i] : offsets[i + 1]]
        na, nb = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
        l2.append(torch.linalg.vector_norm(a - b))
        cos.append(torch.dot(a, b) / (na * nb))
        norm.append(na)
    l2_t, norm_t = torch.stack(l2), torch.stack(norm)
    return GradientICS(
        tuple(layers), l2_t, torch.stack(cos), norm_t, l2_t / norm_t, tuple(order), passes
    )


def _values(named: dict[str, Tensor], given: Mapping[str, Tensor], what: str) -> list[Tensor]:
    missing = [n for n, p in named.items() if n not in given and p.requires_grad]
    if missing:
        raise ValueError(
            f"gradient_ics: {what} lacks parameters {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}"
        )
    values = []
    for name, p in named.items():
        v = given.get(name, p)
        if v.shape != p.shape:
            raise ValueError(
                f"gradient_ics: {what}[{name!r}] has shape {tuple(v.shape)}, "
                f"the parameter {tuple(p.shape)}"
            )
        values.append(v.detach().clone() if v is p else v)
    return values


class _first_calls:
    """Record the order in which the given modules are first called (forward pre-hooks)."""

    def __init__(self, model: nn.Module, names: Mapping[str, object]):
        self.modules = {n: m for n, m in model.named_modules() if n in names}
        self.called: list[str] = []
        self.seen: set[str] = set()
        self.handles = []

    def __enter__(self) -> list[str]:
        for name, module in self.modules.items():

            def hook(mod, args, name=name):
                if name not in self.seen:
                    self.seen.add(name)
                    self.called.append(name)

            self.handles.append(module.register_forward_pre_hook(hook))
        return self.called

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
