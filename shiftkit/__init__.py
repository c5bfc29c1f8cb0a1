"""shiftkit: measure internal covariate shift while a network trains.

:class:`ShiftTracker` (the core, for any training loop) and ``shiftkit.stats`` import no
Lightning. It and the Lightning callbacks (:class:`ShiftMonitor`, :class:`GradientICSMonitor`,
:class:`LandscapeMonitor`) are imported lazily, so that ``import shiftkit`` costs nothing and
``import shiftkit.stats`` works in a plain training loop without Lightning.

Example::

    from shiftkit import ShiftTracker

    tracker = ShiftTracker(model, every_n_steps=50)
    for x, y in loader:
        with tracker.step():
            loss_fn(model(x), y).backward(); opt.step(); opt.zero_grad()
"""

__version__ = "0.1.0"

__all__ = ["GradientICSMonitor", "LandscapeMonitor", "ShiftMonitor", "ShiftTracker", "__version__"]

_LAZY = {
    "ShiftTracker": "shiftkit.tracker",
    "ShiftMonitor": "shiftkit.monitor.shift_monitor",
    "GradientICSMonitor": "shiftkit.monitor.gradient_ics",
    "LandscapeMonitor": "shiftkit.monitor.landscape",
}


def __getattr__(name):
    # Lazy: keep `import shiftkit.stats` free of the Lightning import cost.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'shiftkit' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
