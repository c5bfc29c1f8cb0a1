"""Forward hooks that hand a module's input or output tensor to the accumulator.

In eager mode the hooks are attached only for measured steps: setting
:attr:`SiteHooks.active` registers them and clearing it removes them (as Composer's
activation monitor does), so an unmeasured step runs the model with no trace of
the monitor. Under ``torch.compile`` they are registered once and stay: Dynamo does
not guard on a module's hooks (``skip_nnmodule_hook_guards``), so a hook added after
a forward was compiled would never run, and one removed would keep running. There
the every-N gate is a flag checked inside the hook. Compilation is recognised from
the model (:func:`compiled_somewhere`) and, for a compiled function around the
model, from the first compiled forward that reaches a hook (:meth:`SiteHooks.flush`).
Inputs are taken with ``register_forward_pre_hook(with_kwargs=True)`` so that
keyword-only inputs are seen too.

What is measured: the first floating-point tensor of the positional
arguments, else of the keyword arguments (for an output: of the output),
searched through tuples, lists and dicts (see :func:`first_float_tensor`).
Everything else a module receives or returns is skipped: integer token ids,
``None``, a LSTM's ``(h, c)`` state, attention weights. During the first
measurement in which a site is called, the hook takes an inventory of those
skipped tensors (:func:`tensor_leaves`) so that the monitor can say once, per
site, what it measured and what it left out; later calls take the fast path.

Under ``torch.compile`` the gate ``if self._active`` is traced (Dynamo guards
on it: one graph for unmeasured steps, with no trace of the monitor, and one
for measured steps). In the measured graph a hook only appends a copy of the
tensor to its site's list (:func:`_defer`), a side effect Dynamo replays
after the graph, so there is no graph break (``fullgraph=True`` works); the
monitor folds the copies into the accumulator eagerly (:meth:`SiteHooks.flush`)
at the end of the training batch. The accumulator's Python state is never traced,
and neither is the site's index: in a model that graph-breaks inside a block
repeated N times, the block's compiled rest serves every copy of the block,
measured or not, instead of being recompiled per site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

#: Containers are searched this many levels deep (a LSTM's ``(out, (h, c))`` needs 2).
MAX_DEPTH = 2


def first_float_tensor(value: Any, depth: int = 0) -> Tensor | None:
    """The first floating-point tensor in ``value`` (a tensor, tuple/list, dict), else None.

    Integer tensors (token ids), ``None`` and other objects are skipped; nested
    containers are searched two levels deep.
    """
    if isinstance(value, Tensor):
        return value if torch.is_floating_point(value) else None
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_float_tensor(item, depth + 1)
            if found is not None:
                return found
    return None


def _first_float(args: tuple, kwargs: dict) -> Tensor | None:
    x = first_float_tensor(args)
    return x if x is not None else first_float_tensor(kwargs)


def tensor_leaves(value: Any, path: str, depth: int = 0) -> list[tuple[str, Tensor]]:
    """Every tensor in ``value`` with its path (``args[1][0]``, ``kwargs['mask']``), in search order.

    Same traversal as :func:`first_float_tensor`, so the first floating entry is
    the one that function returns.
    """
    if isinstance(value, Tensor):
        return [(path, value)]
    if depth > MAX_DEPTH:
        return []
    if isinstance(value, Mapping):
        items = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return []
    return [leaf for p, v in items for leaf in tensor_leaves(v, p, depth + 1)]


def describe(x: Tensor) -> str:
    """``float32 8x5x4``: dtype and shape, for messages."""
    return f"{str(x.dtype).removeprefix('torch.')} {'x'.join(map(str, x.shape)) or 'scalar'}"


@dataclass
class Inventory:
    """What the calls of one site carried during the measurement it was first seen in."""

    measured: dict[str, str] = field(default_factory=dict)  # path -> description
    skipped: dict[str, str] = field(default_factory=dict)
    calls: int = 0


class SiteHooks:
    """The hooks of all sites; ``active`` gates them all at once.

    Args:
        observe: called as ``observe(site_index, tensor)`` for each measured tensor.
        on_demand: attach the hooks only while ``active`` (eager models); False keeps them
            registered from :meth:`register` to :meth:`remove` (compiled models).
    """

    def __init__(self, observe: Callable[[int, Tensor], None], on_demand: bool = True):
        self.on_demand = on_demand
        self._active = False  # read by the hooks (and guarded on by Dynamo)
        self._observe = observe
        self._hooks: list[tuple[nn.Module, str, Callable]] = []  # (module, "in"/"out", hook)
        self._handles: list[RemovableHandle] = []
        self._described: set[int] = set()
        self._inventories: dict[int, Inventory] = {}
        # Per site, what compiled forwards deferred: (value, copy) per call (see _defer).
        self._deferred: list[list[tuple[Any, Tensor | None]]] = []
        self._choose_takers()

    def _choose_takers(self) -> None:
        # Under torch.compile, an eager hook call (after a graph break) must not be traced
        # into: there the takers are wrapped in torch.compiler.disable. An eager model's hooks
        # skip that wrapper, which costs a context switch per call (measured ~10 us).
        if self.on_demand:
            self._take_in, self._take_out = self._take_input_plain, self._take_output_plain
        else:
            self._take_in, self._take_out = self._take_input, self._take_output

    @property
    def active(self) -> bool:
        """Whether forwards are measured now; in on-demand mode, whether the hooks are attached."""
        return self._active

    @active.setter
    def active(self, on: bool) -> None:
        self._active = on
        if self.on_demand and on and not self._handles:
            self._attach()
        elif self.on_demand and not on:
            self._detach()

    def register(self, index: int, module: nn.Module, kind: str) -> None:
        """Hook ``module``'s input (``kind="in"``) or output (``"out"``) for site ``index``."""
        calls: list[tuple[Any, Tensor | None]] = []
        self._deferred.append(calls)
        if kind == "in":

            def hook(mod, args, kwargs):
                if self._active:
                    if torch.compiler.is_compiling():
                        _defer(calls, ("args", args, "kwargs", kwargs), _first_float(args, kwargs))
                    else:
                        self._take_in(index, args, kwargs)

        else:

            def hook(mod, args, output):
                if self._active:
                    if torch.compiler.is_compiling():
                        _defer(calls, ("output", output), first_float_tensor(output))
                    else:
                        self._take_out(index, output)

        self._hooks.append((module, kind, hook))
        if not self.on_demand or self._handles:
            self._handles.append(_register(module, kind, hook))

    def keep_attached(self) -> None:
        """Leave on-demand mode: register the hooks now and keep them until :meth:`remove`."""
        self.on_demand = False
        self._choose_takers()
        if not self._handles:
            self._attach()

    def _attach(self) -> None:
        self._handles = [_register(module, kind, hook) for module, kind, hook in self._hooks]

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _take_input_plain(self, index: int, args: tuple, kwargs: dict) -> None:
        if index in self._described:
            self._take(index, _first_float(args, kwargs))
        else:
            self._take_new(index, tensor_leaves(args, "args") + tensor_leaves(kwargs, "kwargs"))

    def _take_output_plain(self, index: int, output: Any) -> None:
        if index in self._described:
            self._take(index, first_float_tensor(output))
        else:
            self._take_new(index, tensor_leaves(output, "output"))

    _take_input = torch.compiler.disable(_take_input_plain)
    _take_output = torch.compiler.disable(_take_output_plain)

    def flush(self) -> None:
        """Measure what compiled forwards deferred (call before reading the accumulator)."""
        if self.on_demand and any(self._deferred):
            # A compiled forward ran the hooks (a compiled function around the model, which
            # compiled_somewhere cannot see): from now on they must stay registered.
            self.keep_attached()
        for index, calls in enumerate(self._deferred):
            deferred = calls[:]
            calls.clear()  # in place: the hook holds this list
            for value, x in deferred:
                if index in self._described:
                    self._take(index, x)
                else:
                    pairs = zip(value[::2], value[1::2])
                    leaves = [leaf for path, v in pairs for leaf in tensor_leaves(v, path)]
                    self._take_new(index, leaves, x)

    def _take(self, index: int, x: Tensor | None) -> None:
        if x is not None:
            self._observe(index, x)

    def _take_new(
        self, index: int, leaves: list[tuple[str, Tensor]], copy: Tensor | None = None
    ) -> None:
        """A call of a site not described yet: note what is measured and what is skipped.

        ``copy``: the measured tensor as copied by a compiled forward (else the leaf itself).
        """
        inventory = self._inventories.setdefault(index, Inventory())
        inventory.calls += 1
        x = next((t for _, t in leaves if torch.is_floating_point(t)), None)
        for path, t in leaves:
            if t is not x:
                inventory.skipped.setdefault(path, describe(t))
            elif not inventory.measured:  # q, k, v of self-attention are one tensor: measured once
                inventory.measured[path] = describe(t)
        self._take(index, x if copy is None else copy)

    def take_inventories(self) -> dict[int, Inventory]:
        """The inventories of the sites first called since the last call (once per site)."""
        taken, self._inventories = self._inventories, {}
        self._described.update(taken)
        return taken

    def remove(self) -> None:
        """Remove every hook; the model is left as it was found."""
        self._detach()
        self._hooks.clear()
        self._deferred = []
        self._active = False

    def __len__(self) -> int:
        """The number of hooks (registered or not)."""
        return len(self._hooks)


def _defer(calls: list, value: Any, x: Tensor | None) -> None:
    # Traced by Dynamo as a side effect (a list append), so a compiled forward keeps one graph
    # even with fullgraph=True. One list per site, empty when a forward starts (flush empties it),
    # and no site index in the traced code: Dynamo's guards on them (the list's length, the index)
    # are then the same for every site, so a forward that graph-breaks inside a block shared by
    # many sites compiles each of its pieces once, not once per site. The copy is taken now: a
    # later in-place op (ReLU(inplace=True)) must not change what is measured.
    calls.append((value, None if x is None else x.detach().clone()))


def _register(module: nn.Module, kind: str, hook: Callable) -> RemovableHandle:
    if kind == "in":
        return module.register_forward_pre_hook(hook, with_kwargs=True)
    return module.register_forward_hook(hook)


def compiled_somewhere(model: nn.Module) -> bool:
    """Whether ``torch.compile`` wraps ``model`` or one of its submodules.

    ``torch.compile(module)`` (an ``OptimizedModule`` in the tree), ``module.compile()``, and a
    LightningModule that Lightning compiled (its ``_compiler_ctx``, set when a compiled module is
    passed to the Trainer).
    """
    from torch._dynamo.eval_frame import OptimizedModule

    return any(
        isinstance(m, OptimizedModule)
        or getattr(m, "_compiled_call_impl", None) is not None
        or getattr(m, "_compiler_ctx", None) is not None
        for m in model.modules()
    )
