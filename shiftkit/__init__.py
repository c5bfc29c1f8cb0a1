"""shiftkit: measure internal covariate shift while a network trains.

``shiftkit.stats`` and ``shiftkit.ShiftTracker`` (the core, for any training loop) import no
Lightning; the Lightning parts (``ShiftMonitor``, models, data) are imported lazily, on first use.
"""

__version__ = "0.1.0"

__all__ = ["ShiftMonitor", "ShiftTracker", "__version__"]


def __getattr__(name):
    # Lazy: keep `import shiftkit.stats` free of the Lightning import cost.
    if name == "ShiftMonitor":
        from shiftkit.monitor.shift_monitor import ShiftMonitor

        return ShiftMonitor
    if name == "ShiftTracker":
        from shiftkit.tracker import ShiftTracker

        return ShiftTracker
    raise AttributeError(f"module 'shiftkit' has no attribute {name!r}")
