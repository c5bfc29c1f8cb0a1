"""shiftkit: measure internal covariate shift while a network trains.

The Lightning callbacks (:class:`ShiftMonitor`, :class:`GradientICSMonitor`,
:class:`LandscapeMonitor`) are imported lazily, so that ``import shiftkit.stats`` works in a
plain training loop without the cost (or the install) of Lightning.

Example::

    from lightning.pytorch import Trainer
    from shiftkit import ShiftMonitor

    Trainer(callbacks=[ShiftMonitor()])
"""

__version__ = "0.1.0"

__all__ = ["GradientICSMonitor", "LandscapeMonitor", "ShiftMonitor", "__version__"]

_CALLBACKS = {
    "ShiftMonitor": "shiftkit.monitor.shift_monitor",
    "GradientICSMonitor": "shiftkit.monitor.gradient_ics",
    "LandscapeMonitor": "shiftkit.monitor.landscape",
}


def __getattr__(name):
    # Lazy: keep `import shiftkit.stats` free of the Lightning import cost.
    if name in _CALLBACKS:
        import importlib

        return getattr(importlib.import_module(_CALLBACKS[name]), name)
    raise AttributeError(f"module 'shiftkit' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
