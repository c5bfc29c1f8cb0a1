"""The checks of the tracker's and the monitors' arguments, and the one error they raise.

:class:`~shiftkit.ShiftTracker` and every callback of :mod:`shiftkit.monitor` check their
arguments at construction with these functions and raise a :class:`ConfigError` when they, or
the model (and Trainer) they are attached to, do not fit; each message starts with the owner's
name and names the argument. The error is made by :func:`config_error`: an owner registered with
its own subclass (the Lightning callbacks: ``MonitorConfigError``, also a Lightning
``MisconfigurationException``) gets that subclass, so the shared checks raise what each caller
promises without this module importing Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A tracker or monitor was given an argument, a model or a Trainer it cannot work with.

    Example:
        >>> try:
        ...     check_int("ShiftTracker", "bins", 1, minimum=2)
        ... except ConfigError as err:
        ...     print(err, isinstance(err, ValueError))
        ShiftTracker: bins must be an integer >= 2, got 1 True
    """


#: Owner name -> the error class its misconfigurations raise (see :func:`register_error`).
_ERRORS: dict[str, type[ConfigError]] = {}


def register_error(owner: str, error: type[ConfigError]) -> None:
    """Make the checks raise ``error`` (a :class:`ConfigError` subclass) for ``owner``."""
    _ERRORS[owner] = error


def config_error(owner: str, message: str) -> ConfigError:
    """The error to raise for ``owner``: its registered class, else :class:`ConfigError`."""
    return _ERRORS.get(owner, ConfigError)(message)


def is_number(value: Any) -> bool:
    """A real number (int or float, not bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_positive_number(value: Any) -> bool:
    """A finite real number > 0.

    Example:
        >>> [is_positive_number(v) for v in (0.5, 0, float("inf"), True)]
        [True, False, False, False]
    """
    return is_number(value) and math.isfinite(value) and value > 0


def check_int(owner: str, name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an integer >= ``minimum`` (or None, if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise config_error(owner, f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, allowed: Sequence[str]) -> None:
    """Raise unless ``value`` is one of ``allowed``.

    Example:
        >>> try:
        ...     check_choice("ShiftTracker", "track", "weights", ("inputs", "outputs"))
        ... except ConfigError as err:
        ...     print(err)
        ShiftTracker: track='weights' is not one of 'inputs', 'outputs'
    """
    if value not in allowed:
        raise config_error(
            owner, f"{owner}: {name}={value!r} is not one of {', '.join(map(repr, allowed))}"
        )


def check_bool(owner: str, name: str, value: Any) -> None:
    """Raise unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise config_error(owner, f"{owner}: {name} must be True or False, got {value!r}")


def check_callable(owner: str, name: str, value: Any, signature: str) -> None:
    """Raise unless ``value`` is None or callable (``signature`` says how it is called)."""
    if value is not None and not callable(value):
        raise config_error(owner, f"{owner}: {name} must be callable as {signature}")


def check_fraction(
    owner: str, name: str, value: Any, closed_low: bool = False, allow_none: bool = False
) -> None:
    """Raise unless ``value`` is in (0, 1), or [0, 1) with ``closed_low`` (or None, if allowed)."""
    if value is None and allow_none:
        return
    ok = is_number(value) and (0 <= value if closed_low else 0 < value) and value < 1
    if not ok:
        span = "[0, 1)" if closed_low else "(0, 1)"
        none = " or None" if allow_none else ""
        raise config_error(
            owner, f"{owner}: {name} must be a fraction in {span}{none}, got {value!r}"
        )


def check_quantiles(owner: str, quantiles: Any) -> tuple[float, ...]:
    """``quantiles`` as a tuple of floats; raise unless it is a non-empty list of levels in (0, 1).

    Example:
        >>> check_quantiles("ShiftMonitor", [0.1, 0.9])
        (0.1, 0.9)
    """
    ok = (
        isinstance(quantiles, (list, tuple))
        and quantiles
        and all(is_number(q) and 0.0 < q < 1.0 for q in quantiles)
    )
    if not ok:
        raise config_error(
            owner,
            f"{owner}: quantiles must be levels in (0, 1), a non-empty list such as "
            f"(0.15, 0.5, 0.85); got {quantiles!r}",
        )
    return tuple(float(q) for q in quantiles)
