"""shiftkit: measure internal covariate shift while a network trains.

``shiftkit.stats`` is pure torch and imports no Lightning; the Lightning parts
(``ShiftMonitor``, models, data) are imported lazily so that
``import shiftkit.stats`` works in a plain training loop.
"""

__version__ = "0.1.0"

__all__ = ["ShiftMonitor", "__version__"]


def __getattr__(name):
    # Lazy: keep `import shiftkit.stats` free of the Lightning import cost.
    if name == "ShiftMonitor":
        from shiftkit.monitor.shift_monitor import ShiftMonitor

        return ShiftMonitor
    raise AttributeError(f"module 'shiftkit' has no attribute {name!r}")
