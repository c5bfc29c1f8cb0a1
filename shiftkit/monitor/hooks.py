"""Forward hooks that hand a module's input or output tensor to the accumulator.

Hooks are registered once, at ``setup``; the every-N gate is a flag checked
inside the hook, so on steps that are not measured a hook costs one attribute
read. Inputs are taken with ``register_forward_pre_hook(with_kwargs=True)`` so
that keyword-only inputs are seen too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle


def first_float_tensor(value: Any, depth: int = 0) -> Tensor | None:
    """The first floating-point tensor in ``value`` (a tensor, tuple/list, dict), else None.

    Integer tensors (token ids), ``None`` and other objects are skipped; nested
    containers are searched two levels deep.
    """
    if isinstance(value, Tensor):
        return value if torch.is_floating_point(value) else None
    if depth > 2:
        return None
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = first_float_tensor(item, depth + 1)
            if found is not None:
                return found
    return None


class SiteHooks:
    """The hooks of all sites; ``active`` gates them all at once.

    Args:
        observe: called as ``observe(site_index, tensor)`` for each measured tensor.
        on_skip: called as ``on_skip(site_index)`` when a measured call carried
            no floating tensor (reported once per site by the caller).
    """

    def __init__(self, observe: Callable[[int, Tensor], None], on_skip: Callable[[int], None]):
        self.active = False
        self._observe = observe
        self._on_skip = on_skip
        self._handles: list[RemovableHandle] = []

    def register(self, index: int, module: nn.Module, kind: str) -> None:
        """Hook ``module``'s input (``kind="in"``) or output (``"out"``) for site ``index``."""
        if kind == "in":

            def pre_hook(mod, args, kwargs):
                if self.active:
                    x = first_float_tensor(args)
                    self._take(index, x if x is not None else first_float_tensor(kwargs))

            self._handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        else:

            def post_hook(mod, args, output):
                if self.active:
                    self._take(index, first_float_tensor(output))

            self._handles.append(module.register_forward_hook(post_hook))

    def _take(self, index: int, x: Tensor | None) -> None:
        if x is None:
            self._on_skip(index)
        else:
            self._observe(index, x)

    def remove(self) -> None:
        """Remove every hook; the model is left as it was found."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.active = False

    def __len__(self) -> int:
        return len(self._handles)
