"""The one error a misconfigured Lightning callback of shiftkit raises, and the shared checks.

The checks live with the tracker (:mod:`shiftkit.tracker.validation`, no Lightning there); for
the callbacks named here they raise :class:`MonitorConfigError`, which is both what Lightning's
own callbacks raise and a ``ValueError``.
"""

from __future__ import annotations

from lightning.fabric.utilities.exceptions import MisconfigurationException

from shiftkit.tracker.validation import (
    ConfigError,
    check_bool,
    check_callable,
    check_choice,
    check_fraction,
    check_int,
    check_quantiles,
    is_number,
    is_positive_number,
    register_error,
)

__all__ = [
    "MonitorConfigError",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_quantiles",
    "is_number",
    "is_positive_number",
]

#: The callbacks whose misconfigurations raise :class:`MonitorConfigError`.
CALLBACKS = ("ShiftMonitor", "GradientICSMonitor", "LandscapeMonitor")


class MonitorConfigError(MisconfigurationException, ConfigError):
    """A monitor was given an argument, a model or a Trainer it cannot work with.

    Both a Lightning :class:`MisconfigurationException` (what Lightning's own callbacks raise)
    and a :class:`ValueError` (what a bad argument is).

    Example:
        >>> try:
        ...     check_int("ShiftMonitor", "bins", 1, minimum=2)
        ... except MonitorConfigError as err:
        ...     print(err, isinstance(err, ValueError))
        ShiftMonitor: bins must be an integer >= 2, got 1 True
    """


for _owner in CALLBACKS:
    register_error(_owner, MonitorConfigError)
