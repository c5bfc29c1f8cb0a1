"""Which modules of a model the monitor watches, and how each one's units are laid out."""

from __future__ import annotations

import sys
from fnmatch import fnmatchcase
from typing import Any, Iterable, Sequence, Union

from torch import nn

from shiftkit.records.names import OUTPUT_SITE_SUFFIX
from shiftkit.stats import CHANNELS, FEATURES, RECTIFIERS, SiteSpec
from shiftkit.tracker.validation import config_error
from shiftkit.tracker.warnings import rank_zero_warn

#: A selection pattern: a glob on module names (``"encoder.*"``), a glob on
#: module type names (``"Conv*"``, ``"BatchNorm2d"``), or a module class.
Pattern = Union[str, type]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CHANNEL_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
#: Layers whose units are the last dimension: linear maps, token embeddings,
#: layer norms, recurrent layers and cells (``batch_first`` or not: features are
#: last either way) and attention (``(batch, seq, embed)`` or ``(seq, batch, embed)``).
_FEATURE_LAYERS = (
    nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Embedding, nn.EmbeddingBag, nn.RMSNorm,
    nn.RNNBase, nn.RNNCellBase, nn.MultiheadAttention,
    nn.Transformer, nn.TransformerEncoder, nn.TransformerDecoder,
    nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
)  # fmt: skip
#: Modules whose submodules hold parameters but are never called as modules
#: (``MultiheadAttention`` uses ``out_proj.weight`` directly): left out of the
#: default selection, where their hooks would never fire.
_UNCALLED_CHILDREN = (nn.MultiheadAttention,)
#: ``torch.compile(module)`` wraps ``module`` as ``_orig_mod``; site names leave it out.
COMPILED_PREFIX = "_orig_mod"
#: Modules in torch.nn.modules.activation that are not elementwise nonlinearities.
_NOT_ACTIVATIONS = ("MultiheadAttention", "Softmax", "Softmin", "LogSoftmax", "Softmax2d")


def is_activation(module: nn.Module) -> bool:
    """An elementwise nonlinearity from ``torch.nn`` (Sigmoid, Tanh, ReLU, GELU, ...)."""
    cls = type(module)
    return cls.__module__ == "torch.nn.modules.activation" and cls.__name__ not in _NOT_ACTIVATIONS


def is_default_layer(module: nn.Module) -> bool:
    """Selected when ``layers`` is not given: Linear, Conv*, norms, activations, and recurrent
    layers (``LSTM``/``GRU``/``RNN``: their float input sequence; the initial state is skipped)."""
    return isinstance(module, (nn.Linear, *_CONV, *_CHANNEL_NORMS, nn.LayerNorm, nn.RNNBase)) or is_activation(
        module
    )


def matches(name: str, module: nn.Module, patterns: Iterable[Pattern]) -> bool:
    """True if any pattern matches the module's name, its type name, or its class."""
    type_name = type(module).__name__
    for p in patterns:
        if isinstance(p, type):
            if isinstance(module, p):
                return True
        elif fnmatchcase(name, p) or fnmatchcase(type_name, p):
            return True
    return False


def as_patterns(
    value: Pattern | Sequence[Pattern] | None, argument: str = "layers", owner: str = "ShiftMonitor"
) -> list[Pattern]:
    """``value`` as a list of patterns.

    Raises:
        ConfigError: ``value`` is not a string, a module class, or a list/tuple of them
            (the message names ``owner``, the callback, ``argument`` and the allowed forms).
    """
    if value is None:
        return []
    items = [value] if isinstance(value, (str, type)) else value
    if not isinstance(items, (list, tuple)) or not all(_is_pattern(p) for p in items):
        raise config_error(
            owner,
            f"{owner}: {argument} must be a glob string on module names or type names "
            f"('encoder.*', 'Conv*'), an nn.Module subclass, or a list of them; got {value!r}"
        )
    return list(items)


def _is_pattern(p: Any) -> bool:
    return (isinstance(p, str) and p != "") or (isinstance(p, type) and issubclass(p, nn.Module))


def site_name(name: str) -> str:
    """A module name without the ``_orig_mod`` segments that ``torch.compile`` inserts."""
    if COMPILED_PREFIX not in name:
        return name
    return ".".join(part for part in name.split(".") if part != COMPILED_PREFIX)


def named_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``model.named_modules()`` without the model itself, named as by :func:`site_name`.

    A compiled submodule appears twice in ``named_modules()`` (the wrapper and
    its ``_orig_mod``); only the original module is kept.
    """
    dynamo = sys.modules.get("torch._dynamo")  # not imported: nothing can be compiled
    wrapper = dynamo.OptimizedModule if dynamo is not None else ()
    out = []
    for name, module in model.named_modules():
        if name and not isinstance(module, wrapper):
            out.append((site_name(name), module))
    return out


def select_modules(
    model: nn.Module,
    layers: Pattern | Sequence[Pattern] | None,
    exclude: Pattern | Sequence[Pattern] | None,
    warn_unmatched: bool = True,
    owner: str = "ShiftMonitor",
) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs to monitor, in the model's module order.

    A user's pattern that matches nothing gets a warning (a typo?), unless
    ``warn_unmatched`` is False (a caller passing its own default list).
    Messages start with ``owner``, the callback that selects.

    Raises:
        ConfigError: nothing matched; the message names the patterns and lists
            some of the model's modules.
    """
    include, skip = as_patterns(layers, "layers", owner), as_patterns(exclude, "exclude", owner)
    modules = named_modules(model)
    uncalled = {
        id(child) for _, m in modules if isinstance(m, _UNCALLED_CHILDREN) for child in m.modules() if child is not m
    }
    chosen = []
    for name, module in modules:
        selected = matches(name, module, include) if include else is_default_layer(module) and id(module) not in uncalled
        if selected and not matches(name, module, skip):
            chosen.append((name, module))
    available = ", ".join(f"{n} ({type(m).__name__})" for n, m in modules[:25]) or "no submodules"
    if not chosen:
        tried = f"layers={include!r}" if include else "the default layer types (Linear, Conv*, norms, activations, RNNs)"
        raise config_error(
            owner,
            f"{owner}: no module matched {tried} with exclude={skip!r}. "
            f"Patterns are globs on module names or type names, or module classes. "
            f"The model has: {available}"
        )
    for argument, patterns in (("layers", include), ("exclude", skip)) if warn_unmatched else ():
        unused = [p for p in patterns if not any(matches(n, m, [p]) for n, m in modules)]
        if unused:
            rank_zero_warn(
                f"{owner}: {argument} patterns {unused!r} match no module of the model "
                f"(a typo?). The model has: {available}"
            )
    return chosen


def unit_layouts(model: nn.Module) -> dict[str, int]:
    """Unit layout (``FEATURES`` or ``CHANNELS``) of every named module.

    Linear-like layers and LayerNorm have features; convolutions and
    batch/group/instance norms have channels. Any other module (activations,
    pooling, custom blocks) inherits the layout of the last typed module before
    it in ``named_modules()`` order — a ReLU after a Conv2d sees channels.
    """
    layouts, current = {}, FEATURES
    for name, module in named_modules(model):
        if isinstance(module, (*_CONV, *_CHANNEL_NORMS)):
            current = CHANNELS
        elif isinstance(module, _FEATURE_LAYERS):
            current = FEATURES
        layouts[name] = current
    return layouts


def build_sites(
    selected: list[tuple[str, nn.Module]],
    layouts: dict[str, int],
    track: str,
    saturation_thresholds: dict[str, float],
) -> list[tuple[SiteSpec, str, nn.Module]]:
    """One :class:`SiteSpec` per monitored tensor, with the hook kind (``"in"``/``"out"``) and module.

    Inputs are named after the module; outputs get the suffix ``@out``.
    """
    sites = []
    for name, module in selected:
        type_name = type(module).__name__
        if track in ("inputs", "both"):
            spec = SiteSpec(
                name,
                layouts[name],
                rectifier=type_name in RECTIFIERS,
                saturation_threshold=saturation_thresholds.get(type_name),
            )
            sites.append((spec, "in", module))
        if track in ("outputs", "both"):
            sites.append((SiteSpec(name + OUTPUT_SITE_SUFFIX, layouts[name]), "out", module))
    return sites
