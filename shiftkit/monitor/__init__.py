"""The ShiftMonitor Lightning callback: which layers, when, against what reference, where to log."""

from shiftkit.monitor.shift_monitor import ShiftMonitor
from shiftkit.monitor.gradient_ics import GradientICSMonitor
from shiftkit.monitor.landscape import LandscapeMonitor

__all__ = ["ShiftMonitor"]
__all__ += ["GradientICSMonitor", "LandscapeMonitor"]
