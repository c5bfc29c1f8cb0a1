"""Which modules of a model the monitor watches, and how each one's units are laid out."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Iterable, Sequence, Union

from torch import nn

from shiftkit.stats import CHANNELS, FEATURES, RECTIFIERS, SiteSpec

#: A selection pattern: a glob on module names (``"encoder.*"``), a glob on
#: module type names (``"Conv*"``, ``"BatchNorm2d"``), or a module class.
Pattern = Union[str, type]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CHANNEL_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
_FEATURE_LAYERS = (nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Embedding, nn.RMSNorm)
#: Modules in torch.nn.modules.activation that are not elementwise nonlinearities.
_NOT_ACTIVATIONS = ("MultiheadAttention", "Softmax", "Softmin", "LogSoftmax", "Softmax2d")


def is_activation(module: nn.Module) -> bool:
    """An elementwise nonlinearity from ``torch.nn`` (Sigmoid, Tanh, ReLU, GELU, ...)."""
    cls = type(module)
    return cls.__module__ == "torch.nn.modules.activation" and cls.__name__ not in _NOT_ACTIVATIONS


def is_default_layer(module: nn.Module) -> bool:
    """Selected when ``layers`` is not given: Linear, Conv*, norms and activations."""
    return isinstance(module, (nn.Linear, *_CONV, *_CHANNEL_NORMS, nn.LayerNorm)) or is_activation(module)


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


def _as_patterns(value: Pattern | Sequence[Pattern] | None) -> list[Pattern]:
    if value is None:
        return []
    if isinstance(value, (str, type)):
        return [value]
    return list(value)


def select_modules(
    model: nn.Module, layers: Pattern | Sequence[Pattern] | None, exclude: Pattern | Sequence[Pattern] | None
) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs to monitor, in the model's module order.

    Raises:
        ValueError: nothing matched; the message names the patterns and lists
            some of the model's modules.
    """
    include, skip = _as_patterns(layers), _as_patterns(exclude)
    chosen = []
    for name, module in model.named_modules():
        if not name:  # the LightningModule itself
            continue
        selected = matches(name, module, include) if include else is_default_layer(module)
        if selected and not matches(name, module, skip):
            chosen.append((name, module))
    if not chosen:
        available = [f"{n} ({type(m).__name__})" for n, m in model.named_modules() if n][:25]
        tried = f"layers={include!r}" if include else "the default layer types (Linear, Conv*, norms, activations)"
        raise ValueError(
            f"ShiftMonitor: no module matched {tried} with exclude={skip!r}. "
            f"Patterns are globs on module names or type names, or module classes. "
            f"The model has: {', '.join(available) or 'no submodules'}"
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
    for name, module in model.named_modules():
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
            sites.append((SiteSpec(f"{name}@out", layouts[name]), "out", module))
    return sites
