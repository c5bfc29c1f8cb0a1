"""The framework-free core: :class:`ShiftTracker` measures shift in any training loop.

Imports torch and :mod:`shiftkit.stats`, never Lightning; :class:`~shiftkit.ShiftMonitor` (Lightning),
the Fabric recipe and the Hugging Face ``ShiftCallback`` are adapters over it.
"""

from shiftkit.tracker.tracker import ShiftTracker

__all__ = ["ShiftTracker"]
